// One stored analysis in a modal dialog, fetched fresh from the API, with delete.
import { getAnalysis } from "./api.js";
import { formatDate } from "./format.js";
import { renderReport } from "./report.js";

const dialog = document.getElementById("detail-dialog");
const title = document.getElementById("detail-title");
const meta = document.getElementById("detail-meta");
const slice = document.getElementById("detail-slice");
const heatmap = document.getElementById("detail-heatmap");
const report = document.getElementById("detail-report");
const deleteButton = document.getElementById("detail-delete");

let shown = null; // {id, name}
let opener = null;

export async function openDetail(id, onError) {
  opener = document.activeElement;
  let doc;
  try {
    doc = await getAnalysis(id);
  } catch (error) {
    onError(error.status === 404 ? "This analysis no longer exists." : `The analysis can't be opened: ${error.message}`);
    return;
  }
  shown = { id: doc.id, name: doc.filename || "this analysis" };
  title.textContent = doc.filename ? `Analysis of ${doc.filename}` : "Analysis";
  meta.textContent = `${formatDate(doc.created_at)} · ID ${doc.id}`;
  // In the stored document heatmap_url is the 200 px heatmap thumbnail.
  slice.src = doc.file_thumbnail ?? "";
  heatmap.src = doc.heatmap_url ?? "";
  renderReport(report, doc);
  dialog.showModal();
}

export function initDetail(onDelete) {
  document.getElementById("detail-close").addEventListener("click", () => dialog.close());
  deleteButton.addEventListener("click", async () => {
    if (shown && (await onDelete(shown.id, shown.name))) dialog.close();
  });
  // Return focus to the card that opened the dialog, or to the list's heading when that card is gone.
  dialog.addEventListener("close", () => {
    (opener?.isConnected ? opener : document.getElementById("history-title")).focus();
    shown = null;
  });
}

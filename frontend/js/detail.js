// One stored analysis in a modal dialog, fetched fresh from the API, with re-analysis and delete.
// The stored 200 px thumbnails show at once; the kept 400 px images replace them once fetched.
import { getAnalysis, getImage, reanalyze } from "./api.js";
import { formatDate } from "./format.js";
import { renderReport } from "./report.js";

const dialog = document.getElementById("detail-dialog");
const title = document.getElementById("detail-title");
const meta = document.getElementById("detail-meta");
const slice = document.getElementById("detail-slice");
const heatmap = document.getElementById("detail-heatmap");
const report = document.getElementById("detail-report");
const deleteButton = document.getElementById("detail-delete");
const reanalyseButton = document.getElementById("detail-reanalyse");
const rerun = document.getElementById("detail-rerun");
const rerunStatus = document.getElementById("detail-rerun-status");

let shown = null; // {id, name}
let opener = null;
let blobUrls = [];

// The full-size image in place of the thumbnail, if it is kept; on any failure the thumbnail stays.
async function showFullSize(img, id, name) {
  try {
    const url = URL.createObjectURL(await getImage(id, name));
    if (shown?.id !== id) return URL.revokeObjectURL(url); // closed, or another analysis opened meanwhile
    blobUrls.push(url);
    img.src = url;
  } catch {
    // 404 image_missing (an older analysis), or the image store is down: the thumbnail is what there is
  }
}

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
  rerun.hidden = true;
  rerunStatus.textContent = "";
  dialog.showModal();
  showFullSize(slice, doc.id, "slice.jpg");
  showFullSize(heatmap, doc.id, "heatmap.jpg");
}

function showRerun(doc) {
  document.getElementById("detail-rerun-meta").textContent = `${formatDate(doc.created_at)} · ID ${doc.id}`;
  document.getElementById("detail-rerun-slice").src = doc.file_url;
  document.getElementById("detail-rerun-heatmap").src = doc.heatmap_url;
  renderReport(document.getElementById("detail-rerun-report"), doc);
  rerun.hidden = false;
  rerun.scrollIntoView({ behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth", block: "start" });
}

export function initDetail(onDelete, onReanalysed) {
  document.getElementById("detail-close").addEventListener("click", () => dialog.close());
  deleteButton.addEventListener("click", async () => {
    if (shown && (await onDelete(shown.id, shown.name))) dialog.close();
  });
  reanalyseButton.addEventListener("click", async () => {
    if (!shown) return;
    const { id } = shown;
    reanalyseButton.disabled = true;
    rerunStatus.textContent = "Re-analysing with the current model…";
    try {
      const doc = await reanalyze(id);
      if (shown?.id !== id) return;
      rerunStatus.textContent = "";
      showRerun(doc);
      onReanalysed(doc);
    } catch (error) {
      if (shown?.id === id) {
        rerunStatus.textContent = error.code === "image_missing"
          ? "This analysis was stored before originals were kept, so it can't be re-analysed."
          : `Re-analysis failed: ${error.message}`;
      }
    } finally {
      reanalyseButton.disabled = false;
    }
  });
  // Return focus to the card that opened the dialog, or to the list's heading when that card is gone.
  dialog.addEventListener("close", () => {
    (opener?.isConnected ? opener : document.getElementById("history-title")).focus();
    shown = null;
    for (const url of blobUrls) URL.revokeObjectURL(url);
    blobUrls = [];
  });
}

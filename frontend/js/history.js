// Past analyses, newest first, as cards with the stored thumbnails; older pages on request
// through the API's cursor; delete with confirmation.
import { deleteAnalysis, listAnalyses } from "./api.js";
import { formatDate, labelClass, labelText, percent } from "./format.js";

const PAGE_SIZE = 12;
const list = document.getElementById("history-list");
const status = document.getElementById("history-status");
const moreButton = document.getElementById("load-more");
const template = document.getElementById("card-template");

let nextCursor = null;
let loading = false;
let generation = 0; // bumped when the signed-in user changes: a page asked for before is dropped
let handlers = { open: () => {}, deleted: () => {} };

// An upload's answer has both sizes (heatmap_thumbnail is the small heatmap); a stored
// document keeps only the small ones, and there heatmap_url is the 200 px heatmap.
function thumbnails(doc) {
  return "file_url" in doc
    ? { slice: doc.file_thumbnail, heatmap: doc.heatmap_thumbnail }
    : { slice: doc.file_thumbnail, heatmap: doc.heatmap_url };
}

function cardFor(doc) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.id = doc.id;
  const { slice, heatmap } = thumbnails(doc);
  if (slice) card.querySelector(".card-slice").src = slice;
  if (heatmap) card.querySelector(".card-heatmap").src = heatmap;
  const label = doc.prediction?.label;
  const badge = card.querySelector(".badge");
  badge.textContent = labelText(label);
  badge.classList.add(labelClass(label));
  card.querySelector(".card-confidence").textContent = `${percent(doc.prediction?.confidence)} confidence`;
  const time = card.querySelector(".card-date");
  time.dateTime = doc.created_at;
  time.textContent = formatDate(doc.created_at);
  card.querySelector(".card-file").textContent = doc.filename ?? "";
  const name = doc.filename || "this analysis";
  card.querySelector(".card-open").addEventListener("click", () => handlers.open(doc.id));
  const del = card.querySelector(".card-delete");
  del.setAttribute("aria-label", `Delete the analysis of ${name}`);
  del.addEventListener("click", () => confirmAndDelete(doc.id, name));
  return card;
}

const EMPTY = "No analyses yet. Upload a CT slice to start.";

function updateEmptyState() {
  if (!list.children.length && !loading && !status.textContent) status.textContent = EMPTY;
}

async function loadPage(cursor) {
  const asked = generation;
  loading = true;
  moreButton.disabled = true;
  status.textContent = cursor ? "Loading older analyses…" : "Loading past analyses…";
  try {
    const page = await listAnalyses(PAGE_SIZE, cursor);
    if (asked !== generation) return;
    if (!cursor) list.replaceChildren();
    const known = new Set([...list.children].map((card) => card.dataset.id));
    for (const doc of page.items) if (!known.has(doc.id)) list.append(cardFor(doc));
    nextCursor = page.next_cursor;
    status.textContent = "";
  } catch (error) {
    if (asked !== generation) return;
    status.textContent = error.status === 0 || error.status >= 500
      ? "Past analyses can't be shown right now because the service isn't answering. Try Refresh in a moment."
      : `Past analyses can't be shown: ${error.message}`;
  } finally {
    loading = false;
    moreButton.disabled = false;
    moreButton.hidden = !nextCursor;
    updateEmptyState();
  }
}

export async function confirmAndDelete(id, name) {
  if (!window.confirm(`Delete the analysis of ${name}? This cannot be undone.`)) return false;
  const card = list.querySelector(`[data-id="${CSS.escape(id)}"]`);
  card?.classList.add("is-removing");
  try {
    await deleteAnalysis(id);
  } catch (error) {
    card?.classList.remove("is-removing");
    // 404: someone else deleted it already, which is what was asked for.
    if (error.status !== 404) {
      status.textContent = `The analysis was not deleted: ${error.message}`;
      return false;
    }
  }
  card?.remove();
  status.textContent = `Deleted the analysis of ${name}.${list.children.length ? "" : ` ${EMPTY}`}`;
  handlers.deleted(id);
  return true;
}

export function addToHistory(doc) {
  list.querySelector(`[data-id="${CSS.escape(doc.id)}"]`)?.remove();
  list.prepend(cardFor(doc));
  if (status.textContent.includes(EMPTY)) status.textContent = "";
}

export function initHistory(onOpen, onDeleted) {
  handlers = { open: onOpen, deleted: onDeleted };
  moreButton.addEventListener("click", () => loadPage(nextCursor));
  document.getElementById("refresh-history").addEventListener("click", () => loadPage(null));
}

export const loadHistory = () => loadPage(null);

// Signed out (or another user signed in): nothing of the previous user's stays on the page.
export function clearHistory() {
  generation += 1;
  list.replaceChildren();
  nextCursor = null;
  moreButton.hidden = true;
  status.textContent = "";
}

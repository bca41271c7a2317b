// Studies: a folder (drag and drop or a folder picker) or a ZIP uploaded as one study, its progress while it
// runs in the background, and the past studies with their key-slice thumbnails.
import { deleteStudy, getStudy, listStudies, uploadStudy } from "./api.js";
import { formatDate, labelClass, labelText, percent } from "./format.js";
import { closeStudy, showStudy } from "./viewer.js";

const PAGE_SIZE = 12;
const POLL_MS = 1000;
const dropzone = document.getElementById("study-dropzone");
const folderInput = document.getElementById("study-folder-input");
const zipInput = document.getElementById("study-zip-input");
const windowSelect = document.getElementById("study-window-select");
const progressRow = document.getElementById("study-progress-row");
const progress = document.getElementById("study-progress");
const progressLabel = document.getElementById("study-progress-label");
const status = document.getElementById("study-status");
const errorBox = document.getElementById("study-error");
const list = document.getElementById("studies-list");
const listStatus = document.getElementById("studies-status");
const moreButton = document.getElementById("studies-more");
const template = document.getElementById("study-card-template");

let busy = false;
let nextCursor = null;
let generation = 0;
const polling = new Map(); // study id -> timer

const HEADLINES = {
  0: "The service can't be reached",
  400: "These files couldn't be read",
  413: "This study is too large",
  422: "This is not a study the service can analyse",
  503: "The service is unavailable",
};

function showError(headline, message) {
  const strong = document.createElement("strong");
  strong.textContent = headline;
  const detail = document.createElement("span");
  detail.textContent = message;
  errorBox.replaceChildren(strong, detail);
  errorBox.hidden = false;
}

function statusText(doc) {
  if (doc.status === "queued") return "Queued";
  if (doc.status === "running") return `Analysing: ${doc.progress?.done ?? 0} of ${doc.progress?.total ?? "?"} slices`;
  if (doc.status === "failed") return "Failed";
  return "";
}

function cardFor(doc) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.id = doc.id;
  const thumbs = card.querySelector(".study-thumbs");
  for (const key of (doc.key_slices ?? []).slice(0, 3)) {
    if (!key.file_thumbnail) continue;
    const image = document.createElement("img");
    image.src = key.file_thumbnail;
    image.alt = "";
    image.width = 200;
    image.height = 200;
    image.className = "card-key";
    thumbs.append(image);
  }
  if (!thumbs.children.length) thumbs.classList.add("is-empty");
  const badge = card.querySelector(".badge");
  if (doc.status === "done") {
    badge.textContent = labelText(doc.prediction?.label);
    badge.classList.add(labelClass(doc.prediction?.label));
    card.querySelector(".card-confidence").textContent = `P(COVID) ${percent(doc.prediction?.score)}`;
  } else {
    badge.textContent = statusText(doc);
    badge.classList.add(doc.status === "failed" ? "is-failed" : "is-pending");
    card.querySelector(".card-confidence").textContent = doc.status === "failed" ? doc.error?.message ?? "" : "";
  }
  const time = card.querySelector(".card-date");
  time.dateTime = doc.created_at;
  time.textContent = formatDate(doc.created_at);
  card.querySelector(".card-file").textContent =
    [doc.filename, `${doc.slice_count} slices`, doc.series_description].filter(Boolean).join(" · ");
  card.querySelector(".card-open").addEventListener("click", () => openStudy(doc.id));
  return card;
}

function putCard(doc) {
  const card = cardFor(doc);
  const old = list.querySelector(`[data-id="${CSS.escape(doc.id)}"]`);
  if (old) old.replaceWith(card);
  else list.prepend(card);
  listStatus.textContent = "";
}

async function openStudy(id) {
  try {
    const doc = await getStudy(id);
    putCard(doc);
    if (doc.status === "done") showStudy(doc);
    else if (doc.status === "failed") showError("The study failed", doc.error?.message ?? "");
    else {
      status.textContent = `${doc.filename}: ${statusText(doc)}…`;
      follow(doc);
    }
  } catch (error) {
    listStatus.textContent = error.status === 404 ? "This study no longer exists." : `The study can't be opened: ${error.message}`;
  }
}

// Poll a queued or running study until it is done or failed; its progress on the bar while it is the latest.
function follow(doc, showWhenDone = false) {
  if (polling.has(doc.id)) return;
  const asked = generation;
  const tick = async () => {
    polling.delete(doc.id);
    if (asked !== generation) return;
    let now;
    try {
      now = await getStudy(doc.id);
    } catch (error) {
      if (error.status === 404) return; // deleted meanwhile
      polling.set(doc.id, setTimeout(tick, POLL_MS * 3));
      return;
    }
    putCard(now);
    if (showWhenDone) {
      progress.max = now.progress?.total || 1;
      progress.value = now.progress?.done ?? 0;
      progressLabel.textContent = statusText(now) || "Done";
    }
    if (now.status === "done") {
      if (showWhenDone) {
        progressRow.hidden = true;
        status.textContent = `The study ${now.filename} is analysed.`;
        showStudy(now);
      }
    } else if (now.status === "failed") {
      if (showWhenDone) {
        progressRow.hidden = true;
        status.textContent = "";
        showError("The study could not be analysed", now.error?.message ?? "");
      }
    } else {
      polling.set(doc.id, setTimeout(tick, POLL_MS));
    }
  };
  polling.set(doc.id, setTimeout(tick, POLL_MS));
}

async function upload(files) {
  if (busy || !files.length) return;
  busy = true;
  errorBox.hidden = true;
  progressRow.hidden = false;
  progress.max = 100;
  progress.value = 0;
  progressLabel.textContent = "Uploading 0%";
  const what = files.length === 1 ? files[0].name : `${files.length} files`;
  status.textContent = `Uploading ${what}…`;
  dropzone.classList.add("is-busy");
  try {
    const doc = await uploadStudy(files, windowSelect.value, (fraction) => {
      progress.value = Math.round(fraction * 100);
      progressLabel.textContent = `Uploading ${progress.value}%`;
    }).promise;
    status.textContent = `${doc.filename}: ${doc.slice_count} slices of ${doc.series_description || "the series"} queued.`;
    progressLabel.textContent = "Queued";
    progress.removeAttribute("value");
    putCard(doc);
    follow(doc, true);
  } catch (error) {
    progressRow.hidden = true;
    status.textContent = "";
    showError(HEADLINES[error.status] ?? (error.status >= 500 ? "The upload failed" : "The upload was not accepted"),
      error.message);
  } finally {
    busy = false;
    dropzone.classList.remove("is-busy");
    folderInput.value = "";
    zipInput.value = "";
  }
}

// A dropped folder: every file under it, read through the entries API, each keeping its path in the folder.
async function filesOf(entry, path = "") {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    file.relativePath = path + file.name;
    return [file];
  }
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const child of batch) found.push(...(await filesOf(child, `${path}${entry.name}/`)));
  }
  return found;
}

async function dropped(dataTransfer) {
  const entries = [...(dataTransfer?.items ?? [])].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return upload([...(dataTransfer?.files ?? [])]);
  const files = [];
  for (const entry of entries) files.push(...(await filesOf(entry)));
  return upload(files);
}

async function loadPage(cursor) {
  const asked = generation;
  moreButton.disabled = true;
  listStatus.textContent = cursor ? "Loading older studies…" : "Loading past studies…";
  try {
    const page = await listStudies(PAGE_SIZE, cursor);
    if (asked !== generation) return;
    if (!cursor) list.replaceChildren();
    for (const doc of page.items) {
      list.append(cardFor(doc));
      if (doc.status === "queued" || doc.status === "running") follow(doc);
    }
    nextCursor = page.next_cursor;
    listStatus.textContent = list.children.length ? "" : "No studies yet. Drop a folder or a ZIP of a CT series to start.";
  } catch (error) {
    if (asked === generation) listStatus.textContent = `Past studies can't be shown: ${error.message}`;
  } finally {
    moreButton.disabled = false;
    moreButton.hidden = !nextCursor;
  }
}

export async function confirmAndDeleteStudy(id, name) {
  if (!window.confirm(`Delete the study ${name}, its images and its kept DICOM files? This cannot be undone.`)) return;
  try {
    await deleteStudy(id);
  } catch (error) {
    if (error.status !== 404) {
      listStatus.textContent = `The study was not deleted: ${error.message}`;
      return;
    }
  }
  list.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
  closeStudy(id);
  listStatus.textContent = `Deleted the study ${name}.`;
}

export function initStudies() {
  document.getElementById("study-folder-button").addEventListener("click", () => busy || folderInput.click());
  document.getElementById("study-zip-button").addEventListener("click", () => busy || zipInput.click());
  folderInput.addEventListener("change", () => upload([...folderInput.files]));
  zipInput.addEventListener("change", () => upload([...zipInput.files]));
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropzone.classList.add("is-dragover");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("is-dragover"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("is-dragover");
    dropped(event.dataTransfer);
  });
  moreButton.addEventListener("click", () => loadPage(nextCursor));
  document.getElementById("refresh-studies").addEventListener("click", () => loadPage(null));
}

export const loadStudies = () => loadPage(null);

export function clearStudies() {
  generation += 1;
  for (const timer of polling.values()) clearTimeout(timer);
  polling.clear();
  list.replaceChildren();
  nextCursor = null;
  moreButton.hidden = true;
  listStatus.textContent = "";
  closeStudy();
}

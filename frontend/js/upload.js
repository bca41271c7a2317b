// Choosing a file (drop, click, Enter or Space), uploading it with progress and cancel,
// and telling the person what went wrong in words they can act on.
import { uploadForAnalysis } from "./api.js";

const dropzone = document.getElementById("dropzone");
const input = document.getElementById("file-input");
const windowSelect = document.getElementById("window-select");
const progressRow = document.getElementById("progress-row");
const progress = document.getElementById("upload-progress");
const progressLabel = document.getElementById("progress-label");
const cancelButton = document.getElementById("cancel-upload");
const status = document.getElementById("upload-status");
const errorBox = document.getElementById("upload-error");

// Headlines per HTTP status; the API's own message follows as the explanation.
const HEADLINES = {
  0: "The service can't be reached",
  400: "This file couldn't be read",
  413: "This file is too large",
  415: "This file type isn't supported",
  503: "The service is unavailable",
};

let current = null; // the upload in flight: {abort}

function showError(error) {
  const headline = document.createElement("strong");
  headline.textContent = HEADLINES[error.status] ?? (error.status >= 500 ? "The analysis failed" : "The upload was not accepted");
  const detail = document.createElement("span");
  detail.textContent = error.message;
  errorBox.replaceChildren(headline, detail);
  errorBox.hidden = false;
}

function setBusy(busy) {
  progressRow.hidden = !busy;
  dropzone.classList.toggle("is-busy", busy);
  dropzone.setAttribute("aria-disabled", String(busy));
}

function onProgress({ phase, fraction }) {
  if (phase === "upload") {
    progress.value = Math.round(fraction * 100);
    progressLabel.textContent = `Uploading ${progress.value}%`;
  } else {
    // Bytes are sent; the model is now working, and there is nothing more to measure.
    progress.removeAttribute("value");
    progressLabel.textContent = "Analysing…";
    status.textContent = "Upload complete. Analysing the slice…";
  }
}

async function upload(file, onResult) {
  if (current) return;
  errorBox.hidden = true;
  progress.value = 0;
  progressLabel.textContent = "Uploading 0%";
  status.textContent = `Uploading ${file.name}…`;
  setBusy(true);
  current = uploadForAnalysis(file, windowSelect.value, onProgress);
  try {
    const doc = await current.promise;
    status.textContent = `Analysis of ${file.name} is ready.`;
    onResult(doc);
  } catch (error) {
    if (error.code === "aborted") {
      status.textContent = "Upload cancelled.";
    } else {
      status.textContent = "";
      showError(error);
    }
  } finally {
    current = null;
    setBusy(false);
    input.value = ""; // choosing the same file again should upload it again
  }
}

function openPicker() {
  if (!current) input.click();
}

export function initUpload(onResult) {
  const start = (files) => {
    if (files && files.length) upload(files[0], onResult);
  };
  dropzone.addEventListener("click", openPicker);
  dropzone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault(); // Space would otherwise scroll the page
      openPicker();
    }
  });
  input.addEventListener("change", () => start(input.files));

  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropzone.classList.add("is-dragover");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("is-dragover"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("is-dragover");
    start(event.dataTransfer?.files);
  });
  // A file dropped beside the zone would make the browser navigate away to it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }

  cancelButton.addEventListener("click", () => current?.abort());
  document.getElementById("upload-form").addEventListener("submit", (event) => event.preventDefault());
}

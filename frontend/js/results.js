// The result right after an upload: the slice and its heatmap at full size, with an opacity
// slider that lays the heatmap over the slice for comparison.
import { formatDate } from "./format.js";
import { renderReport } from "./report.js";

const section = document.getElementById("result");
const slice = document.getElementById("result-slice");
const overlay = document.getElementById("result-overlay");
const heatmap = document.getElementById("result-heatmap");
const opacity = document.getElementById("overlay-opacity");
const opacityValue = document.getElementById("overlay-value");
let shownId = null;

function applyOpacity() {
  overlay.style.opacity = String(Number(opacity.value) / 100);
  opacityValue.textContent = `${opacity.value}%`;
}

export function initResults() {
  opacity.addEventListener("input", applyOpacity);
  applyOpacity();
}

export function showResult(doc) {
  shownId = doc.id;
  slice.src = doc.file_url;
  overlay.src = doc.heatmap_url;
  heatmap.src = doc.heatmap_url;
  slice.alt = `The uploaded CT slice${doc.filename ? `, ${doc.filename}` : ""}`;
  document.getElementById("result-meta").textContent =
    [doc.filename, formatDate(doc.created_at)].filter(Boolean).join(" · ");
  renderReport(document.getElementById("result-report"), doc);
  section.hidden = false;
  // Move focus so keyboard and screen-reader users land on the new result.
  section.focus({ preventScroll: true });
  section.scrollIntoView({ behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth", block: "start" });
}

export function forgetResult(id) {
  if (id !== shownId) return;
  shownId = null;
  section.hidden = true;
  for (const img of [slice, overlay, heatmap]) img.removeAttribute("src");
}

// Signed out: the last result goes with the user who made it.
export const clearResult = () => forgetResult(shownId);

// One study in the study view: its answer, a slice scroller (mouse wheel, arrow keys, slider) with a heatmap
// toggle, a strip chart of P(COVID) along the slices (threshold and not-assessed slices marked), key slices
// as thumbnails, findings and recommendations, and the study as DICOM: where it came from, whether its results
// reached the PACS, and the SR and key images to download. Images and files are fetched with the user's token.
import { getSliceImage, getStudy, getStudyDicom } from "./api.js";
import { formatDate, labelClass, labelText, modelText, percent } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 400, height: 120, left: 28, right: 6, top: 8, bottom: 18 };
const CACHED_SLICES = 64; // blob URLs kept at once (a 1,000-slice study is fetched slice by slice)
const DELIVERY_POLL_MS = 2000; // a delivery to the PACS still pending is read again this often while shown

const section = document.getElementById("study");
const viewport = document.getElementById("study-viewport");
const sliceImage = document.getElementById("study-slice-image");
const heatmapImage = document.getElementById("study-heatmap-image");
const slider = document.getElementById("study-slider");
const caption = document.getElementById("study-slice-caption");
const toggle = document.getElementById("study-heatmap-toggle");
const chart = document.getElementById("study-chart");
const keys = document.getElementById("study-keys");
const dicom = document.getElementById("study-dicom");
const delivery = document.getElementById("study-delivery");
const downloads = document.getElementById("study-downloads");
const downloadStatus = document.getElementById("study-download-status");

let shown = null; // the study document on screen
let index = 0;
let cache = new Map(); // "index/name" -> blob URL, oldest first
let handlers = { deleted: () => {} };
let deliveryTimer = null;

function fillList(list, items) {
  list.replaceChildren(...(items?.length ? items : ["None reported."]).map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  parent?.append(element);
  return element;
}

const x = (i, n) => CHART.left + (n > 1 ? (i * (CHART.width - CHART.left - CHART.right)) / (n - 1) : 0);
const y = (p) => CHART.top + (1 - p) * (CHART.height - CHART.top - CHART.bottom);

function drawChart(doc) {
  chart.replaceChildren();
  const slices = doc.slices ?? [];
  const n = slices.length;
  const threshold = doc.prediction?.threshold ?? 0.5;
  const bottom = CHART.height - CHART.bottom;
  svg("rect", { x: CHART.left, y: CHART.top, width: CHART.width - CHART.left - CHART.right,
                height: bottom - CHART.top, class: "chart-frame" }, chart);
  for (const p of [0, 0.5, 1]) {
    svg("text", { x: CHART.left - 4, y: y(p) + 3, class: "chart-tick", "text-anchor": "end" }, chart).textContent = `${p * 100}%`;
  }
  const band = n > 1 ? (CHART.width - CHART.left - CHART.right) / (n - 1) : 8;
  for (const s of slices) {
    if (!s.assessable) {
      svg("rect", { x: x(s.index, n) - Math.max(1, band / 2), y: CHART.top, width: Math.max(2, band),
                    height: bottom - CHART.top, class: "chart-unassessed" }, chart).append(
        Object.assign(document.createElementNS(SVG, "title"), {
          textContent: `Slice ${s.index + 1}: not assessed (${s.reason ?? "not assessable"})` }));
    }
  }
  const line = svg("line", { x1: CHART.left, x2: CHART.width - CHART.right, y1: y(threshold), y2: y(threshold),
                             class: "chart-threshold" }, chart);
  line.append(Object.assign(document.createElementNS(SVG, "title"), { textContent: `Threshold ${percent(threshold)}` }));
  let points = [];
  const flush = () => {
    if (points.length) svg("polyline", { points: points.join(" "), class: "chart-line" }, chart);
    points = [];
  };
  for (const s of slices) {
    if (s.probability == null) flush();
    else points.push(`${x(s.index, n).toFixed(1)},${y(s.probability).toFixed(1)}`);
  }
  flush();
  for (const key of doc.key_slices ?? []) {
    svg("circle", { cx: x(key.index, n), cy: y(key.probability), r: 3, class: "chart-key" }, chart);
  }
  svg("line", { id: "study-chart-current", x1: 0, x2: 0, y1: CHART.top, y2: bottom, class: "chart-current" }, chart);
  const end = (s, fallback) => (s?.z != null ? `slice ${s.index + 1}, z = ${Number(s.z).toFixed(0)} mm` : fallback);
  svg("text", { x: CHART.left, y: CHART.height - 4, class: "chart-tick" }, chart).textContent = end(slices[0], "slice 1");
  svg("text", { x: CHART.width - CHART.right, y: CHART.height - 4, class: "chart-tick", "text-anchor": "end" }, chart)
    .textContent = end(slices[n - 1], `slice ${n}`);
}

function drawKeys(doc) {
  keys.replaceChildren(...(doc.key_slices ?? []).map((key) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "key-slice";
    button.dataset.index = String(key.index);
    const image = document.createElement("img");
    image.alt = "";
    image.width = 100;
    image.height = 100;
    if (key.file_thumbnail) image.src = key.file_thumbnail;
    const heat = document.createElement("img");
    heat.alt = "";
    heat.width = 100;
    heat.height = 100;
    if (key.heatmap_thumbnail) heat.src = key.heatmap_thumbnail;
    const text = document.createElement("span");
    text.textContent = `Slice ${key.index + 1} · ${percent(key.probability)}`;
    button.setAttribute("aria-label", `Show slice ${key.index + 1}, P(COVID) ${percent(key.probability)}`);
    button.append(image, heat, text);
    button.addEventListener("click", () => { setIndex(key.index); viewport.focus(); });
    item.append(button);
    return item;
  }));
}

function deliveryText({ state, to, error, attempts }) {
  if (state === "sent") return `Results sent to ${to}.`;
  if (state === "pending" && error) return `Sending the results to ${to}: attempt ${attempts} failed (${error}); trying again…`;
  if (state === "pending") return `Sending the results to ${to}…`;
  return `The results could not be sent to ${to}: ${error ?? "no reason given"}. They are kept here to download.`;
}

function drawDicom(doc) {
  const source = document.getElementById("study-source");
  source.hidden = !doc.source;
  const sender = doc.source?.calling_ae ? ` from ${doc.source.calling_ae}` : "";
  source.textContent = doc.source ? `Received by ${doc.source.protocol}${sender}.` : "";
  const sending = doc.results_delivery;
  delivery.hidden = !sending;
  delivery.className = sending ? `delivery is-${sending.state}` : "delivery";
  delivery.textContent = sending ? deliveryText(sending) : "";
  downloads.hidden = !doc.dicom_results;
  downloadStatus.textContent = "";
  dicom.hidden = !(doc.source || sending || doc.dicom_results);
  clearTimeout(deliveryTimer);
  if (sending?.state === "pending") deliveryTimer = setTimeout(() => followDelivery(doc), DELIVERY_POLL_MS);
}

// Sending starts once the study is done, so a study may be shown while its results are on their way.
async function followDelivery(doc) {
  try {
    const now = await getStudy(doc.id);
    Object.assign(doc, { results_delivery: now.results_delivery, dicom_results: now.dicom_results });
  } catch {
    // read again at the next tick
  }
  if (shown === doc) drawDicom(doc);
}

async function download(name, filename) {
  const doc = shown;
  downloadStatus.textContent = "";
  try {
    const url = URL.createObjectURL(await getStudyDicom(doc.id, name));
    const link = Object.assign(document.createElement("a"), { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (error) {
    if (shown === doc) downloadStatus.textContent = `The file can't be downloaded: ${error.message}`;
  }
}

async function imageUrl(doc, i, name) {
  const key = `${i}/${name}`;
  if (cache.has(key)) return cache.get(key);
  const url = URL.createObjectURL(await getSliceImage(doc.id, i, name));
  if (shown !== doc) {
    URL.revokeObjectURL(url);
    return null;
  }
  cache.set(key, url);
  while (cache.size > CACHED_SLICES) {
    const [oldest, old] = cache.entries().next().value;
    if (old === sliceImage.src || old === heatmapImage.src) break;
    URL.revokeObjectURL(old);
    cache.delete(oldest);
  }
  return url;
}

function describe(s, n) {
  const parts = [`Slice ${s.index + 1} of ${n}`];
  if (s.z != null) parts.push(`z = ${Number(s.z).toFixed(1)} mm`);
  if (s.error) parts.push("could not be decoded");
  else {
    parts.push(`P(COVID) ${percent(s.probability)}`);
    if (!s.assessable) {
      const why =
        {
          no_lung_field: "no lung field",
          not_chest_ct: "not like chest CT",
          low_resolution: "lungs too few pixels across",
        }[s.reason] ?? "not assessable";
      parts.push(`not assessed (${why}): not counted`);
    }
  }
  return parts.join(" · ");
}

export async function setIndex(next) {
  const doc = shown;
  if (!doc?.slices?.length) return;
  const n = doc.slices.length;
  index = Math.max(0, Math.min(n - 1, next));
  slider.value = String(index);
  const s = doc.slices[index];
  caption.textContent = describe(s, n);
  const current = document.getElementById("study-chart-current");
  current?.setAttribute("x1", String(x(index, n)));
  current?.setAttribute("x2", String(x(index, n)));
  sliceImage.alt = `Slice ${index + 1} of the study`;
  const asked = index;
  try {
    const [slice, heat] = await Promise.all([imageUrl(doc, asked, "slice.jpg"), imageUrl(doc, asked, "heatmap.jpg")]);
    if (shown !== doc || index !== asked || !slice) return;
    sliceImage.src = slice;
    heatmapImage.src = heat;
  } catch {
    if (shown === doc && index === asked) {
      sliceImage.removeAttribute("src");
      heatmapImage.removeAttribute("src");
    }
  }
}

function clearCache() {
  for (const url of cache.values()) URL.revokeObjectURL(url);
  cache = new Map();
}

export function showStudy(doc) {
  clearCache();
  shown = doc;
  const n = doc.slices?.length ?? 0;
  document.getElementById("study-title").textContent = doc.filename ? `Study: ${doc.filename}` : "Study";
  document.getElementById("study-meta").textContent = [
    formatDate(doc.created_at), doc.series_description, `${doc.slice_count} slices`, `ID ${doc.id}`,
  ].filter(Boolean).join(" · ");
  const prediction = doc.prediction ?? {};
  const badge = document.getElementById("study-badge");
  badge.className = `badge ${labelClass(prediction.label)}`;
  badge.textContent = labelText(prediction.label);
  document.getElementById("study-score").textContent =
    `P(COVID) ${percent(prediction.score)} (threshold ${percent(prediction.threshold)}), ` +
    `${prediction.assessable_slices} of ${doc.slice_count} slices assessed`;
  document.getElementById("study-rule").textContent = `Rule: ${prediction.aggregation ?? ""}.`;
  fillList(document.getElementById("study-findings"), doc.findings);
  fillList(document.getElementById("study-recommendations"), doc.recommendations);
  document.getElementById("study-model").textContent = `Model: ${modelText(doc.model) || "not reported"}`;
  slider.max = String(Math.max(0, n - 1));
  drawChart(doc);
  drawKeys(doc);
  drawDicom(doc);
  section.hidden = false;
  setIndex(doc.key_slices?.length ? doc.key_slices[0].index : Math.floor(n / 2));
  section.focus({ preventScroll: true });
  section.scrollIntoView({ behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth", block: "start" });
}

export function closeStudy(id) {
  if (id && shown?.id !== id) return;
  shown = null;
  section.hidden = true;
  clearTimeout(deliveryTimer);
  clearCache();
  sliceImage.removeAttribute("src");
  heatmapImage.removeAttribute("src");
}

export const shownStudy = () => shown;

function applyToggle() {
  heatmapImage.classList.toggle("is-visible", toggle.checked);
}

export function initViewer({ onDelete }) {
  handlers = { deleted: onDelete };
  slider.addEventListener("input", () => setIndex(Number(slider.value)));
  toggle.addEventListener("change", applyToggle);
  applyToggle();
  viewport.addEventListener("wheel", (event) => {
    if (!shown) return;
    event.preventDefault();
    setIndex(index + Math.sign(event.deltaY));
  }, { passive: false });
  viewport.addEventListener("keydown", (event) => {
    const steps = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 };
    if (event.key in steps) setIndex(index + steps[event.key]);
    else if (event.key === "Home") setIndex(0);
    else if (event.key === "End") setIndex(Number.MAX_SAFE_INTEGER);
    else if (event.key === "h" || event.key === "H") {
      toggle.checked = !toggle.checked;
      applyToggle();
    } else return;
    event.preventDefault();
  });
  chart.addEventListener("click", (event) => {
    const n = shown?.slices?.length;
    if (!n) return;
    const box = chart.getBoundingClientRect();
    const at = ((event.clientX - box.left) / box.width) * CHART.width;
    setIndex(Math.round(((at - CHART.left) / (CHART.width - CHART.left - CHART.right)) * (n - 1)));
  });
  document.getElementById("study-sr-download").addEventListener("click", () => {
    if (shown) download("sr.dcm", `study-${shown.id}-sr.dcm`);
  });
  document.getElementById("study-keys-download").addEventListener("click", () => {
    if (shown) download("key-images.zip", `study-${shown.id}-key-images.zip`);
  });
  document.getElementById("study-close").addEventListener("click", () => closeStudy());
  document.getElementById("study-delete").addEventListener("click", () => {
    if (shown) handlers.deleted(shown.id, shown.filename || "this study");
  });
}

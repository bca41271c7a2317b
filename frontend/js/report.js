// The written part of an analysis (prediction, probability bars, findings, recommendations,
// model), shared by the fresh result and the stored detail view.
import { labelClass, labelText, modelText, percent } from "./format.js";

const template = document.getElementById("report-template");

function fillList(list, items) {
  list.replaceChildren();
  const entries = Array.isArray(items) && items.length ? items : ["None reported."];
  for (const text of entries) {
    const item = document.createElement("li");
    item.textContent = text;
    list.append(item);
  }
}

function fillBars(dl, probabilities) {
  dl.replaceChildren();
  for (const [label, p] of Object.entries(probabilities ?? {})) {
    const term = document.createElement("dt");
    term.textContent = labelText(label);
    const track = document.createElement("div");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("div");
    fill.className = `bar-fill ${labelClass(label)}`;
    // CSSOM writes are allowed under the Content-Security-Policy; style="" attributes are not.
    fill.style.width = `${Math.max(0, Math.min(1, Number(p))) * 100}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(p);
    const detail = document.createElement("dd");
    detail.append(track, value);
    dl.append(term, detail);
  }
}

export function renderReport(container, doc) {
  const fragment = template.content.cloneNode(true);
  const prediction = doc.prediction ?? {};
  const badge = fragment.querySelector(".badge");
  badge.textContent = labelText(prediction.label);
  badge.classList.add(labelClass(prediction.label));
  fragment.querySelector(".prediction-confidence").textContent = `${percent(prediction.confidence)} confidence`;
  fillBars(fragment.querySelector(".bars"), prediction.probabilities);
  fillList(fragment.querySelector(".findings"), doc.findings);
  fillList(fragment.querySelector(".recommendations"), doc.recommendations);
  fragment.querySelector(".model").textContent = `Model: ${modelText(doc.model) || "not reported"}`;
  container.replaceChildren(fragment);
}

// Wires the dashboard's parts together and reports whether the service is up.
import { getHealth } from "./api.js";
import { openDetail, initDetail } from "./detail.js";
import { addToHistory, confirmAndDelete, initHistory } from "./history.js";
import { forgetResult, initResults, showResult } from "./results.js";
import { initUpload } from "./upload.js";
import { modelText } from "./format.js";

const serviceStatus = document.getElementById("service-status");
const historyStatus = document.getElementById("history-status");

async function checkHealth() {
  try {
    const health = await getHealth();
    const model = modelText(health.model);
    serviceStatus.textContent = health.status === "ok" ? "Service available" : `Service ${health.status}`;
    serviceStatus.classList.add(health.status === "ok" ? "is-ok" : "is-down");
    if (model) document.getElementById("footer-model").textContent = `Model: ${model}.`;
  } catch {
    serviceStatus.textContent = "Service unavailable";
    serviceStatus.classList.add("is-down");
  }
}

initResults();
initUpload((doc) => {
  showResult(doc);
  addToHistory(doc);
});
initDetail(confirmAndDelete);
initHistory(
  (id) => openDetail(id, (message) => { historyStatus.textContent = message; }),
  (id) => forgetResult(id),
);
checkHealth();

// Wires the dashboard's parts together and reports whether the service is up. With
// AUTH_MODE=firebase the work area appears only once someone is signed in.
import { getAuthConfig, getHealth } from "./api.js";
import { openDetail, initDetail } from "./detail.js";
import { addToHistory, clearHistory, confirmAndDelete, initHistory, loadHistory } from "./history.js";
import { clearResult, forgetResult, initResults, showResult } from "./results.js";
import { initUpload } from "./upload.js";
import { clearStudies, confirmAndDeleteStudy, initStudies, loadStudies } from "./studies.js";
import { initViewer } from "./viewer.js";
import { modelText } from "./format.js";

const serviceStatus = document.getElementById("service-status");
const historyStatus = document.getElementById("history-status");
const workArea = ["upload-panel", "study-upload-panel", "studies-panel", "history-panel"]
  .map((id) => document.getElementById(id));

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

function showWorkArea(shown) {
  for (const panel of workArea) panel.hidden = !shown;
}

// AUTH_MODE=firebase: sign-in first; the SDK is loaded only then.
async function startSignedIn(config) {
  showWorkArea(false);
  const { initSession } = await import("./session.js");
  initSession(config, {
    onSignedIn: () => {
      clearHistory();
      clearStudies();
      showWorkArea(true);
      loadHistory();
      loadStudies();
    },
    onSignedOut: () => {
      const detail = document.getElementById("detail-dialog");
      if (detail.open) detail.close();
      showWorkArea(false);
      clearHistory();
      clearStudies();
      clearResult();
    },
  });
}

async function start() {
  initResults();
  initUpload((doc) => {
    showResult(doc);
    addToHistory(doc);
  });
  initDetail(confirmAndDelete, addToHistory);
  initViewer({ onDelete: confirmAndDeleteStudy });
  initStudies();
  initHistory(
    (id) => openDetail(id, (message) => { historyStatus.textContent = message; }),
    (id) => forgetResult(id),
  );
  checkHealth();
  // An unreachable service answers nothing either way; the page then behaves as without accounts.
  const config = await getAuthConfig().catch(() => ({ mode: "none" }));
  if (config.mode === "firebase") startSignedIn(config);
  else {
    loadHistory();
    loadStudies();
  }
}

start();

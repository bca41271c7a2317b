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
    serviceStatus.classList.remove("is-ok", "is-down");
    serviceStatus.classList.add(health.status === "ok" ? "is-ok" : "is-down");
    if (model) document.getElementById("footer-model").textContent = `Model: ${model}.`;
  } catch {
    showUnavailable("Service unavailable");
  }
}

function showUnavailable(text) {
  serviceStatus.textContent = text;
  serviceStatus.classList.remove("is-ok");
  serviceStatus.classList.add("is-down");
}

const RETRY_MS = 3000;

// The service's sign-in mode decides what the page shows, so it is waited for, never guessed: an
// unreachable service is not a service without accounts.
async function authConfig() {
  for (;;) {
    try {
      return await getAuthConfig();
    } catch {
      showUnavailable("Service unavailable: trying again…");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
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
  showWorkArea(false);
  const config = await authConfig();
  checkHealth();
  if (config.mode === "firebase") startSignedIn(config);
  else {
    showWorkArea(true);
    loadHistory();
    loadStudies();
  }
}

start();

// The page: "Write" streams a continuation from /v1/completions (write.js); "Check text" colours tokens by
// their rank under the model (/v1/detect), as GLTR does (check.js, tokens.js). This file wires the two
// views together: the tabs (ARIA's tabs pattern: arrow keys, Home and End) and the server's limits.
import { $, info, showError } from "./common.js";
import { check, loadExamples, wireCheck } from "./check.js";
import { wireTokens } from "./tokens.js";
import { updateCount, wireWrite, writtenText } from "./write.js";

const TABS = ["write", "check"];

function selectTab(name, focus) {
  for (const tab of TABS) {
    const on = tab === name;
    const button = $("tab-" + tab);
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1; // one tab in the tab order; the arrow keys move between them
    $("panel-" + tab).hidden = !on;
  }
  if (focus) $("tab-" + name).focus();
  if (name === "check") loadExamples();
  showError("");
}

function onTabKey(event) {
  const at = TABS.indexOf(event.target.id.replace("tab-", ""));
  const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  selectTab(TABS[(next + TABS.length) % TABS.length], true);
}

async function loadInfo() {
  try {
    const health = await (await fetch("/health")).json();
    info.model = health.model;
    info.context = health.context_length;
    info.maxTokens = Math.min(health.max_tokens_limit, health.context_length - 1);
    info.detectorMinTokens = health.detector_min_tokens;
    $("model-name").textContent = health.model;
    $("model-name").title = `reads up to ${health.context_length} tokens at once`;
    $("key-box").hidden = !health.auth_required;
    $("max-tokens").max = String(info.maxTokens);
    $("length-max").textContent = `max ${info.maxTokens}`;
  } catch (_) {
    $("model-name").textContent = "(server unreachable)";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of TABS) {
    $("tab-" + tab).addEventListener("click", () => selectTab(tab));
    $("tab-" + tab).addEventListener("keydown", onTabKey);
  }
  $("error-close").addEventListener("click", () => showError(""));
  wireWrite();
  wireCheck();
  wireTokens();
  $("to-check").addEventListener("click", () => {
    $("check-text").value = writtenText();
    selectTab("check");
    check(false);
  });
  loadInfo().then(() => { if ($("prompt").value) updateCount(); });
});

// The page: "Write" streams a continuation from /v1/completions; "Check text" colours tokens by their rank
// under the model (/v1/detect), as GLTR does. All text goes into the DOM as text nodes, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const BUCKETS = [
  ["top10", "top 10"],
  ["top100", "top 100"],
  ["top1000", "top 1000"],
  ["rest", "further down"],
];
let controller = null; // aborts the running generation
let checking = false; // a check is in flight: a newer text waits for it instead of piling up on the server
let checkAgain = false; // the text changed while a check was in flight
let checkTimer = null; // the debounce of checking as the user types
const CHECK_DELAY_MS = 600; // typing pauses this long before the text is checked

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function post(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const data = await response.json();
      if (data.error && data.error.message) message = data.error.message;
    } catch (_) { /* not JSON */ }
    if (response.status === 401) $("key-box").hidden = false;
    const retry = response.headers.get("Retry-After");
    if (retry) message += " (try again in " + retry + " s)";
    throw new Error(message);
  }
  return response;
}

function number(id, fallback) {
  const value = $(id).value.trim();
  return value === "" ? fallback : Number(value);
}

// ---- tabs ----

function selectTab(name) {
  for (const tab of ["write", "check"]) {
    const on = tab === name;
    $("tab-" + tab).setAttribute("aria-selected", String(on));
    $("panel-" + tab).hidden = !on;
  }
  showError("");
}

// ---- write ----

async function generate() {
  showError("");
  const prompt = $("prompt").value;
  let seed = number("seed", null);
  if (seed === null) seed = Math.floor(Math.random() * 2 ** 31);
  const body = {
    prompt,
    max_tokens: number("max-tokens", 100),
    temperature: number("temperature", 1),
    top_k: number("top-k", 0),
    top_p: number("top-p", 1),
    seed,
    stream: true,
  };
  $("output").hidden = false;
  $("output-actions").hidden = true;
  $("output-prompt").textContent = prompt;
  $("output-text").textContent = "";
  $("caret").hidden = false;
  $("generate").disabled = true;
  $("stop").disabled = false;
  $("write-status").textContent = "Generating…";
  controller = new AbortController();
  const started = performance.now();
  let finish = null;
  let pieces = 0;
  try {
    const response = await post("/v1/completions", body, controller.signal);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          for (const choice of chunk.choices) {
            if (choice.text) $("output-text").append(document.createTextNode(choice.text));
            if (choice.finish_reason) finish = choice.finish_reason;
            pieces += 1;
          }
        }
      }
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const why = finish === "length" ? "reached the length" : finish === "stop" ? "the model ended the text" : "done";
    $("write-status").textContent = `${why} · ${seconds} s · seed ${seed}`;
  } catch (error) {
    if (error.name === "AbortError") {
      $("write-status").textContent = `stopped · seed ${seed}`;
    } else {
      $("write-status").textContent = "";
      showError(error.message);
    }
  } finally {
    controller = null;
    $("caret").hidden = true;
    $("generate").disabled = false;
    $("stop").disabled = true;
    $("output-actions").hidden = pieces === 0 && !$("output-text").textContent;
  }
}

// ---- check ----

// Check the text: on the button (`live` false), or a pause in typing (`live` true, quiet when empty).
// One check at a time: the server runs every request it receives, so a text typed meanwhile is checked
// when the running one returns, and a result is shown only if the box still holds the text it is for.
async function check(live) {
  showError("");
  const text = $("check-text").value;
  if (!text.trim()) {
    if (live) $("result").hidden = true; // nothing to show for an empty box
    else showError("Paste a text to check first.");
    return;
  }
  if (checking) {
    checkAgain = true;
    return;
  }
  checking = true;
  $("check-status").textContent = "Checking…";
  try {
    const response = await post("/v1/detect", { text, alternatives: 5 });
    const data = await response.json();
    if ($("check-text").value === text) render(data);
    $("check-status").textContent = "";
  } catch (error) {
    $("check-status").textContent = "";
    showError(error.message);
  } finally {
    checking = false;
    if (checkAgain) {
      checkAgain = false;
      check(true);
    }
  }
}

function checkSoon() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => check(true), CHECK_DELAY_MS);
}

function render(data) {
  const tokens = $("tokens");
  tokens.replaceChildren();
  data.tokens.forEach((token, i) => {
    const span = el("span", "tok b-" + token.bucket, token.text);
    span.dataset.index = String(i);
    tokens.append(span);
  });
  tokens.tokenData = data.tokens;

  const histogram = $("histogram");
  histogram.replaceChildren();
  for (const [bucket, label] of BUCKETS) {
    const fraction = data.fractions[bucket];
    const row = el("div", "hrow");
    row.dataset.bucket = bucket;
    const track = el("div", "htrack");
    const bar = el("div", "hbar b-" + bucket);
    bar.style.width = (100 * fraction).toFixed(1) + "%";
    track.append(bar);
    row.append(el("span", "", label), track, el("span", "hval", Math.round(100 * fraction) + "%"));
    row.title = `${data.counts[bucket]} of ${data.tokens.length} tokens`;
    histogram.append(row);
  }
  const top10 = Math.round(100 * data.fractions.top10);
  $("summary").textContent = `${data.tokens.length} tokens; ${top10}% were among the model's 10 most likely choices.`;

  const score = $("score");
  score.replaceChildren();
  if (data.detector && data.detector.score !== null) {
    const value = Math.max(0, Math.min(1, data.detector.score));
    const odds = el("div", "odds");
    odds.append(el("span", "real", `Real ${percent(1 - value)}`), el("span", "fake", `Fake ${percent(value)}`));
    score.append(odds);
    const meter = el("div", "meter");
    meter.title = "fake (machine-written) probability";
    const fill = el("div");
    fill.style.width = (100 * value).toFixed(1) + "%";
    meter.append(fill);
    score.append(meter);
    score.append(el("div", "note", `${data.detector.name}: updated as you type; "fake" = written by a model`));
  } else {
    score.append(el("div", "note", "No detector is configured (start the server with --detector DIR)."));
  }
  $("result").hidden = false;
}

function percent(p) {
  const value = 100 * p;
  return value >= 1 ? value.toFixed(1) + "%" : value >= 0.01 ? value.toFixed(2) + "%" : value.toExponential(1) + "%";
}

function showTooltip(event) {
  const span = event.target.closest(".tok");
  const tooltip = $("tooltip");
  if (!span) {
    tooltip.hidden = true;
    return;
  }
  const token = $("tokens").tokenData[Number(span.dataset.index)];
  const label = BUCKETS.find(([b]) => b === token.bucket)[1];
  tooltip.replaceChildren();
  const head = el("div");
  head.append(el("span", "tt-token", JSON.stringify(token.token).slice(1, -1)));
  tooltip.append(head);
  const line = el("div");
  const swatch = el("span", "swatch b-" + token.bucket);
  line.append(swatch, document.createTextNode(
    `rank ${token.rank} (${label}) · probability ${percent(token.prob)}`));
  tooltip.append(line);
  if (token.top.length) {
    tooltip.append(el("div", "", "The model expected:"));
    const table = el("table");
    for (const alt of token.top) {
      const tr = el("tr");
      const name = el("td");
      name.append(el("span", "tt-token", JSON.stringify(alt.token).slice(1, -1)));
      tr.append(name, el("td", "p", percent(alt.prob)));
      table.append(tr);
    }
    tooltip.append(table);
  }
  tooltip.hidden = false;
  const rect = span.getBoundingClientRect();
  const width = tooltip.offsetWidth;
  const height = tooltip.offsetHeight;
  let left = Math.min(rect.left, window.innerWidth - width - 8);
  let top = rect.bottom + 6;
  if (top + height > window.innerHeight - 8) top = rect.top - height - 6;
  tooltip.style.left = Math.max(8, left) + "px";
  tooltip.style.top = Math.max(8, top) + "px";
}

// ---- wiring ----

async function loadInfo() {
  try {
    const info = await (await fetch("/health")).json();
    $("model-name").textContent = info.model;
    $("key-box").hidden = !info.auth_required;
    $("max-tokens").max = String(Math.min(info.max_tokens_limit, info.context_length - 1));
  } catch (_) {
    $("model-name").textContent = "(server unreachable)";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("tab-write").addEventListener("click", () => selectTab("write"));
  $("tab-check").addEventListener("click", () => selectTab("check"));
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("generate").disabled) generate();
  });
  $("check").addEventListener("click", () => check(false));
  $("check-text").addEventListener("input", checkSoon);
  $("temperature-range").addEventListener("input", (e) => { $("temperature").value = e.target.value; });
  $("temperature").addEventListener("input", (e) => { $("temperature-range").value = e.target.value; });
  $("to-check").addEventListener("click", () => {
    $("check-text").value = $("output-prompt").textContent + $("output-text").textContent;
    selectTab("check");
    check();
  });
  $("continue").addEventListener("click", () => {
    $("prompt").value = $("output-prompt").textContent + $("output-text").textContent;
    $("prompt").focus();
  });
  $("tokens").addEventListener("mouseover", showTooltip);
  $("tokens").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  loadInfo();
});

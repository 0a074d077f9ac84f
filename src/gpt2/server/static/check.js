// The Check view: GLTR's colours for a text of any length (/v1/detect), the rank histogram, the window
// the model read, and the detector's score with what it was trained on and how accurate it measured.
import { $, countTokens, el, explain, info, markField, percent, plural, post, showError } from "./common.js";
import { BUCKETS, hideDetails, renderTokens } from "./tokens.js";

const CHECK_DELAY_MS = 600; // typing pauses this long before the text is checked
const SAMPLE_TOKENS = 120; // the model-written example's length
// Detectors by the names gpt2.detection saves them under, in words a reader knows.
const DETECTOR_WORDS = {
  tfidf: "a word-frequency classifier (TF-IDF, OpenAI's baseline)",
  gltr: "a classifier on token-rank statistics (GLTR)",
  classifier: "a fine-tuned GPT-2 classifier",
  "encoder-classifier": "a fine-tuned encoder classifier (RoBERTa-style)",
  loglik: "a log-likelihood test",
  logrank: "a log-rank test",
  entropy: "an entropy test",
  "fast-detectgpt": "Fast-DetectGPT (a zero-shot test)",
  binoculars: "Binoculars (a zero-shot test)",
};
let checking = false; // a check is in flight: a newer text waits for it instead of piling up on the server
let checkAgain = false; // the text changed while a check was in flight
let checkTimer = null;
let sample = null; // the model-written example, once written

// Check the text: on the button (`live` false), or a pause in typing (`live` true, quiet when empty).
// One check at a time: the server runs every request it receives, so a text typed meanwhile is checked
// when the running one returns, and a result is shown only if the box still holds the text it is for.
export async function check(live) {
  showError("");
  markField("check-text", "");
  const text = $("check-text").value;
  if (!text.trim()) {
    clearResult();
    if (!live) {
      markField("check-text", "Paste or type a text to check, or pick an example above.");
      showError("Paste a text to check first, or pick an example.");
    }
    return;
  }
  if (checking) {
    checkAgain = true;
    return;
  }
  checking = true;
  $("result").classList.add("stale"); // until the answer comes, what is shown is for another text
  $("check-status").textContent = "Checking…";
  try {
    const response = await post("/v1/detect", { text, alternatives: 5 });
    const data = await response.json();
    if ($("check-text").value === text) render(data);
  } catch (error) {
    clearResult(); // no old colours or old score under the new error
    showError(explain(error));
  } finally {
    $("check-status").textContent = "";
    checking = false;
    if (checkAgain) {
      checkAgain = false;
      check(true);
    }
  }
}

function clearResult() {
  $("result").hidden = true;
  $("result").classList.remove("stale");
  $("tokens").replaceChildren();
  $("score").replaceChildren();
  hideDetails();
}

export function checkSoon() {
  if (!$("result").hidden) $("result").classList.add("stale");
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => check(true), CHECK_DELAY_MS);
  countSoon();
}

let countTimer = null;
function countSoon() {
  clearTimeout(countTimer);
  countTimer = setTimeout(async () => {
    const text = $("check-text").value;
    const counted = text ? await countTokens(text) : { tokens: 0 };
    if ($("check-text").value === text) $("check-count").textContent = counted && text ? plural(counted.tokens, "token") : "";
  }, 250);
}

function render(data) {
  renderTokens(data.tokens);
  renderHistogram(data);
  renderWindow(data);
  renderScore(data);
  $("result").hidden = false;
  $("result").classList.remove("stale");
  $("check-count").textContent = plural(data.tokens.length, "token");
}

function renderHistogram(data) {
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
  $("summary").textContent = `${plural(data.tokens.length, "token")}; ${top10}% were among the model's 10 most likely choices.`;
}

// What the model read: all of a short text at once; a long one in overlapping windows of its context.
function renderWindow(data) {
  const w = data.window;
  $("window-note").textContent = w.windows <= 1
    ? `The model read the whole text at once (it reads up to ${w.context} tokens).`
    : `Longer than the ${w.context} tokens the model reads at once, so it read the text in ${w.windows} ` +
      `overlapping windows of ${w.context} tokens, each ${w.stride} further on: every token was ranked once, ` +
      `after the first ${w.context} with at least ${w.context - w.stride} tokens before it.`;
}

function renderScore(data) {
  const score = $("score");
  score.replaceChildren();
  const d = data.detector;
  if (!d) {
    score.append(el("p", "note", "No detector is configured (start the server with --detector DIR)."));
    return;
  }
  const words = DETECTOR_WORDS[d.name] || `the detector "${d.name}"`;
  const trained = d.trained_on ? `Trained on ${d.trained_on}.` : "What it was trained on is not recorded.";
  if (!d.shown) {
    score.append(el("p", "note", `This text is ${plural(data.tokens.length, "token")}; the detector, ${words}, ` +
      `says nothing below ${d.min_tokens} tokens, where its guesses are little better than chance.`));
    return;
  }
  const value = Math.max(0, Math.min(1, d.score));
  const odds = el("div", "odds");
  odds.append(el("span", "fake", `Model-written ${percent(value)}`), el("span", "real", `Human-written ${percent(1 - value)}`));
  const meter = el("div", "meter");
  meter.setAttribute("role", "img");
  meter.setAttribute("aria-label", `model-written probability ${percent(value)}`);
  const fill = el("div");
  fill.style.width = (100 * value).toFixed(1) + "%";
  meter.append(fill);
  score.append(odds, meter, el("p", "note", `How likely ${words} finds it that a model wrote this text. ${trained}`));
  score.append(el("p", "note accuracy", accuracyText(d.accuracy)));
  if (d.windows.length > 1) {
    score.append(el("p", "note", `It reads ${d.window_tokens} tokens at a time: the mean over ${d.windows.length} ` +
      `windows (${d.windows.map((w) => Math.round(100 * w.score) + "%").join(", ")}).`));
  }
}

function accuracyText(a) {
  if (!a) return "Measured accuracy: not measured. Treat the number as a hint, not a verdict.";
  const texts = a.texts ? ` (${plural(a.texts, "text")})` : "";
  const at = a.length ? ` at ${a.length}, this text's length,` : "";
  const on = a.on ? ` on ${a.on}` : "";
  return `Measured accuracy: ${Math.round(100 * a.value)}%${at}${on}${texts}. ` +
    "On other kinds of text, or other models, expect less.";
}

// ---- examples ----

export async function loadExamples() {
  if ($("examples").dataset.loaded) return;
  $("examples").dataset.loaded = "1";
  let human = [];
  try {
    human = (await (await fetch("/examples")).json()).human;
  } catch (_) { /* no examples: the model-written one still works */ }
  const buttons = human.map((example) => {
    const button = el("button", "example", "Human: " + example.title.replace(/^Python's documentation: /, "Python docs, "));
    button.title = "Written by people: " + example.source;
    button.addEventListener("click", () => useExample(example.text));
    return button;
  });
  const model = el("button", "example", "Model: a sample from this model");
  model.id = "example-model";
  model.title = `${SAMPLE_TOKENS} tokens this model writes from nothing (seed 1, top-k 40)`;
  model.addEventListener("click", modelExample);
  $("example-list").replaceChildren(...buttons, model);
}

function useExample(text) {
  $("check-text").value = text;
  countSoon();
  check(false);
}

async function modelExample() {
  if (!sample) {
    $("check-status").textContent = "The model is writing an example…";
    const max = Math.min(SAMPLE_TOKENS, info.maxTokens || SAMPLE_TOKENS);
    try {
      const response = await post("/v1/completions", { prompt: "", max_tokens: max, top_k: 40, seed: 1 });
      sample = (await response.json()).choices[0].text;
    } catch (error) {
      $("check-status").textContent = "";
      showError(explain(error));
      return;
    }
  }
  useExample(sample);
}

export function wireCheck() {
  $("check").addEventListener("click", () => check(false));
  $("check-text").addEventListener("input", checkSoon);
}

// The Write view: checks the options in the browser, counts the prompt's tokens as you type (offering
// to keep its last tokens when it outgrows the context), and streams a continuation from /v1/completions.
import { $, clearFields, countTokens, explain, info, markField, plural, post, showError } from "./common.js";

const ECHO_CHARS = 400; // the prompt shown above the continuation: its end, not a 20,000-character wall
const COUNT_DELAY_MS = 250;
const NUMBER_FIELDS = ["max-tokens", "temperature", "top-k", "top-p", "seed"];
let controller = null; // aborts the running generation
let countTimer = null;
let promptTokens = null; // the prompt's token count, once the server has said
let written = { prompt: "", text: "" }; // the last generation, whole (the box shows the prompt's end)

// Each option's range, as the server checks it; Length's maximum comes from /health.
function rules() {
  const maxLength = info.maxTokens || 100000;
  return [
    ["max-tokens", "Length", { min: 1, max: maxLength, whole: true },
      `Length must be a whole number from 1 to ${maxLength} (tokens to write).`],
    ["temperature", "Temperature", { min: 0, max: 2 }, "Temperature must be between 0 and 2."],
    ["top-k", "Top-k", { min: 0, whole: true }, "Top-k must be a whole number, 0 or more (0 = off)."],
    ["top-p", "Top-p", { above: 0, max: 1 }, "Top-p must be more than 0 and at most 1 (1 = off)."],
    ["seed", "Seed", { min: 0, whole: true, optional: true, max: Number.MAX_SAFE_INTEGER },
      "Seed must be a whole number, 0 or more, or blank for a random one."],
  ];
}

function breaks(value, rule) {
  if (!Number.isFinite(value)) return true;
  if (rule.whole && !Number.isInteger(value)) return true;
  if (rule.min !== undefined && value < rule.min) return true;
  if (rule.above !== undefined && value <= rule.above) return true;
  return rule.max !== undefined && value > rule.max;
}

// The options as the request's fields, or null with every bad field marked (then nothing is sent).
function options() {
  const values = {};
  let ok = true;
  for (const [id, , rule, message] of rules()) {
    const input = $(id);
    const raw = input.value.trim();
    const bad = input.validity.badInput || (raw === "" ? !rule.optional : breaks(Number(raw), rule));
    markField(id, bad ? message : "");
    if (bad) ok = false;
    values[id] = raw === "" ? null : Number(raw);
  }
  if (!ok) return null;
  return { max_tokens: values["max-tokens"], temperature: values.temperature, top_k: values["top-k"],
    top_p: values["top-p"], seed: values.seed === null ? Math.floor(Math.random() * 2 ** 31) : values.seed };
}

// ---- the prompt's length ----

export function countSoon() {
  clearTimeout(countTimer);
  promptTokens = null;
  countTimer = setTimeout(updateCount, COUNT_DELAY_MS);
  $("prompt-hint").hidden = $("prompt").value !== "";
}

export async function updateCount() {
  const text = $("prompt").value;
  const counted = text === "" ? { tokens: 0 } : await countTokens(text);
  if ($("prompt").value !== text) return; // typed on meanwhile: a newer count is coming
  promptTokens = counted ? counted.tokens : null;
  $("prompt-count").textContent = promptTokens === null ? "" : plural(promptTokens, "token");
  showFit();
}

// When the prompt and the Length asked for exceed the context, say so and offer to keep the prompt's end.
function showFit() {
  const length = Number($("max-tokens").value) || 0;
  const room = info.context === null ? null : info.context - length;
  const over = promptTokens !== null && room !== null && promptTokens > room;
  $("prompt-fit").hidden = !over;
  if (!over) {
    if ($("prompt").getAttribute("aria-invalid")) markField("prompt", "");
    return false;
  }
  const keep = Math.max(0, room);
  $("fit-text").textContent = `The prompt is ${plural(promptTokens, "token")} and Length asks for ${length} more, ` +
    `but this model reads at most ${info.context} tokens in all.`;
  $("keep-last").textContent = `Keep the last ${plural(keep, "token")}`;
  $("keep-last").dataset.keep = String(keep);
  $("keep-last").hidden = keep === 0;
  return true;
}

async function keepLast() {
  const keep = Number($("keep-last").dataset.keep);
  const counted = await countTokens($("prompt").value, keep);
  if (!counted) return;
  $("prompt").value = counted.text;
  markField("prompt", "");
  await updateCount();
  $("prompt").focus();
}

// ---- generating ----

function startOutput(prompt) {
  written = { prompt, text: "" };
  const echo = prompt.length > ECHO_CHARS ? "…" + prompt.slice(-ECHO_CHARS) : prompt;
  $("output-prompt").textContent = echo;
  $("output-prompt").title = prompt.length > ECHO_CHARS ? `${prompt.length - ECHO_CHARS} earlier characters not shown` : "";
  $("output-note").textContent = prompt === "" ? "No prompt: the model writes from nothing (an unconditional sample)." : "";
  $("output-text").textContent = "";
  $("output").classList.remove("stale");
  $("output").hidden = false;
  $("caret").hidden = false;
}

export async function generate() {
  showError("");
  clearFields(["prompt", ...NUMBER_FIELDS]);
  const body = options();
  if (!body) return refused();
  const prompt = $("prompt").value;
  if (prompt !== "" && promptTokens === null) await updateCount();
  if (prompt !== "" && showFit()) {
    markField("prompt", "Too long for the model with this Length: shorten it, keep its end, or lower Length.");
    return refused();
  }
  $("output-actions").hidden = true;
  startOutput(prompt);
  $("generate").disabled = true;
  $("stop").disabled = false;
  $("write-status").textContent = "Generating…";
  controller = new AbortController();
  const started = performance.now();
  try {
    const finish = await stream({ ...body, prompt, stream: true }, controller.signal);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const why = finish === "length" ? "reached the length" : finish === "stop" ? "the model ended the text" : "done";
    $("write-status").textContent = `${why} · ${seconds} s · seed ${body.seed}`;
  } catch (error) {
    failed(error, body.seed);
  } finally {
    controller = null;
    $("caret").hidden = true;
    $("generate").disabled = false;
    $("stop").disabled = true;
    $("output-actions").hidden = $("output").hidden || written.text === "";
  }
}

// A failure leaves no stale text under the error: nothing written yet hides the box (and its echo of the
// prompt); a text cut short stays, greyed, marked as cut short.
function failed(error, seed) {
  if (error.name === "AbortError") {
    $("write-status").textContent = `stopped · seed ${seed}`;
    return;
  }
  $("write-status").textContent = written.text ? "failed part way: the text is cut short" : "";
  if (written.text) $("output").classList.add("stale");
  else $("output").hidden = true;
  showError(explain(error));
}

async function stream(body, signal) {
  const response = await post("/v1/completions", body, signal);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return finish;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) throw new Error("Generation failed: " + chunk.error.message);
        for (const choice of chunk.choices) {
          if (choice.text) {
            written.text += choice.text;
            $("output-text").append(document.createTextNode(choice.text));
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
  }
}

// Nothing is sent: the fields at fault are marked, the first one focused, and an earlier text greyed
// (it no longer answers what the form says).
function refused() {
  if (!$("output").hidden) $("output").classList.add("stale");
  const bad = document.querySelector("#panel-write [aria-invalid='true']");
  if (bad) bad.focus();
}

export function writtenText() {
  return written.prompt + written.text;
}

export function wireWrite() {
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("generate").disabled) generate();
  });
  $("prompt").addEventListener("input", countSoon);
  $("keep-last").addEventListener("click", keepLast);
  for (const id of NUMBER_FIELDS) $(id).addEventListener("input", () => markField(id, ""));
  $("max-tokens").addEventListener("input", showFit);
  $("temperature-range").addEventListener("input", (e) => { $("temperature").value = e.target.value; markField("temperature", ""); });
  $("temperature").addEventListener("input", (e) => { $("temperature-range").value = e.target.value; });
  $("continue").addEventListener("click", () => {
    $("prompt").value = writtenText();
    countSoon();
    $("prompt").focus();
  });
}

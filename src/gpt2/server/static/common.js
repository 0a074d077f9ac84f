// What both views share: DOM helpers, the API calls, the error banner, and marking a field at fault.
// All text goes into the DOM as text nodes (textContent), never as HTML.

export const $ = (id) => document.getElementById(id);

// What /health says about the server; the views read it (context length, limits, the detector's minimum).
export const info = { context: null, maxTokens: null, detectorMinTokens: 50, model: "" };

// The request fields the server may name (an error's `param`) and the page's fields and words for them.
export const FIELDS = {
  prompt: ["prompt", "Prompt"],
  max_tokens: ["max-tokens", "Length"],
  temperature: ["temperature", "Temperature"],
  top_k: ["top-k", "Top-k"],
  top_p: ["top-p", "Top-p"],
  seed: ["seed", "Seed"],
  text: ["check-text", "Text"],
};

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The banner floats over the page (position: fixed), so showing or hiding it moves nothing.
export function showError(message) {
  $("error-text").textContent = message || "";
  $("error").hidden = !message;
}

// Mark a field (aria-invalid, red outline) with its message below it; "" clears it.
export function markField(id, message) {
  const input = $(id);
  if (!input) return;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  const note = $(id + "-error");
  if (note) note.textContent = message || "";
}

export function clearFields(ids) {
  for (const id of ids) markField(id, "");
}

export class APIFailure extends Error {
  constructor(message, status, error) {
    super(message);
    this.status = status;
    this.param = error && error.param;
    this.code = error && error.code;
  }
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

// POST a JSON body; a failure throws APIFailure with the server's message, its field and its code.
export async function post(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (response.ok) return response;
  let message = response.status + " " + response.statusText;
  let error = null;
  try {
    const data = await response.json();
    if (data.error) error = data.error;
    if (error && error.message) message = error.message;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) {
    $("key-box").hidden = false;
    message = "This server wants an API key: enter it in the box at the top right.";
  }
  const retry = response.headers.get("Retry-After");
  if (response.status === 429) message = "The server is busy with other requests.";
  if (retry) message += " Try again in " + retry + " s.";
  throw new APIFailure(message, response.status, error);
}

// A server's message in the reader's terms: the field's name first, and the field marked.
export function explain(failure) {
  const field = failure.param && FIELDS[failure.param];
  // The API's names (max_tokens, top_k, ...) become the page's labels
  let named = failure.message;
  for (const [param, [, label]] of Object.entries(FIELDS)) {
    if (param !== "prompt" && param !== "text") named = named.replace(new RegExp("\\b" + param + "\\b", "g"), label);
  }
  const text = capitalize(named);
  if (!field) return text;
  markField(field[0], text);
  return text.toLowerCase().includes(field[1].toLowerCase()) ? text : field[1] + ": " + text;
}

function capitalize(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

export function plural(n, word) {
  return n.toLocaleString("en") + " " + word + (n === 1 ? "" : "s");
}

// How many tokens a text is (the server's tokenizer: exact, and cheap next to a model call); null when
// the server cannot say (no key yet, unreachable): then only the server's own check applies.
export async function countTokens(text, keepLast) {
  const body = keepLast === undefined ? { text } : { text, keep_last: keepLast };
  try {
    return await (await post("/v1/tokenize", body)).json();
  } catch (_) {
    return null;
  }
}

export function percent(p) {
  const value = 100 * p;
  return value >= 1 ? value.toFixed(1) + "%" : value >= 0.01 ? value.toFixed(2) + "%" : value.toExponential(1) + "%";
}

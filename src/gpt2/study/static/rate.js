"use strict";
// One item at a time. The token comes from the invitation link's #fragment (never sent to the server in a
// URL, so never in a log); every request carries it in the Authorization header. The server says which item
// comes next, so a reload or a reopened link carries on where the rater stopped.
const token = decodeURIComponent(location.hash.slice(1));
const $ = id => document.getElementById(id);
let state = null;
let shownAt = 0;
let busy = false;

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options, cache: "no-store",
    headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
  });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  return {status: response.status, ok: response.ok, body};
}

function say(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
}

function errorText(r) {
  return r.body && r.body.error ? r.body.error.message : `The server answered ${r.status}.`;
}

function scale(fieldset, name, question, labels) {
  fieldset.querySelector("legend").textContent = question.text;
  const ends = fieldset.querySelector(".ends");
  if (ends) ends.textContent = `${question.min} = ${question.low}, ${question.max} = ${question.high}`;
  const values = labels ? Object.keys(labels) : [];
  if (!labels) for (let v = question.min; v <= question.max; v++) values.push(String(v));
  const choices = values.map((value, i) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio"; input.name = name; input.value = value; input.id = `${name}-${value}`;
    const span = document.createElement("span");
    span.textContent = labels ? `${labels[value]} (${i + 1})` : value;
    label.append(input, span);
    return label;
  });
  fieldset.querySelector(".choices").replaceChildren(...choices);
  fieldset.hidden = false;
}

function buildQuestions(q) {
  scale($("q-credibility"), "credibility", q.credibility, null);
  if (q.origin) {
    scale($("q-origin"), "origin", {text: q.origin.text}, q.origin.choices);
    if (q.origin.confidence) scale($("q-confidence"), "confidence", q.origin.confidence, null);
  }
  if (q.comment) {
    document.querySelector("#q-comment label").textContent = q.comment.text;
    $("comment").maxLength = q.comment.max_chars;
    $("q-comment").hidden = false;
  }
}

function showText(item, colours) {
  const box = $("text");
  if (colours && item.gltr) {
    box.replaceChildren(...item.gltr.map(([piece, b]) => {
      const span = document.createElement("span");
      span.textContent = piece;  // text, never markup
      if (b !== null) span.className = "b" + b;
      return span;
    }));
  } else {
    box.textContent = item.text;
  }
  $("legend").hidden = !(colours && item.gltr);
}

function render() {
  const s = state;
  $("progress").max = s.total; $("progress").value = s.answered;
  if (!s.item) {
    $("progress-text").textContent = `All ${s.total} texts answered.`;
    $("rating").hidden = true; $("done").hidden = false;
    $("done").querySelector("h2").focus();
    return;
  }
  $("progress-text").textContent = `Text ${s.position} of ${s.total} (${s.answered} answered)`;
  $("form").reset();
  showText(s.item, s.colours);
  $("rating").hidden = false;
  shownAt = performance.now();
  highlight();
  $("item-heading").focus();  // a screen reader starts at the new text; Tab then reaches the questions
}

function groups() {
  return [...document.querySelectorAll("fieldset.question")].filter(f => !f.hidden);
}

function activeGroup() {
  const here = document.activeElement && document.activeElement.closest("fieldset.question");
  return here || groups().find(f => !f.querySelector("input:checked")) || null;
}

function highlight() {
  const active = activeGroup();
  for (const f of groups()) f.classList.toggle("active", f === active);
}

function choose(fieldset, key) {
  const inputs = [...fieldset.querySelectorAll("input")];
  const numeric = fieldset.dataset.name !== "origin";
  let input;
  if (numeric) input = inputs.find(i => i.value === key) || (key === "0" ? inputs.find(i => i.value === "10") : null);
  else input = inputs[Number(key) - 1] || inputs.find(i => i.value[0] === key.toLowerCase());
  if (!input) return;
  input.checked = true;
  const next = groups().find(f => !f.querySelector("input:checked"));
  if (next) next.querySelector("input").focus();
  else if (!$("q-comment").hidden) $("comment").focus();
  else $("submit").focus();
  highlight();
}

function collect() {
  const value = name => {
    const checked = document.querySelector(`input[name="${name}"]:checked`);
    return checked ? checked.value : null;
  };
  const body = {item: state.item.id, seconds: Math.round(performance.now() - shownAt) / 1000};
  const missing = [];
  for (const f of groups()) {
    const v = value(f.dataset.name);
    if (v === null) missing.push(f);
    else body[f.dataset.name] = f.dataset.name === "origin" ? v : Number(v);
  }
  if (!$("q-comment").hidden && $("comment").value.trim()) body.comment = $("comment").value;
  return {body, missing};
}

async function submit() {
  if (busy || !state || !state.item) return;
  const {body, missing} = collect();
  if (missing.length) {
    say("Please answer: " + missing.map(f => f.querySelector("legend").textContent).join(" / "));
    missing[0].querySelector("input").focus();
    highlight();
    return;
  }
  busy = true; $("submit").disabled = true;
  try {
    const r = await api("/api/answers", {method: "POST", body: JSON.stringify(body)});
    if (r.ok || r.status === 409) { say(""); await load(); }
    else say(errorText(r));
  } catch (e) {
    say("The answer could not be sent (no connection?); press Enter to try again.");
  } finally {
    busy = false; $("submit").disabled = false;
  }
}

async function load() {
  if (!token) { say("This link is incomplete: open the whole invitation link you were sent."); return; }
  const r = await api("/api/state");
  if (!r.ok) { say(errorText(r)); $("progress-text").textContent = ""; return; }
  if (!state) { buildQuestions(r.body.questions); $("title").textContent = r.body.title; }
  state = r.body;
  render();
}

document.addEventListener("keydown", e => {
  if (e.target.tagName === "TEXTAREA") {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
    return;
  }
  if (e.altKey || e.ctrlKey || e.metaKey || $("rating").hidden) return;
  if (e.key === "Enter") { e.preventDefault(); submit(); return; }
  const group = activeGroup();
  if (group && /^[0-9pm]$/i.test(e.key)) { e.preventDefault(); choose(group, e.key); }
});
document.addEventListener("focusin", highlight);
document.addEventListener("change", highlight);
$("form").addEventListener("submit", e => { e.preventDefault(); submit(); });
load();

// The coloured tokens of a checked text and each one's details (rank, probability, the model's own
// guesses): on hover, on tap or click, and on keyboard focus. One token at a time is in the tab order
// (a roving tabindex): Tab reaches the text, the arrow keys, Home and End move within it, Escape closes.
import { $, el, percent } from "./common.js";

export const BUCKETS = [
  ["top10", "top 10"],
  ["top100", "top 100"],
  ["top1000", "top 1000"],
  ["rest", "further down"],
];
let data = []; // the tokens shown
let pinned = null; // the token whose details stay open after a tap or click
let shown = null; // the token whose details are open

export function renderTokens(tokens) {
  data = tokens;
  pinned = null;
  const box = $("tokens");
  const spans = tokens.map((token, i) => {
    const span = el("span", "tok b-" + token.bucket, token.text);
    span.dataset.index = String(i);
    span.tabIndex = i === 0 ? 0 : -1;
    return span;
  });
  box.replaceChildren(...spans);
  hideDetails();
}

function span(i) {
  return $("tokens").children[i] || null;
}

function show(target) {
  const token = data[Number(target.dataset.index)];
  const label = BUCKETS.find(([b]) => b === token.bucket)[1];
  const tooltip = $("tooltip");
  tooltip.replaceChildren();
  const head = el("div");
  head.append(el("span", "tt-token", JSON.stringify(token.token).slice(1, -1)));
  tooltip.append(head);
  const line = el("div");
  line.append(el("span", "swatch b-" + token.bucket), document.createTextNode(
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
  for (const other of $("tokens").querySelectorAll("[aria-describedby]")) other.removeAttribute("aria-describedby");
  target.setAttribute("aria-describedby", "tooltip");
  shown = target;
  place(tooltip, target.getBoundingClientRect());
}

// Below the token, or above it near the bottom of the window; never off the screen's sides.
function place(tooltip, rect) {
  const width = tooltip.offsetWidth;
  const height = tooltip.offsetHeight;
  const left = Math.min(rect.left, window.innerWidth - width - 8);
  let top = rect.bottom + 6;
  if (top + height > window.innerHeight - 8) top = rect.top - height - 6;
  tooltip.style.left = Math.max(8, left) + "px";
  tooltip.style.top = Math.max(8, top) + "px";
}

export function hideDetails() {
  $("tooltip").hidden = true;
}

// Move the roving tabindex to token i and focus it (its focus shows its details).
function moveTo(i) {
  const target = span(Math.max(0, Math.min(data.length - 1, i)));
  if (!target) return;
  const current = $("tokens").querySelector(".tok[tabindex='0']");
  if (current) current.tabIndex = -1;
  target.tabIndex = 0;
  target.focus();
}

const KEYS = {
  ArrowRight: (i) => i + 1, ArrowDown: (i) => i + 1, ArrowLeft: (i) => i - 1, ArrowUp: (i) => i - 1,
  Home: () => 0, End: () => data.length - 1,
};

function onKey(event) {
  const target = event.target.closest(".tok");
  if (!target) return;
  if (event.key === "Escape") {
    pinned = null;
    hideDetails();
    return;
  }
  const step = KEYS[event.key];
  if (!step) return;
  event.preventDefault();
  moveTo(step(Number(target.dataset.index)));
}

function onFocus(event) {
  const target = event.target.closest(".tok");
  if (!target) return;
  const current = $("tokens").querySelector(".tok[tabindex='0']");
  if (current && current !== target) current.tabIndex = -1;
  target.tabIndex = 0;
  show(target);
}

// A tap or click opens a token's details and keeps them open; tapping it again, or elsewhere, closes them.
function onClick(event) {
  const target = event.target.closest(".tok");
  if (!target) return;
  if (pinned === target) {
    pinned = null;
    hideDetails();
    return;
  }
  pinned = target;
  show(target);
}

export function wireTokens() {
  const box = $("tokens");
  box.addEventListener("mouseover", (e) => { const t = e.target.closest(".tok"); if (t) show(t); });
  box.addEventListener("mouseleave", () => { if (pinned) show(pinned); else if (!box.contains(document.activeElement)) hideDetails(); });
  box.addEventListener("keydown", onKey);
  box.addEventListener("focusin", onFocus);
  box.addEventListener("focusout", (e) => { if (!box.contains(e.relatedTarget) && !pinned) hideDetails(); });
  box.addEventListener("click", onClick);
  // Scrolling (the box, or the page) carries the token away: its details follow it.
  const follow = () => { if (!$("tooltip").hidden && shown) place($("tooltip"), shown.getBoundingClientRect()); };
  box.addEventListener("scroll", follow);
  window.addEventListener("scroll", follow);
  document.addEventListener("click", (e) => {
    if (pinned && !box.contains(e.target)) {
      pinned = null;
      hideDetails();
    }
  });
}

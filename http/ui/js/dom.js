// Building the page. Every value from the API goes in as text (never as
// HTML), so that nothing a job, task or result holds can become markup.
import { query } from "./api.js";

// h makes an element: attrs sets attributes ("class", "for", aria-*, data-*),
// properties for booleans, and handlers for on* functions; children are
// nodes, strings, numbers or arrays of them (null and false are skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// hash is a link target inside the dashboard, its parameters written as
// the API's (query).
export function hash(path, params) {
  return "#" + path + query(params || {});
}

export function jobLink(id) {
  return h("a", { href: "#/jobs/" + encodeURIComponent(id) }, id);
}

export function groupLink(id) {
  return id ? h("a", { href: "#/groups/" + encodeURIComponent(id) }, id) : "";
}

export const finalStates = ["SUCCESS", "FAILURE", "CANCELLED"];
export const states = ["PENDING", "STARTED", "RETRY", ...finalStates];

export function badge(state) {
  return h("span", { class: "badge state-" + String(state).toLowerCase() }, state);
}

const numbers = new Intl.NumberFormat("en-US");

export function num(n) {
  return n === null || n === undefined ? "" : numbers.format(n);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

// time shows an RFC 3339 time in the browser's zone, the exact value on
// hover; null is a dash.
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "–");
  const d = new Date(iso);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h("time", { datetime: iso, title: iso }, text);
}

// seconds between two RFC 3339 times (to now when end is null), or null.
export function between(start, end) {
  if (!start) return null;
  const e = end ? new Date(end) : new Date();
  return Math.max(0, (e - new Date(start)) / 1000);
}

export function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m % 60} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

// table is a semantic table: a caption, header cells with scope, and a row
// saying so when there are none.
export function table(caption, headers, rows, empty) {
  const head = h("tr", null, headers.map((c) => (c instanceof Node ? c : h("th", { scope: "col" }, c))));
  const body = rows.length ? rows : [h("tr", null, h("td", { colspan: headers.length, class: "muted" }, empty || "None."))];
  return h("table", null, h("caption", null, caption), h("thead", null, head), h("tbody", null, body));
}

// dl is a description list of [term, value] pairs; pairs whose value is
// undefined are left out.
export function dl(pairs, cls) {
  return h("dl", { class: cls || "facts" }, pairs.filter((p) => p && p[1] !== undefined).map(([t, v]) => [h("dt", null, t), h("dd", null, v)]));
}

// setIfChanged replaces host's content with build()'s only when key (the
// data it shows) changed, so that a live refresh does not take keyboard
// focus or a selection away for nothing.
export function setIfChanged(host, key, build) {
  if (host.dataset.key === key) return;
  host.dataset.key = key;
  const focused = host.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  const built = build();
  host.replaceChildren(...(Array.isArray(built) ? built : [built]));
  if (focused) {
    const again = [...host.querySelectorAll("a, button, input, select")].find((el) => focusKey(el) === focused);
    if (again) again.focus();
  }
}

function focusKey(el) {
  return el.tagName + " " + (el.getAttribute("href") || el.name || el.id || el.textContent);
}

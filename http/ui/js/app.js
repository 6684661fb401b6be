// The dashboard's shell: the routes (in the URL's fragment, so that the
// server serves only static files), live refreshing while the tab is
// visible, and asking for a token when the API answers 401.
import * as api from "./api.js";
import { h } from "./dom.js";
import { queuesView } from "./queues.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { groupsView, groupView } from "./groups.js";
import { tasksView } from "./tasks.js";
import { membersView } from "./members.js";

// A view is { title, el, load(signal), every, live() }: load fetches and
// shows its data; the shell calls it again every `every` ms while the tab
// is visible and live() (if given) says there is more to see.
const routes = [
  [/^\/(queues)?$/, "queues", (ctx) => queuesView(ctx)],
  [/^\/jobs$/, "jobs", (ctx, m, q) => jobsView(ctx, q)],
  [/^\/jobs\/([^/]+)$/, "jobs", (ctx, m) => jobView(ctx, decodeURIComponent(m[1]))],
  [/^\/groups$/, "groups", (ctx) => groupsView(ctx)],
  [/^\/groups\/([^/]+)$/, "groups", (ctx, m) => groupView(ctx, decodeURIComponent(m[1]))],
  [/^\/tasks$/, "tasks", (ctx) => tasksView(ctx)],
  [/^\/members$/, "members", (ctx) => membersView(ctx)],
];

const $ = (id) => document.getElementById(id);
const main = $("main");
const alertBox = $("alert");
const dialog = $("token-dialog");

let view = null;
let inflight = null; // the AbortController of the load in progress
let timer = 0;
let waitingForToken = false;

// ctx is what views may ask of the shell.
const ctx = {
  refresh: () => refresh(),
  askToken: (why) => askToken(why),
  alert: (msg) => showAlert(msg),
};

function route() {
  let raw = location.hash.slice(1);
  if (raw && !raw.startsWith("/")) {
    // An anchor in the page (the skip link, a task): the page stays, or,
    // opened at one, the dashboard starts at the queues.
    if (view) return;
    raw = "/";
  }
  const i = raw.indexOf("?");
  const path = i < 0 ? raw : raw.slice(0, i);
  const params = new URLSearchParams(i < 0 ? "" : raw.slice(i + 1));
  stop();
  view = null;
  let nav = "";
  for (const [re, name, make] of routes) {
    const m = re.exec(path || "/");
    if (m) {
      try {
        view = make(ctx, m, params);
        nav = name;
      } catch (e) {
        // A malformed %-escape in an ID (a hand-made link) names nothing.
        if (!(e instanceof URIError)) throw e;
      }
      break;
    }
  }
  if (!view) view = notFound(path);
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = view.title + " · sql-jobber";
  main.replaceChildren(view.el);
  hideAlert();
  refresh();
}

function notFound(path) {
  const el = h("section", null, h("h1", null, "No such page"), h("p", null, "Nothing is shown at ", h("code", null, path), ". ", h("a", { href: "#/queues" }, "See the queues.")));
  return { title: "No such page", el, load: async () => {}, every: 0 };
}

async function refresh() {
  clearTimeout(timer);
  if (inflight || waitingForToken || !view) return;
  const v = view;
  const c = (inflight = new AbortController());
  try {
    await v.load(c.signal);
    if (v !== view) return;
    hideAlert();
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (v !== view || e.name === "AbortError") return;
    if (e.status === 401) askToken(e.message);
    else showAlert(e.message);
  } finally {
    if (inflight === c) {
      inflight = null;
      schedule();
    }
  }
}

function schedule() {
  clearTimeout(timer);
  if (document.hidden || waitingForToken || !view || !view.every || (view.live && !view.live())) return;
  timer = setTimeout(refresh, view.every);
}

function stop() {
  clearTimeout(timer);
  if (inflight) inflight.abort();
  inflight = null;
}

function showAlert(msg, action) {
  alertBox.replaceChildren(h("span", null, msg), action || "");
  alertBox.hidden = false;
}

function hideAlert() {
  alertBox.hidden = true;
  alertBox.replaceChildren();
}

function askToken(why) {
  waitingForToken = true;
  stop();
  $("token-why").textContent = why ? `The server answered: ${why}. Enter a token to go on.` : "Enter the secret of an API token.";
  if (!dialog.open) dialog.showModal();
  $("token-input").focus();
}

function closeToken(given) {
  dialog.close();
  waitingForToken = false;
  if (given) {
    route(); // build the page again with the token
    return;
  }
  if (!api.hasToken()) {
    showAlert("The API needs a token for this page. ", h("button", { type: "button", onclick: () => askToken("") }, "Enter token"));
  }
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("token-input");
  api.setToken(input.value);
  input.value = "";
  closeToken(true);
});
$("token-cancel").addEventListener("click", () => closeToken(false));
dialog.addEventListener("cancel", (e) => {
  e.preventDefault();
  closeToken(false);
});
$("token-open").addEventListener("click", () => askToken(""));
$("token-forget").addEventListener("click", () => {
  api.setToken("");
  route();
});
api.onToken((set) => {
  $("token-state").textContent = set ? "Token in use" : "No token";
  $("token-forget").hidden = !set;
});

window.addEventListener("hashchange", route);
document.addEventListener("visibilitychange", () => {
  if (document.hidden) clearTimeout(timer);
  else refresh();
});
route();

// The job list: newest first, filtered, paged by the API's cursors, and
// refreshed while the tab is visible.
import * as api from "./api.js";
import { h, hash, states, setIfChanged } from "./dom.js";
import { jobTable, jobsKey } from "./jobtable.js";

const filterKeys = ["queue", "task", "group_id", "node", "created_after", "created_before"];
const limits = ["25", "50", "100", "200"];

// trail holds the cursors of the pages before this one (the API pages
// only forwards), for as long as the filters stay the same.
let trail = { filters: "", cursors: [] };

export function jobsView(ctx, params) {
  const f = {
    state: params.getAll("state").filter((s) => states.includes(s)),
    limit: limits.includes(params.get("limit")) ? params.get("limit") : "50",
    cursor: params.get("cursor") || "",
  };
  for (const k of filterKeys) f[k] = params.get(k) || "";
  const filterKey = JSON.stringify({ ...f, cursor: "" });
  if (trail.filters !== filterKey || !f.cursor) trail = { filters: filterKey, cursors: [] };

  const host = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of jobs" });
  const el = h(
    "section",
    { "aria-labelledby": "jobs-title" },
    h("h1", { id: "jobs-title" }, "Jobs"),
    filterForm(f),
    host,
    pager,
  );
  let next = "";
  return {
    title: "Jobs",
    el,
    every: 2000,
    async load(signal) {
      const { data } = await api.get("/jobs" + api.query({ ...f }), signal);
      setIfChanged(host, jobsKey(data.jobs), () =>
        jobTable(f.cursor ? "Jobs, newest first (a later page)" : "Jobs, newest first", data.jobs, "No jobs match."),
      );
      if (data.next !== next || !pager.firstChild) {
        next = data.next;
        pager.replaceChildren(...pagerButtons(f, next));
      }
    },
  };
}

function go(f, cursor) {
  location.hash = hash("/jobs", { ...f, cursor });
}

function pagerButtons(f, next) {
  const out = [];
  if (f.cursor) {
    out.push(h("button", { type: "button", onclick: () => go(f, "") }, "First page"));
    out.push(
      h("button", { type: "button", onclick: () => go(f, trail.cursors.pop() || "") }, "Previous page"),
    );
  }
  if (next) {
    out.push(
      h("button", { type: "button", onclick: () => { trail.cursors.push(f.cursor); go(f, next); } }, "Next page"),
    );
  }
  return out;
}

// local turns an RFC 3339 time into a datetime-local input's value.
function local(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function field(name, label, value, type) {
  const id = "f-" + name;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name, type: type || "text", value, spellcheck: "false" }));
}

function filterForm(f) {
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter jobs" },
    h(
      "fieldset",
      { class: "states" },
      h("legend", null, "State"),
      states.map((s) =>
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "state", value: s, checked: f.state.includes(s) }), " ", s),
      ),
    ),
    field("queue", "Queue", f.queue),
    field("task", "Task", f.task),
    field("group_id", "Group", f.group_id),
    field("node", "Node", f.node),
    field("created_after", "Created from", local(f.created_after), "datetime-local"),
    field("created_before", "Created before", local(f.created_before), "datetime-local"),
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-limit" }, "Per page"),
      h("select", { id: "f-limit", name: "limit" }, limits.map((n) => h("option", { value: n, selected: n === f.limit }, n))),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h("a", { href: "#/jobs", class: "button" }, "Clear"),
    ),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const out = { state: data.getAll("state"), limit: data.get("limit") };
    for (const k of filterKeys) {
      let v = String(data.get(k) || "").trim();
      if (v && k.startsWith("created_")) v = new Date(v).toISOString();
      out[k] = v;
    }
    location.hash = hash("/jobs", out);
  });
  return form;
}

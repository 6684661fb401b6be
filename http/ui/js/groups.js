// Groups: one group's state and jobs, refreshed until it finishes; and a
// way to find a group (there is no list of groups: the newest jobs name
// theirs).
import * as api from "./api.js";
import { h, badge, dl, groupLink, finalStates, num, setIfChanged } from "./dom.js";
import { jobTable, jobsKey } from "./jobtable.js";

export function groupsView() {
  const input = h("input", { id: "group-id", name: "group_id", type: "text", required: true, spellcheck: "false" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Open a group" },
    h("div", { class: "field" }, h("label", { for: "group-id" }, "Group ID"), input),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Open group")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/groups/" + encodeURIComponent(input.value.trim());
  });
  const recent = h("div");
  const el = h(
    "section",
    { "aria-labelledby": "groups-title" },
    h("h1", { id: "groups-title" }, "Groups"),
    form,
    h("h2", null, "Groups of the newest 200 jobs"),
    recent,
  );
  return {
    title: "Groups",
    el,
    every: 5000,
    async load(signal) {
      const { data } = await api.get("/jobs?limit=200", signal);
      const ids = [...new Set(data.jobs.map((j) => j.group_id).filter(Boolean))];
      setIfChanged(recent, JSON.stringify(ids), () =>
        ids.length ? h("ul", { class: "plain" }, ids.map((id) => h("li", null, groupLink(id)))) : h("p", { class: "muted" }, "None of them is in a group."),
      );
    },
  };
}

export function groupView(ctx, id) {
  const facts = h("div", { class: "panel" });
  const jobs = h("div", { class: "table-wrap" });
  const el = h(
    "section",
    { "aria-labelledby": "group-title" },
    h("p", { class: "crumbs" }, h("a", { href: "#/groups" }, "Groups"), " / "),
    h("h1", { id: "group-title" }, "Group ", h("code", null, id)),
    facts,
    jobs,
  );
  let group = null;
  return {
    title: "Group " + id,
    el,
    every: 2000,
    live: () => !group || !finalStates.includes(group.state),
    async load(signal) {
      const { data } = await api.get(api.path("groups", id), signal);
      group = data;
      const count = (s) => data.jobs.filter((j) => j.state === s).length;
      setIfChanged(facts, JSON.stringify([data.state, data.concurrency, data.jobs.map((j) => j.state)]), () =>
        dl([
          ["State", badge(data.state)],
          ["Runs at once", num(data.concurrency)],
          ["Jobs", `${num(data.jobs.length)}: ${["SUCCESS", "STARTED", "PENDING", "RETRY", "FAILURE", "CANCELLED"].map((s) => `${count(s)} ${s.toLowerCase()}`).join(", ")}`],
        ]),
      );
      setIfChanged(jobs, jobsKey(data.jobs), () => jobTable("Jobs of the group, in submission order", data.jobs));
    },
  };
}

// The queues: what waits, what runs, what finished in the last hour, and
// who works each queue; and the source databases, with their caps.
import * as api from "./api.js";
import { h, hash, num, duration, table, setIfChanged } from "./dom.js";

export function queuesView() {
  const host = h("div", { class: "table-wrap" });
  const dbHost = h("div", { class: "table-wrap" });
  const el = h(
    "section",
    { "aria-labelledby": "queues-title" },
    h("h1", { id: "queues-title" }, "Queues"),
    h("p", { class: "muted" }, "Jobs waiting and running in each queue, and those that finished in the last hour. Updated every 2 seconds while this tab is visible."),
    host,
    h("h2", { id: "databases-title" }, "Source databases"),
    h("p", { class: "muted" }, "Jobs running against each source database on every node, and its cap ([db.<name>] max_running) across the cluster."),
    dbHost,
  );
  return {
    title: "Queues",
    el,
    every: 2000,
    async load(signal) {
      const [queues, dbs] = await Promise.all([api.get("/queues", signal), api.get("/databases", signal)]);
      setIfChanged(host, JSON.stringify(queues.data), () => render(queues.data));
      setIfChanged(dbHost, JSON.stringify(dbs.data), () => renderDatabases(dbs.data));
    },
  };
}

function render(queues) {
  const rows = queues.map((q) => {
    const f = q.finished_last_hour || {};
    const done = (f.SUCCESS || 0) + (f.FAILURE || 0) + (f.CANCELLED || 0);
    const jobs = (params) => hash("/jobs", { queue: q.queue, ...params });
    return h(
      "tr",
      null,
      h("th", { scope: "row" }, h("a", { href: jobs() }, q.queue)),
      h("td", { class: "num" }, h("a", { href: jobs({ state: ["PENDING", "RETRY"] }) }, num(q.pending))),
      h("td", { class: "num" }, h("a", { href: jobs({ state: "STARTED" }) }, num(q.running))),
      h("td", { class: "num ok" }, num(f.SUCCESS || 0)),
      h("td", { class: "num" + (f.FAILURE ? " bad" : "") }, num(f.FAILURE || 0)),
      h("td", { class: "num" }, num(f.CANCELLED || 0)),
      h("td", { class: "num" }, (done / 60).toFixed(done && done < 60 ? 2 : 1)),
      h("td", { class: "num" }, q.oldest_ready_seconds === null ? "–" : duration(q.oldest_ready_seconds)),
      h("td", { class: "num" + (q.workers ? "" : " bad") }, q.workers ? num(q.workers) : "none"),
    );
  });
  return table(
    "Queues",
    ["Queue", "Pending", "Running", "Succeeded (1 h)", "Failed (1 h)", "Cancelled (1 h)", "Finished per minute (1 h)", "Oldest waiting", "Workers"],
    rows,
    "No queues.",
  );
}

function renderDatabases(dbs) {
  const rows = dbs.map((d) => {
    const full = d.max_running !== null && d.running >= d.max_running;
    return h(
      "tr",
      null,
      h("th", { scope: "row" }, d.db),
      h("td", { class: "num" }, d.max_running === null ? "none" : num(d.max_running)),
      h("td", { class: "num" + (full ? " bad" : "") }, num(d.running)),
      h("td", { class: "num" }, num(d.ready)),
      h("td", { class: "num" + (d.held_back ? " bad" : "") }, num(d.held_back)),
    );
  });
  return table("Source databases", ["Database", "Cap (max running)", "Running", "Ready", "Held back by the cap"], rows, "No source databases.");
}

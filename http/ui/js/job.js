// A job's page: its state, timings, error and progress, refreshed every
// second until it finishes; then its results.
import * as api from "./api.js";
import { h, badge, dl, hash, jobLink, groupLink, num, time, between, duration, finalStates, setIfChanged } from "./dom.js";
import { resultsPanel } from "./results.js";

export function jobView(ctx, id) {
  const head = h("div", { class: "state-line", "aria-live": "polite" });
  const facts = h("div", { class: "columns" });
  const errorHost = h("div");
  const resultsHost = h("div");
  const el = h(
    "section",
    { "aria-labelledby": "job-title" },
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / "),
    h("h1", { id: "job-title" }, "Job ", h("code", null, id)),
    head,
    facts,
    errorHost,
    resultsHost,
  );
  let job = null;
  let shownResults = false;
  return {
    title: "Job " + id,
    el,
    every: 1000,
    live: () => !job || !finalStates.includes(job.state),
    async load(signal) {
      const { data } = await api.get(api.path("jobs", id), signal);
      job = data;
      const ticking = !finalStates.includes(job.state);
      setIfChanged(head, JSON.stringify([job.state, job.count, job.rows_per_second]), () => stateLine(job));
      setIfChanged(facts, JSON.stringify(job) + (ticking ? Math.floor(Date.now() / 1000) : ""), () => details(job));
      setIfChanged(errorHost, job.error || "", () =>
        job.error ? h("section", { class: "panel" }, h("h2", null, "Error"), h("pre", { class: "error-text" }, job.error)) : "",
      );
      if (job.state === "SUCCESS" && !shownResults) {
        shownResults = true;
        resultsHost.replaceChildren(resultsPanel(ctx, job));
      }
    },
  };
}

function stateLine(j) {
  const parts = [badge(j.state)];
  if (j.state === "STARTED") {
    parts.push(h("span", null, `${num(j.count)} rows so far`));
    if (j.rows_per_second !== undefined && j.rows_per_second !== null) {
      parts.push(h("span", null, `${num(Math.round(j.rows_per_second))} rows/s`));
    }
  } else if (j.state === "SUCCESS") {
    parts.push(h("span", null, `${num(j.count)} rows`));
  }
  return h("p", null, parts.map((p, i) => [i ? " · " : "", p]));
}

function details(j) {
  const waitedFrom = j.eta && j.eta > j.created_at ? j.eta : j.created_at;
  const job = dl([
    ["State", badge(j.state)],
    ["Task", h("a", { href: hash("/jobs", { task: j.task }) }, j.task)],
    ["Queue", h("a", { href: hash("/jobs", { queue: j.queue }) }, j.queue)],
    ["Group", j.group_id ? groupLink(j.group_id) : undefined],
    ["Node", j.node || "–"],
    ["Attempt", `${j.attempt} of ${j.retries + 1}`],
    ["Lost runs", j.lost_runs ? num(j.lost_runs) : undefined],
    ["Rows", num(j.count) + (j.state === "STARTED" ? " so far" : "")],
    ["Rows per second", j.rows_per_second === undefined || j.rows_per_second === null ? undefined : num(Math.round(j.rows_per_second))],
    ["Results", j.results_table ? h("span", null, h("code", null, j.results_table), " in ", j.results_backend) : "–"],
    ["Answered from", j.reused_from ? jobLink(j.reused_from) : undefined],
    ["Owner", j.owner || undefined],
  ]);
  const times = dl([
    ["Created", time(j.created_at)],
    ["ETA", j.eta ? time(j.eta) : undefined],
    ["Started", time(j.started_at)],
    ["Finished", time(j.finished_at)],
    ["Expires", j.expires_at ? time(j.expires_at) : "never"],
    ["Waited", j.started_at ? duration(between(waitedFrom, j.started_at)) : finalStates.includes(j.state) ? "–" : duration(between(waitedFrom, null)) + " so far"],
    ["Ran", j.started_at ? duration(between(j.started_at, j.finished_at)) + (j.finished_at ? "" : " so far") : "–"],
  ]);
  return [
    h("section", { class: "panel", "aria-labelledby": "job-facts" }, h("h2", { id: "job-facts" }, "Job"), job),
    h("section", { class: "panel", "aria-labelledby": "job-times" }, h("h2", { id: "job-times" }, "Timings"), times),
  ];
}

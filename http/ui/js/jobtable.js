// A table of jobs, as the job list and a group's page show them.
import { h, badge, jobLink, groupLink, num, time, between, duration, table, hash } from "./dom.js";

export function jobTable(caption, jobs, empty) {
  const rows = jobs.map((j) => {
    const ran = between(j.started_at, j.finished_at);
    return h(
      "tr",
      null,
      h("th", { scope: "row" }, jobLink(j.job_id)),
      h("td", null, badge(j.state)),
      h("td", null, h("a", { href: hash("/jobs", { task: j.task }) }, j.task)),
      h("td", null, h("a", { href: hash("/jobs", { queue: j.queue }) }, j.queue)),
      h("td", { class: "num" }, num(j.count)),
      h("td", null, time(j.created_at)),
      h("td", { class: "num" }, j.started_at ? duration(ran) : "–"),
      h("td", null, j.node ? h("a", { href: hash("/jobs", { node: j.node }) }, j.node) : ""),
      h("td", null, groupLink(j.group_id)),
    );
  });
  return table(caption, ["Job", "State", "Task", "Queue", "Rows", "Created", "Run time", "Node", "Group"], rows, empty);
}

// jobsKey is what a job table shows of jobs, to tell whether it changed:
// running jobs' run times change every second.
export function jobsKey(jobs) {
  const running = jobs.some((j) => j.started_at && !j.finished_at);
  return JSON.stringify(jobs) + (running ? Math.floor(Date.now() / 1000) : "");
}

// The tasks: where each one's jobs go and run, and its SQL.
import * as api from "./api.js";
import { h, dl, hash, num } from "./dom.js";

export function tasksView() {
  const host = h("div");
  const el = h("section", { "aria-labelledby": "tasks-title" }, h("h1", { id: "tasks-title" }, "Tasks"), host);
  return {
    title: "Tasks",
    el,
    every: 0,
    async load(signal) {
      const { data } = await api.get("/tasks", signal);
      host.replaceChildren(
        data.length ? h("p", { class: "muted" }, `${num(data.length)} tasks: `, data.map((t, i) => [i ? ", " : "", h("a", { href: "#task-" + t.name }, t.name)])) : h("p", null, "No tasks are loaded."),
        ...data.map(task),
      );
    },
  };
}

function task(t) {
  const list = (xs) => (xs && xs.length ? xs.join(", ") : "all configured");
  return h(
    "article",
    { class: "panel", id: "task-" + t.name, "aria-labelledby": "task-title-" + t.name },
    h("h2", { id: "task-title-" + t.name }, t.name),
    dl([
      ["Queue", h("a", { href: hash("/jobs", { queue: t.queue }) }, t.queue)],
      ["Source databases", list(t.dbs)],
      ["Results backends", list(t.results)],
      ["Arguments", t.num_args === null ? "not known (raw)" : num(t.num_args)],
      ["Raw", t.raw ? "yes: not prepared at start-up" : "no"],
      ["Workers", t.workers ? num(t.workers) : h("span", { class: "bad" }, "none: its jobs wait for a node that works its queue")],
      ["Jobs", h("a", { href: hash("/jobs", { task: t.name }) }, "jobs of this task")],
    ]),
    t.sql === undefined ? "" : h("pre", { class: "sql", "aria-label": `SQL of ${t.name}` }, h("code", null, t.sql)),
  );
}

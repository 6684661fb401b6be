// The cluster's members as this node sees them. Only admin tokens may
// list them.
import * as api from "./api.js";
import { h, num, table, setIfChanged } from "./dom.js";

export function membersView(ctx) {
  const host = h("div", { class: "table-wrap" });
  const el = h("section", { "aria-labelledby": "members-title" }, h("h1", { id: "members-title" }, "Cluster members"), host);
  let allowed = true;
  return {
    title: "Cluster members",
    el,
    every: 2000,
    live: () => allowed,
    async load(signal) {
      let data;
      try {
        ({ data } = await api.get("/cluster/members", signal));
      } catch (e) {
        if (e.status !== 401 && e.status !== 403) throw e;
        allowed = false;
        host.replaceChildren(
          h(
            "p",
            { class: "notice" },
            "The cluster's members are shown only with an admin token (the server answered: ",
            e.message,
            "). ",
            h("button", { type: "button", onclick: () => ctx.askToken("") }, "Enter an admin token"),
          ),
        );
        host.dataset.key = "";
        return;
      }
      setIfChanged(host, JSON.stringify(data), () => render(data));
    },
  };
}

function render(members) {
  const rows = members.map((m) =>
    h(
      "tr",
      null,
      h("th", { scope: "row" }, m.name, m.self ? h("span", { class: "muted" }, " (this node)") : ""),
      h("td", null, h("span", { class: "badge member-" + m.state }, m.state)),
      h("td", null, h("code", null, m.address)),
      h("td", null, m.api ? h("code", null, m.api) : h("span", { class: "muted" }, "none (worker only)")),
      h(
        "td",
        null,
        Object.entries(m.queues)
          .sort()
          .map(([q, slots], i) => [i ? ", " : "", `${q}: ${num(slots)} slots`]),
      ),
      h("td", null, h("code", { class: "id" }, m.id)),
    ),
  );
  return table("Members", ["Name", "State", "Gossip address", "API", "Queues", "ID"], rows, "No members.");
}

// A job's results: a page of its table, sorted by a column (click its
// heading), filtered, paged with the API's cursors, and downloaded as CSV.
// A results table never changes once published, so it is read when asked,
// not polled.
import * as api from "./api.js";
import { h, num } from "./dom.js";

const ops = [
  ["eq", "="],
  ["ne", "≠"],
  ["lt", "<"],
  ["lte", "≤"],
  ["gt", ">"],
  ["gte", "≥"],
  ["null", "is null (true/false)"],
];
const limits = ["25", "50", "100", "500"];
const numeric = new Set(["int64", "uint64", "decimal", "float64"]);

export function resultsPanel(ctx, job) {
  const st = { orderBy: "", desc: false, filters: [], limit: "50", cursor: "", prev: [], columns: [] };
  const tableHost = h("div", { class: "table-wrap" });
  const message = h("p", { class: "error-text", role: "alert", hidden: true });
  const range = h("p", { class: "muted", "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of results" });
  const filterList = h("ul", { class: "chips", "aria-label": "Filters in use" });
  const columnSelect = h("select", { id: "rf-column", name: "column" });
  const download = h("p", { class: "muted", "aria-live": "polite" });

  const params = (extra) => {
    const p = { limit: st.limit, order_by: st.orderBy ? (st.desc ? "-" : "") + st.orderBy : "", ...extra };
    for (const f of st.filters) p[`filter[${f.column}][${f.op}]`] = f.value;
    return api.query(p);
  };
  const base = api.path("jobs", job.job_id, "results");

  // loading is the load in progress: a newer one (another sort, page or
  // filter) aborts it, so that a slower earlier answer never shows under
  // the newer one's headings.
  let loading = null;

  async function load() {
    if (loading) loading.abort();
    const c = (loading = new AbortController());
    message.hidden = true;
    // The filters asked for show before the answer, so that one the
    // server refuses can be seen and removed.
    showFilters();
    try {
      const { data } = await api.get(base + params({ cursor: st.cursor }), c.signal);
      if (c !== loading) return;
      st.columns = data.columns;
      render(data);
    } catch (e) {
      if (c !== loading || e.name === "AbortError") return;
      if (e.status === 401) return ctx.askToken(e.message);
      message.textContent = e.message;
      message.hidden = false;
      // The rows and pages shown are not what was asked for.
      tableHost.replaceChildren();
      range.textContent = "";
      pager.replaceChildren();
    }
  }

  function restart() {
    st.cursor = "";
    st.prev = [];
    load();
  }

  function sortBy(col) {
    if (st.orderBy === col) st.desc = !st.desc;
    else {
      st.orderBy = col;
      st.desc = false;
    }
    restart();
  }

  function render(data) {
    if (columnSelect.options.length === 0) {
      columnSelect.replaceChildren(...data.columns.map((c) => h("option", { value: c.name }, c.name)));
    }
    const head = data.columns.map((c) => {
      const sorted = st.orderBy === c.name;
      const dir = sorted ? (st.desc ? "descending" : "ascending") : null;
      return h(
        "th",
        { scope: "col", "aria-sort": dir, class: numeric.has(c.type) ? "num" : null },
        h(
          "button",
          { type: "button", class: "sort", "data-column": c.name, title: `Sort by ${c.name}`, onclick: () => sortBy(c.name) },
          c.name,
          h("span", { class: "arrow", "aria-hidden": "true" }, sorted ? (st.desc ? " ▼" : " ▲") : ""),
        ),
        h("span", { class: "type" }, c.type),
      );
    });
    const rows = data.rows.map((r) => h("tr", null, r.map((v, i) => cell(v, data.columns[i].type))));
    const sortText = st.orderBy ? `sorted by ${st.orderBy}, ${st.desc ? "descending" : "ascending"}` : "in the task's order";
    tableHost.replaceChildren(
      h(
        "table",
        { class: "results" },
        h("caption", null, `Results of job ${job.job_id}, ${sortText}`),
        h("thead", null, h("tr", null, head)),
        h("tbody", null, rows.length ? rows : h("tr", null, h("td", { colspan: data.columns.length, class: "muted" }, "No rows."))),
      ),
    );
    const first = st.prev.length * Number(st.limit) + 1;
    const of = st.filters.length ? "" : ` of ${num(job.count)}`;
    range.textContent = rows.length ? `Rows ${num(first)}–${num(first + rows.length - 1)}${of}` : "";
    const buttons = [];
    if (st.prev.length) {
      buttons.push(h("button", { type: "button", onclick: () => { st.cursor = st.prev.pop(); load(); } }, "Previous page"));
    }
    if (data.more) {
      buttons.push(h("button", { type: "button", onclick: () => { st.prev.push(st.cursor); st.cursor = data.next; load(); } }, "Next page"));
    }
    pager.replaceChildren(...buttons);
  }

  function showFilters() {
    filterList.replaceChildren(
      ...st.filters.map((f, i) =>
        h(
          "li",
          null,
          `${f.column} ${f.op} ${f.value}`,
          " ",
          h("button", { type: "button", "aria-label": `Remove filter ${f.column} ${f.op} ${f.value}`, onclick: () => { st.filters.splice(i, 1); restart(); } }, "×"),
        ),
      ),
    );
  }

  // csvPages reads all the rows the filters keep, in the order shown, as
  // CSV parts: in one page as large as the job's count or, when the server
  // allows no page that large (results_max_page_size), in pages half as
  // large (or a quarter...), each after the first without its header row.
  async function csvPages() {
    const parts = [];
    let limit = Math.max(job.count, 1);
    let cursor = "";
    for (;;) {
      let page;
      try {
        page = await api.getBlob(base + params({ format: "csv", limit, cursor }), "text/csv");
      } catch (e) {
        if (e.status !== 400 || cursor || limit <= 1) throw e;
        limit = Math.ceil(limit / 2);
        continue;
      }
      parts.push(parts.length ? await withoutHeader(page.blob) : page.blob);
      cursor = page.headers.get("Sql-Jobber-Next-Cursor") || "";
      if (page.headers.get("Sql-Jobber-More") !== "true" || !cursor) return parts;
    }
  }

  async function downloadCSV() {
    const name = job.job_id.replace(/[^A-Za-z0-9_.-]/g, "_") + ".csv";
    download.textContent = "Downloading…";
    try {
      const blob = new Blob(await csvPages(), { type: "text/csv" });
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      // The download has its own reference by now; this one may go.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      download.textContent = `Saved ${name} (${num(blob.size)} bytes).`;
    } catch (e) {
      if (e.status === 401) return ctx.askToken(e.message);
      download.textContent = "Download failed: " + e.message;
    }
  }

  const opSelect = h("select", { id: "rf-op", name: "op" }, ops.map(([v, t]) => h("option", { value: v }, t)));
  const valueInput = h("input", { id: "rf-value", name: "value", type: "text", spellcheck: "false" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter results" },
    h("div", { class: "field" }, h("label", { for: "rf-column" }, "Column"), columnSelect),
    h("div", { class: "field" }, h("label", { for: "rf-op" }, "Compare"), opSelect),
    h("div", { class: "field" }, h("label", { for: "rf-value" }, "Value"), valueInput),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add filter")),
    h(
      "div",
      { class: "field" },
      h("label", { for: "rf-limit" }, "Rows per page"),
      h(
        "select",
        { id: "rf-limit", onchange: (e) => { st.limit = e.target.value; restart(); } },
        limits.map((n) => h("option", { value: n, selected: n === st.limit }, n)),
      ),
    ),
    h("div", { class: "actions" }, h("button", { type: "button", id: "download-csv", onclick: downloadCSV }, "Download CSV")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    st.filters.push({ column: columnSelect.value, op: opSelect.value, value: valueInput.value });
    valueInput.value = "";
    restart();
  });

  const el = h(
    "section",
    { "aria-labelledby": "results-title", class: "panel" },
    h("h2", { id: "results-title" }, "Results"),
    form,
    filterList,
    download,
    message,
    range,
    tableHost,
    pager,
  );
  load();
  return el;
}

// withoutHeader is a page of CSV without its first record, the header row
// (whose quoted names may hold line breaks). It works on the bytes, which
// need not be UTF-8 (text results keep theirs in CSV).
async function withoutHeader(page) {
  const bytes = new Uint8Array(await page.arrayBuffer());
  let quoted = false;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x22) quoted = !quoted; // "
    else if (bytes[i] === 0x0a && !quoted) return page.slice(i + 1); // \n
  }
  return new Blob([]);
}

function cell(v, type) {
  if (v === null) return h("td", { class: "null" }, "NULL");
  const text = typeof v === "object" ? JSON.stringify(v) : String(v);
  return h("td", { class: numeric.has(type) ? "num" : null }, text);
}

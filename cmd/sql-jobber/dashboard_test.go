package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// dashboardTasks are the tasks of the dashboard test: report reads a
// user's entries with a nullable note, and waits while the test holds its
// gate (a PostgreSQL advisory lock), so that the test sees it run; quick
// reads them at once, with a column whose name and values are HTML.
func dashboardTasks(t *testing.T) map[string]string {
	cols := "e.id, e.user_id, e.amount, CASE WHEN e.id % 7 = 0 THEN NULL ELSE 'note ' || e.id END AS note"
	return withBroken(map[string]string{"tasks.sql": fmt.Sprintf(`
-- name: report
SELECT %s FROM entries e, (SELECT pg_advisory_xact_lock_shared(%d)) AS gate WHERE e.user_id = $1 ORDER BY e.id /* %s */;

-- name: quick
SELECT %s, '<img src=x onerror="window.pwned = 1">' AS "<i>tag</i>" FROM entries e WHERE e.user_id = $1 ORDER BY e.id /* %s */;
`, cols, gateKey(t), marker(t), cols, marker(t))})
}

// TestDashboard drives the web dashboard in headless Chromium as a user
// would: a job submitted through the API shows on the queues, the job list
// and its page, running and then SUCCESS; its results sort by a column,
// page, filter and download as CSV; groups, tasks and members show. Once
// on an open API, once with tokens, where the dashboard asks for one.
// Screenshots of each page are kept under $TMPDIR (their paths are logged).
func TestDashboard(t *testing.T) {
	chromiumPath(t)
	for _, mode := range []struct{ name, secret string }{{"open", ""}, {"tokens", aliceSecret}} {
		t.Run(mode.name, func(t *testing.T) {
			dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
			seedEntries(t, dbs.src)
			config := dbs.toml
			if mode.secret != "" {
				// And pages of at most 100 rows: the CSV of the
				// 150-row job is two pages, one header.
				config = "[app]\nresults_max_page_size = 100\n\n" + config + authConfigTOML()
			}
			s := newEnv(t, config, dashboardTasks(t)).start()
			api := s.as(mode.secret)

			// Finished jobs of each kind, a group, and one job that runs
			// until the test lets it.
			api.post("quick", `{"job_id": "ui-quick", "args": ["U1"]}`)
			api.post("broken", `{"job_id": "ui-broken"}`)
			if r := api.do("POST", "/groups", `{"group_id": "ui-group", "concurrency": 1, "jobs": [
				{"job_id": "ui-g1", "task": "quick", "args": ["U1"]}, {"job_id": "ui-g2", "task": "quick", "args": ["U2"]}]}`); r.code != 200 {
				t.Fatalf("POST /groups: %d %s", r.code, r.Message)
			}
			for _, id := range []string{"ui-quick", "ui-broken", "ui-g1", "ui-g2"} {
				api.waitState(id, "SUCCESS", "FAILURE")
			}
			release := holdGate(t, dbs.src)
			api.post("report", `{"job_id": "ui-report", "args": ["U2"]}`)
			api.waitState("ui-report", "STARTED")

			b := newTab(t, artifactDir(t))
			b.do("open the dashboard", chromedp.Navigate(s.base+"/ui"))
			if mode.secret != "" {
				// Every API call is refused until the user gives a token.
				b.waitFor("the token dialog", `document.getElementById("token-dialog").open`)
				b.screenshot("token")
				b.do("type the token", chromedp.SendKeys(chromedp.CSS("#token-input"), mode.secret))
				b.click(`#token-form button[type="submit"]`)
				b.waitFor("the dialog to close", `!document.getElementById("token-dialog").open`)
			}

			// Queues: the running job, the finished ones.
			b.waitFor("the default queue to show 1 running and 4 finished", `(() => {
				const row = [...document.querySelectorAll("main tbody tr")].find((r) => r.cells[0].innerText === "default");
				return !!row && row.cells[2].innerText === "1" && row.cells[3].innerText === "3" && row.cells[4].innerText === "1";
			})()`)
			// The source database the jobs ran on, without a cap.
			b.waitFor("the source database's row", `(() => {
				const row = [...document.querySelectorAll("main tbody tr")].find((r) => r.cells[0].innerText === "src");
				return !!row && row.cells[1].innerText === "none" && row.cells[2].innerText === "1";
			})()`)
			b.screenshot("queues")

			// Jobs: newest first, the running one on top, live.
			b.click(`nav a[href="#/jobs"]`)
			b.waitFor("the job list", `document.querySelector("main tbody tr th")?.innerText === "ui-report"`)
			if got := b.text("main tbody tr:first-child td:nth-child(2)"); got != "STARTED" {
				t.Fatalf("ui-report's state in the list: %q", got)
			}
			b.screenshot("jobs")

			// The job's page shows it run, then finish, by itself.
			b.click(`main a[href="#/jobs/ui-report"]`)
			b.waitText(".state-line", "STARTED")
			b.screenshot("job-started")
			release()
			b.waitText(".state-line", "SUCCESS")
			b.waitText(".state-line", "150 rows")

			// Its results, in the task's order (ids 101 to 250), 50 a page.
			firstIDs := `[...document.querySelectorAll("table.results tbody tr")].map((r) => r.cells[0].innerText).join(",")`
			b.waitFor("the first page of results", `document.querySelectorAll("table.results tbody tr").length === 50`)
			if got := b.text("table.results tbody tr:first-child td:first-child"); got != "101" {
				t.Fatalf("first row's id: %q", got)
			}
			b.screenshot("job-results")

			// Sorted by amount, descending (a second click): the order
			// changes, and every amount is at most the one before it.
			b.click(`button.sort[data-column="amount"]`)
			b.waitFor("ascending amount", `document.querySelector('th[aria-sort="ascending"]')?.innerText.startsWith("amount")`)
			b.click(`button.sort[data-column="amount"]`)
			b.waitFor("descending amount", `document.querySelector('th[aria-sort="descending"]')?.innerText.startsWith("amount") &&
				document.querySelector("table.results tbody tr td")?.innerText === "250"`)
			amounts := strings.Split(b.text("table.results tbody tr td:nth-child(3)"), "\n")
			for i := 1; i < len(amounts); i++ {
				prev, _ := strconv.ParseFloat(amounts[i-1], 64)
				cur, _ := strconv.ParseFloat(amounts[i], 64)
				if cur > prev || len(amounts) != 50 {
					t.Fatalf("amounts are not descending: %v", amounts)
				}
			}
			if got, _ := eval[string](b, firstIDs); !strings.HasPrefix(got, "250,249,248,") {
				t.Fatalf("ids sorted by amount, descending: %s", got)
			}

			// The next page goes on from there.
			b.click(`nav[aria-label="Pages of results"] button:last-child`)
			b.waitFor("the second page", `document.querySelector("table.results tbody tr td")?.innerText === "200"`)
			b.waitText("main", "Rows 51–100 of 150")
			b.screenshot("job-results-page-2")

			// CSV: every row, in the order shown, as the API writes it.
			b.click("#download-csv")
			csv := b.download("ui-report.csv")
			lines := strings.Split(strings.TrimSuffix(csv, "\r\n"), "\r\n")
			if len(lines) != 151 || lines[0] != "id,user_id,amount,note" || lines[1] != "250,U2,750.50,note 250" ||
				lines[6] != "245,U2,735.45," || lines[150] != "101,U2,303.01,note 101" {
				t.Fatalf("CSV: %d lines, starting %q", len(lines), lines[:min(len(lines), 8)])
			}

			// A filter: ids below 110, still by amount descending.
			b.do("filter id < 110", chromedp.SetValue(chromedp.CSS("#rf-column"), "id"), chromedp.SetValue(chromedp.CSS("#rf-op"), "lt"), chromedp.SendKeys(chromedp.CSS("#rf-value"), "110"))
			b.click(`form[aria-label="Filter results"] button[type="submit"]`)
			b.waitFor("the filtered rows", `document.querySelectorAll("table.results tbody tr").length === 9`)
			if got, _ := eval[string](b, firstIDs); got != "109,108,107,106,105,104,103,102,101" {
				t.Fatalf("filtered ids: %s", got)
			}
			if got := b.text(".chips li"); !strings.HasPrefix(got, "id lt 110") {
				t.Fatalf("filter chips: %q", got)
			}

			// A filter the server refuses shows with its error, and
			// removing it shows the rows again.
			b.do("filter amount > a word", chromedp.SetValue(chromedp.CSS("#rf-column"), "amount"), chromedp.SetValue(chromedp.CSS("#rf-op"), "gt"), chromedp.SendKeys(chromedp.CSS("#rf-value"), "lots"))
			b.click(`form[aria-label="Filter results"] button[type="submit"]`)
			b.waitText(`main p.error-text[role="alert"]:not([hidden])`, `"lots"`)
			if got := b.text(".chips li"); !strings.Contains(got, "amount gt lots") || b.text("table.results") != "" {
				t.Fatalf("after a refused filter: chips %q, table %q", got, b.text("table.results"))
			}
			b.click(".chips li:last-child button")
			b.waitFor("the rows without the refused filter", `document.querySelector('main p.error-text[role="alert"]').hidden &&
				document.querySelectorAll("table.results tbody tr").length === 9 && !document.querySelector(".chips").innerText.includes("lots")`)

			// Values and names from the database are text, never markup;
			// a filter's column and value reach the API whatever they hold.
			b.open("#/jobs/ui-quick")
			b.waitFor("ui-quick's results", `document.querySelectorAll("table.results tbody tr").length === 50`)
			if got, err := eval[string](b, `document.querySelector("table.results thead th:last-child button").innerText + " | " +
				document.querySelector("table.results tbody td:last-child").innerText + " | " +
				document.querySelectorAll("table.results img, table.results i").length + " | " + String(window.pwned)`); err != nil ||
				got != `<i>tag</i> | <img src=x onerror="window.pwned = 1"> | 0 | undefined` {
				t.Fatalf("HTML from the database: %q %v", got, err)
			}
			b.do("filter on the HTML column", chromedp.SetValue(chromedp.CSS("#rf-column"), "<i>tag</i>"),
				chromedp.SetValue(chromedp.CSS("#rf-op"), "ne"), chromedp.SendKeys(chromedp.CSS("#rf-value"), `x&y=1#]%00`))
			b.click(`form[aria-label="Filter results"] button[type="submit"]`)
			b.waitText("main .chips li", `<i>tag</i> ne x&y=1#]%00`)
			b.waitText("main", "Rows 1–50")
			if got := b.text(`main p.error-text[role="alert"]:not([hidden])`); got != "" {
				t.Fatalf("the hostile filter was refused: %q", got)
			}

			// The group, its jobs in submission order.
			b.open("#/groups/ui-group")
			b.waitText("main dl", "SUCCESS")
			b.waitFor("the group's jobs", `[...document.querySelectorAll("main tbody th")].map((e) => e.innerText).join(",") === "ui-g1,ui-g2"`)
			b.screenshot("group")

			// The failed job's error.
			b.open("#/jobs/ui-broken")
			b.waitText("pre.error-text", "no_such_table")
			b.screenshot("job-failed")

			// A link with a malformed escape names no page.
			b.open("#/jobs/%E0%A4%A")
			b.waitText("main h1", "No such page")

			// Tasks, with their SQL.
			b.click(`nav a[href="#/tasks"]`)
			b.waitText("#task-report pre", "pg_advisory_xact_lock_shared")
			b.screenshot("tasks")

			// Members: an admin's to see.
			b.click(`nav a[href="#/members"]`)
			if mode.secret == "" {
				b.waitText("main tbody th", "(this node)")
			} else {
				b.waitText("main .notice", "admin token")
				b.screenshot("members-need-admin")
				b.click("main .notice button")
				b.waitFor("the token dialog", `document.getElementById("token-dialog").open`)
				b.do("type the admin token", chromedp.SendKeys(chromedp.CSS("#token-input"), rootSecret))
				b.click(`#token-form button[type="submit"]`)
				b.waitText("main tbody th", "(this node)")
			}
			b.screenshot("members")
			b.checkProblems()
		})
	}
}

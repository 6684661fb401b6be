package main

import (
	"context"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/http/client"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// bigRows is how many rows the task big returns.
const bigRows = 10_001

// bigTask returns bigRows rows in id order (0, 1, ...): id, grp (id % 7,
// or NULL for every 11th id) and a label, on PostgreSQL and MySQL alike.
func bigTask() string {
	digit := "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 " +
		"UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	return fmt.Sprintf(`-- name: big
SELECT n AS id, CASE WHEN n %% 11 = 0 THEN NULL ELSE n %% 7 END AS grp, CONCAT('row ', n) AS label
FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n
	FROM %s a CROSS JOIN %s b CROSS JOIN %s c CROSS JOIN %s e CROSS JOIN %s f) nums
WHERE n < %d ORDER BY n;
`, digit, digit, digit, digit, digit, bigRows)
}

func bigGroup(id int) (int, bool) {
	if id%11 == 0 {
		return 0, false
	}
	return id % 7, true
}

// pageAll follows the cursors of q to the end and returns the ids read.
func pageAll(t *testing.T, c *client.Client, id string, q client.ResultsQuery) []int64 {
	t.Helper()
	var ids []int64
	for pages := 1; ; pages++ {
		p, err := c.Results(context.Background(), id, q)
		if err != nil || pages > bigRows {
			t.Fatalf("page %d of %+v: %v", pages, q, err)
		}
		for _, r := range p.Rows {
			ids = append(ids, r[0].(int64))
		}
		if !p.More {
			return ids
		}
		if len(p.Rows) != q.Limit {
			t.Fatalf("page %d has %d rows and more follow", pages, len(p.Rows))
		}
		q.Cursor = p.Next
	}
}

// TestResultsPageThroughTenThousandRows reads a 10,001-row result 1,000 rows
// at a time over HTTP, in the task's order and sorted by a column of ties
// and NULLs: every row comes exactly once, in order.
func TestResultsPageThroughTenThousandRows(t *testing.T) {
	for _, p := range pairs {
		t.Run(fmt.Sprintf("%s_to_%s", p.src, p.res), func(t *testing.T) {
			t.Parallel()
			dbs := newDatabases(t, p.src, p.res)
			s := newEnv(t, dbs.toml, map[string]string{"big.sql": bigTask()}).start()
			s.post("big", `{"job_id": "big"}`)
			if j := s.waitState("big", "SUCCESS", "FAILURE"); j.Count != bigRows {
				t.Fatalf("job: %+v", j)
			}
			c := client.New(s.base, nil)

			all := make([]int64, bigRows)
			for i := range all {
				all[i] = int64(i)
			}
			// By grp descending: NULLs last, equal values in the task's order.
			byGroup := slices.Clone(all)
			slices.SortStableFunc(byGroup, func(a, b int64) int {
				ga, oka := bigGroup(int(a))
				gb, okb := bigGroup(int(b))
				switch {
				case oka != okb && oka:
					return -1
				case oka != okb:
					return 1
				}
				return gb - ga
			})
			// grp of 5 or more, largest id first.
			high := slices.DeleteFunc(slices.Clone(all), func(i int64) bool { g, ok := bigGroup(int(i)); return !ok || g < 5 })
			slices.Reverse(high)
			for _, tc := range []struct {
				name string
				q    client.ResultsQuery
				want []int64
			}{
				{"task order", client.ResultsQuery{}, all},
				{"by grp descending", client.ResultsQuery{OrderBy: "-grp"}, byGroup},
				{"grp >= 5 by id descending", client.ResultsQuery{OrderBy: "-id", Filters: []client.Filter{{Column: "grp", Op: "gte", Value: "5"}}}, high},
			} {
				tc.q.Limit = 1000
				if got := pageAll(t, c, "big", tc.q); !slices.Equal(got, tc.want) {
					t.Errorf("%s: %d rows, want %d; first %v", tc.name, len(got), len(tc.want), got[:min(len(got), 5)])
				}
			}

			// Injection attempts: a name is 400, a value matches nothing;
			// the table is whole.
			for _, path := range []string{
				"/jobs/big/results?order_by=" + url.QueryEscape("id; DROP TABLE results_big"),
				"/jobs/big/results?filter[" + url.QueryEscape("label` = '' OR 1=1 -- ") + "][eq]=x",
			} {
				if r := s.do("GET", path, ""); r.code != 400 || !strings.Contains(r.Message, "no column") {
					t.Errorf("GET %s: %d %q", path, r.code, r.Message)
				}
			}
			for _, v := range []string{"x' OR '1'='1", `x" OR "1"="1`, "row 1'; DROP TABLE results_big; --"} {
				p, err := c.Results(context.Background(), "big", client.ResultsQuery{Filters: []client.Filter{{Column: "label", Op: "eq", Value: v}}})
				if err != nil || len(p.Rows) != 0 {
					t.Errorf("label = %q: %v, %v", v, p, err)
				}
			}
			if n := count(t, dbs.res, "SELECT COUNT(*) FROM "+quoteTable(dbs.res, "results_big")); n != bigRows {
				t.Fatalf("the results table has %d rows", n)
			}
		})
	}
}

// TestResultsOfJobsNotDone: 404 for a job never seen, 409 naming the state
// for one not finished or without results, 410 once purged; GET /jobs
// stays 404 for the purged job.
func TestResultsOfJobsNotDone(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, withBroken(tasks(t, sqlexec.Postgres))).start()
	results := func(id string) response {
		t.Helper()
		return s.do("GET", "/jobs/"+id+"/results", "")
	}

	if r := results("never"); r.code != 404 || r.Message != `job not found: "never"` {
		t.Fatalf("unknown job: %d %q", r.code, r.Message)
	}
	release := holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "running", "args": ["U1"]}`)
	s.waitState("running", "STARTED")
	if r := results("running"); r.code != 409 || r.Message != `job "running" is STARTED: its results are not ready yet` {
		t.Fatalf("running job: %d %q", r.code, r.Message)
	}
	release()
	s.waitState("running", "SUCCESS")
	if r := results("running"); r.code != 200 {
		t.Fatalf("finished job: %d %q", r.code, r.Message)
	}
	eta := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	s.post("entries_of", fmt.Sprintf(`{"job_id": "later", "args": ["U1"], "eta": %q}`, eta))
	if r := results("later"); r.code != 409 || !strings.Contains(r.Message, "is PENDING") {
		t.Fatalf("pending job: %d %q", r.code, r.Message)
	}
	s.post("broken", `{"job_id": "broken"}`)
	s.waitState("broken", "FAILURE")
	if r := results("broken"); r.code != 409 || r.Message != `job "broken" is FAILURE: it has no results` {
		t.Fatalf("failed job: %d %q", r.code, r.Message)
	}
	if r := s.do("DELETE", "/jobs/running?purge=true", ""); r.code != 200 {
		t.Fatalf("purge: %d %q", r.code, r.Message)
	}
	if r := results("running"); r.code != 410 || !strings.HasPrefix(r.Message, `job "running" was purged at `) {
		t.Fatalf("purged job: %d %q", r.code, r.Message)
	}
	if _, code := s.job("running"); code != 404 {
		t.Fatalf("GET of a purged job: %d", code)
	}
	// The ID runs again: its results are read as any others.
	s.post("entries_of", `{"job_id": "running", "args": ["U2"]}`)
	s.waitState("running", "SUCCESS")
	if r := results("running"); r.code != 200 {
		t.Fatalf("the ID's next run: %d %q", r.code, r.Message)
	}
}

// TestRerunsOnAnotherBackendLeaveNoTable: a task that spreads its results
// over two backends runs one ID again and again; at every moment the ID has
// one results table, the last run's, wherever the runs before put theirs,
// and its purge leaves none. (Before, each backend kept the table of the
// last run that landed there.)
func TestRerunsOnAnotherBackendLeaveNoTable(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	otherDSN := sqlexectest.DSN(t, sqlexec.MySQL)
	other, err := sqlexec.Open(context.Background(), sqlexec.DBConfig{Name: "res2", Type: sqlexec.MySQL, DSN: otherDSN}, sqlexec.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	files := tasks(t, sqlexec.Postgres)
	files["spread.sql"] = "-- name: spread\n-- results: res, res2\nSELECT id, amount FROM entries WHERE user_id = $1 ORDER BY id;\n"
	cfg := dbs.toml + fmt.Sprintf("\n[results.res2]\ntype = \"mysql\"\ndsn = %q\n", otherDSN)
	s := newEnv(t, cfg, files).start()
	tables := func() map[string]int64 {
		return map[string]int64{
			"res":  count(t, dbs.res, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'results_x'"),
			"res2": count(t, other, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'results_x'"),
		}
	}
	used := map[string]bool{}
	for run := 0; run < 40 && len(used) < 2 || run < 3; run++ {
		s.post("spread", `{"job_id": "x", "args": ["U1"]}`)
		j := s.waitState("x", "SUCCESS")
		used[j.ResultsBackend] = true
		got := tables()
		if got[j.ResultsBackend] != 1 || got["res"]+got["res2"] != 1 {
			t.Fatalf("after run %d (on %s): results tables %v, want only the last run's", run+1, j.ResultsBackend, got)
		}
	}
	if len(used) < 2 {
		t.Fatalf("40 runs all went to %v", used)
	}
	if r := s.do("DELETE", "/jobs/x?purge=true", ""); r.code != 200 {
		t.Fatalf("purge: %d %s", r.code, r.Message)
	}
	if got := tables(); got["res"]+got["res2"] != 0 {
		t.Fatalf("after the purge: %v", got)
	}
}

// TestCSVSafeConfigured: with [app] csv_safe, CSV results show a cell that
// starts as a formula with a ' before it, numbers aside; a request may
// turn it off.
func TestCSVSafeConfigured(t *testing.T) {
	dbs := newDatabases(t, sqlexec.SQLite, sqlexec.SQLite)
	s := newEnv(t, "[app]\ncsv_safe = true\n\n"+dbs.toml, map[string]string{
		"f.sql": "-- name: formula\nSELECT '=HYPERLINK(\"x\")' AS f, -5 AS n, '@SUM(A1)' AS g\n"}).start()
	s.post("formula", `{"job_id": "f"}`)
	s.waitState("f", "SUCCESS")
	for query, want := range map[string]string{
		"":                "f,n,g\r\n\"'=HYPERLINK(\"\"x\"\")\",-5,'@SUM(A1)\r\n",
		"&csv_safe=false": "f,n,g\r\n\"=HYPERLINK(\"\"x\"\")\",-5,@SUM(A1)\r\n",
	} {
		res, err := nethttp.Get(s.base + "/jobs/f/results?format=csv" + query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != want {
			t.Errorf("%q: %d %q, want %q", query, res.StatusCode, body, want)
		}
	}
}

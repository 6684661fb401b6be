package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestAJobReusesAnIdenticalJobsResults: over the API, a job with max_age
// identical to one that succeeded is SUCCESS at once, says reused_from, and
// reads its source's rows; its purge leaves the source's table, and the
// source's purge leaves it 410 naming the source. Bad reuse fields are 400
// naming the field.
func TestAJobReusesAnIdenticalJobsResults(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()

	s.post("entries_of", `{"job_id": "src", "args": ["U1"]}`)
	if j := s.waitState("src", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 100 {
		t.Fatalf("source: %+v", j)
	}
	s.post("entries_of", `{"job_id": "copy", "args": ["U1"], "max_age": "10m"}`)
	r := s.do("GET", "/jobs/copy", "")
	var j map[string]any
	if err := json.Unmarshal(r.Data, &j); err != nil || r.code != 200 {
		t.Fatalf("GET /jobs/copy: %d %s", r.code, r.Data)
	}
	if j["state"] != "SUCCESS" || j["reused_from"] != "src" || j["count"] != float64(100) || j["results_table"] != "results_src" {
		t.Fatalf("the reusing job: %s", r.Data)
	}
	if r := s.do("GET", "/jobs/copy/results?limit=1000", ""); r.code != 200 || strings.Count(string(r.Data), `"U1"`) != 100 {
		t.Fatalf("the reusing job's results: %d %.200s", r.code, r.Data)
	}
	// Another argument, or fresh, runs.
	s.post("entries_of", `{"job_id": "other", "args": ["U2"], "max_age": 600}`)
	s.post("entries_of", `{"job_id": "fresh", "args": ["U1"], "fresh": true}`)
	for id, n := range map[string]int{"other": 150, "fresh": 100} {
		r := s.do("GET", "/jobs/"+id+"?wait=30s", "")
		if r.code != 200 || strings.Contains(string(r.Data), "reused_from") || !strings.Contains(string(r.Data), fmt.Sprintf(`"count":%d,`, n)) {
			t.Fatalf("%s: %d %s", id, r.code, r.Data)
		}
	}

	if r := s.do("DELETE", "/jobs/copy?purge=true", ""); r.code != 200 {
		t.Fatalf("purge copy: %d %s", r.code, r.Message)
	}
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM "+quoteTable(dbs.res, "results_src")); n != 100 {
		t.Fatalf("the source's table after the reusing job's purge: %d rows", n)
	}
	s.post("entries_of", `{"job_id": "copy2", "args": ["U1"], "max_age": "1h"}`)
	if r := s.do("DELETE", "/jobs/fresh?purge=true", ""); r.code != 200 {
		t.Fatalf("purge fresh: %d %s", r.code, r.Message)
	}
	if r := s.do("DELETE", "/jobs/src?purge=true", ""); r.code != 200 {
		t.Fatalf("purge src: %d %s", r.code, r.Message)
	}
	if r := s.do("GET", "/jobs/copy2/results", ""); r.code != 410 || !strings.Contains(r.Message, `job "copy2" reused the results of job "`) {
		t.Fatalf("the reusing job after its source's purge: %d %s", r.code, r.Message)
	}

	for _, tc := range []struct{ body, message string }{
		{`{"args": ["U1"], "max_age": "-1s"}`, "max_age: must be a duration"},
		{`{"args": ["U1"], "max_age": "forever"}`, "max_age: must be a duration"},
		{`{"args": ["U1"], "max_age": 1e100}`, "max_age: must be a duration"},
		{`{"args": ["U1"], "fresh": "yes"}`, "fresh: must be a boolean, not string"},
		{`{"args": ["U1"], "fresh": true, "max_age": "1m"}`, "fresh: and max_age ask for opposite things"},
	} {
		if r := s.do("POST", "/tasks/entries_of/jobs", tc.body); r.code != 400 || !strings.HasPrefix(r.Message, tc.message) {
			t.Errorf("%s: %d %s", tc.body, r.code, r.Message)
		}
	}
	r = s.do("POST", "/groups", `{"jobs": [{"task": "entries_of", "args": ["U1"], "max_age": "x"}]}`)
	if r.code != 400 || !strings.HasPrefix(r.Message, "jobs[0].max_age: ") {
		t.Fatalf("a group member's bad max_age: %d %s", r.code, r.Message)
	}
}

// TestReadmittingAReusingJobElsewhereKeepsItsSourcesTable: a job that
// reused another's results names that job's table. Submitted again under
// its ID to a task whose results go to another backend, the admission
// drops the tables nothing refers to any more, but never the source's,
// which stays whole and readable. With the ledger in PostgreSQL the
// admission itself says what it replaced; in SQLite the node reads it
// first.
func TestReadmittingAReusingJobElsewhereKeepsItsSourcesTable(t *testing.T) {
	for _, ledger := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.SQLite} {
		t.Run(string(ledger), func(t *testing.T) {
			dbs := newDatabases(t, sqlexec.Postgres, ledger)
			seedEntries(t, dbs.src)
			otherDSN := sqlexectest.DSN(t, sqlexec.MySQL)
			files := tasks(t, sqlexec.Postgres)
			files["here.sql"] = "-- name: here\n-- results: res\nSELECT id, amount FROM entries WHERE user_id = $1 ORDER BY id;\n"
			files["there.sql"] = "-- name: there\n-- results: res2\nSELECT id, amount FROM entries WHERE user_id = $1 ORDER BY id;\n"
			s := newEnv(t, dbs.toml+fmt.Sprintf("\n[results.res2]\ntype = \"mysql\"\ndsn = %q\n", otherDSN), files).start()

			s.post("here", `{"job_id": "src", "args": ["U1"]}`)
			if j := s.waitState("src", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 100 {
				t.Fatalf("source: %+v", j)
			}
			s.post("here", `{"job_id": "copy", "args": ["U1"], "max_age": "10m"}`)
			if r := s.do("GET", "/jobs/copy", ""); r.code != 200 || !strings.Contains(string(r.Data), `"reused_from":"src"`) {
				t.Fatalf("the reusing job: %d %s", r.code, r.Data)
			}
			// The reusing job's ID again, its results in the other backend.
			s.post("there", `{"job_id": "copy", "args": ["U2"]}`)
			if j := s.waitState("copy", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 150 || j.ResultsBackend != "res2" {
				t.Fatalf("the ID's next job: %+v", j)
			}
			if n := count(t, dbs.res, "SELECT COUNT(*) FROM "+quoteTable(dbs.res, "results_src")); n != 100 {
				t.Fatalf("the source's table after the ID that reused it was submitted again: %d rows", n)
			}
			r := s.do("GET", "/jobs/src/results?limit=1000", "")
			var page struct {
				Rows []json.RawMessage `json:"rows"`
			}
			if err := json.Unmarshal(r.Data, &page); err != nil || r.code != 200 || len(page.Rows) != 100 {
				t.Fatalf("the source's results: %d, %d rows %.200s", r.code, len(page.Rows), r.Data)
			}

			// A job with a table of its own, submitted again elsewhere,
			// leaves no table behind.
			s.post("there", `{"job_id": "src", "args": ["U2"]}`)
			s.waitState("src", "SUCCESS")
			if tableExists(t, dbs.res, "results_src") {
				t.Fatal("the source's own table is left after its ID ran on the other backend")
			}
		})
	}
}

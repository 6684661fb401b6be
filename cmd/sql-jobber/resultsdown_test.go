package main

import (
	"context"
	"strings"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// proxiedResults starts a node whose task far writes to a second
// PostgreSQL results backend, res2, reached through a proxy that the test
// can cut; the ledger stays on res, reached directly.
func proxiedResults(t *testing.T) (*testServer, *proxy, *sqlexec.DB) {
	t.Helper()
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	dsn := sqlexectest.DSN(t, sqlexec.Postgres)
	res2, err := sqlexec.Open(context.Background(), sqlexec.DBConfig{Name: "res2", Type: sqlexec.Postgres, DSN: dsn}, sqlexec.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res2.Close)
	p := startProxy(t, "127.0.0.1:5432")
	proxied := strings.Replace(dsn, "@127.0.0.1:5432/", "@"+p.addr()+"/", 1)
	if proxied == dsn {
		t.Fatal("the results DSN does not go through the proxy")
	}
	files := tasks(t, sqlexec.Postgres)
	files["far.sql"] = "-- name: far\n-- results: res2\nSELECT id, amount FROM entries WHERE user_id = $1 ORDER BY id;\n"
	cfg := dbs.toml + "\n[results.res2]\ntype = \"postgres\"\ndsn = \"" + proxied + "\"\nmax_active = 4\n\n[app]\nledger = \"res\"\n"
	return newEnv(t, cfg, files).start(), p, res2
}

// TestResultsBackendRecreatedAndDown: a results database whose fence table
// was dropped (as when the database is dropped and created again) takes
// the next job, and /readyz stays ready; once the database cannot be
// reached, /readyz fails and names its backend.
func TestResultsBackendRecreatedAndDown(t *testing.T) {
	s, p, res2 := proxiedResults(t)
	s.post("far", `{"job_id": "a", "args": ["U1"]}`)
	if j := s.waitState("a", "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
		t.Fatalf("job a: %s %s", j.State, j.Error)
	}

	execStmt(t, res2, "DROP TABLE sqljobber_fence")
	s.post("far", `{"job_id": "b", "args": ["U1"]}`)
	if j := s.waitState("b", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.ResultsBackend != "res2" {
		t.Fatalf("job b after the fence table was dropped: %s on %s: %s", j.State, j.ResultsBackend, j.Error)
	}
	execStmt(t, res2, "DROP TABLE sqljobber_fence")
	if code, r := getReadyz(t, s.base); code != 200 || !r.Data.Ready {
		t.Fatalf("readyz after the fence table was dropped: %d %+v", code, r)
	}
	if n := count(t, res2, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'sqljobber_fence'"); n != 1 {
		t.Fatal("readyz did not create the fence table again")
	}

	p.cut()
	code, r := getReadyz(t, s.base)
	if code != 503 || r.Data.Ready || !strings.Contains(r.Message, "results.res2") {
		t.Fatalf("readyz with res2 down: %d %+v", code, r)
	}
	for _, c := range r.Data.Checks {
		if want := c.Name != "results.res2"; c.OK != want {
			t.Errorf("check %s: ok %v (%s)", c.Name, c.OK, c.Error)
		}
		if c.Name == "results.res2" && !strings.Contains(c.Error, `"res2"`) {
			t.Errorf("check %s does not name the backend: %s", c.Name, c.Error)
		}
		if strings.Contains(c.Error, "postgres://") {
			t.Errorf("check %s shows a DSN: %s", c.Name, c.Error)
		}
	}
}

// TestUsersTableSurvivesAJobOfItsName: a job whose results table name is
// taken by a table sql-jobber did not create fails saying so, and neither
// it nor its purge touches that table.
func TestUsersTableSurvivesAJobOfItsName(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	execStmt(t, dbs.res, "CREATE TABLE results_victim (x INTEGER)")
	execStmt(t, dbs.res, "INSERT INTO results_victim VALUES (1), (2)")
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()
	s.post("entries_of", `{"job_id": "victim", "args": ["U1"]}`)
	j := s.waitState("victim", "SUCCESS", "FAILURE")
	want := `results table "results_victim" exists and was not created by sql-jobber; refusing to replace it`
	if j.State != "FAILURE" || !strings.Contains(j.Error, want) {
		t.Fatalf("job victim: %s %q, want FAILURE with %q", j.State, j.Error, want)
	}
	if r := s.do("DELETE", "/jobs/victim?purge=true", ""); r.code != 200 {
		t.Fatalf("purge: %d %s", r.code, r.Message)
	}
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM results_victim"); n != 2 {
		t.Fatalf("the user's table has %d rows, want its 2", n)
	}
}

// TestResultsReadWithBackendDown: reading the results of a job whose
// results database cannot be reached answers 503, naming the backend (and
// not its DSN), not 500.
func TestResultsReadWithBackendDown(t *testing.T) {
	s, p, _ := proxiedResults(t)
	s.post("far", `{"job_id": "a", "args": ["U1"]}`)
	if j := s.waitState("a", "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
		t.Fatalf("job a: %s %s", j.State, j.Error)
	}
	if r := s.do("GET", "/jobs/a/results", ""); r.code != 200 {
		t.Fatalf("results: %d %s", r.code, r.Message)
	}
	p.cut()
	for range 2 { // a pooled connection, then a new one
		r := s.do("GET", "/jobs/a/results", "")
		if r.code != 503 || !strings.Contains(r.Message, `results backend "res2"`) {
			t.Fatalf("results with res2 down: %d %q, want 503 naming the backend", r.code, r.Message)
		}
		if strings.Contains(r.Message, "postgres") || strings.Contains(r.Message, "127.0.0.1") {
			t.Fatalf("the message shows where the database is: %q", r.Message)
		}
	}
}

// TestLedgerDownIs503: while the job ledger's database cannot be reached,
// submissions and reads answer 503 with a message that says to try again
// and names no host, not 500.
func TestLedgerDownIs503(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	dsn := sqlexectest.DSN(t, sqlexec.Postgres)
	p := startProxy(t, "127.0.0.1:5432")
	proxied := strings.Replace(dsn, "@127.0.0.1:5432/", "@"+p.addr()+"/", 1)
	cfg := dbs.toml + "\n[results.ledger]\ntype = \"postgres\"\ndsn = \"" + proxied + "\"\nmax_active = 4\nconnect_timeout = \"2s\"\n\n[app]\nledger = \"ledger\"\n"
	s := newEnv(t, cfg, tasks(t, sqlexec.Postgres)).start()
	s.post("entries_of", `{"job_id": "before", "args": ["U1"]}`)
	s.waitState("before", "SUCCESS")

	p.cut()
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/tasks/entries_of/jobs", `{"job_id": "during", "args": ["U1"]}`},
		{"GET", "/jobs/before", ""},
		{"GET", "/jobs/queue/default", ""},
	} {
		r := s.do(c.method, c.path, c.body)
		if r.code != 503 || !strings.Contains(r.Message, "try again later") || strings.Contains(r.Message, "127.0.0.1") {
			t.Errorf("%s %s with the ledger down: %d %q", c.method, c.path, r.code, r.Message)
		}
	}
}

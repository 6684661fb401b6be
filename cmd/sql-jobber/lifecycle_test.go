package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// pending is an entry of GET /jobs/queue/{queue}.
type pending struct {
	JobID      string  `json:"job_id"`
	Task       string  `json:"task"`
	Queue      string  `json:"queue"`
	ETA        *string `json:"eta"`
	EnqueuedAt *string `json:"enqueued_at"`
}

func (s *testServer) queue(name string) []pending {
	s.t.Helper()
	r := s.do("GET", "/jobs/queue/"+name, "")
	if r.code != 200 {
		s.t.Fatalf("GET queue %s: %d %s", name, r.code, r.Message)
	}
	var out []pending
	if err := json.Unmarshal(r.Data, &out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

func parseTime(t *testing.T, s *string) time.Time {
	t.Helper()
	if s == nil {
		t.Fatal("missing time")
	}
	v, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestQueueStartsJobsFirstInFirstOut(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start("--worker-concurrency", "1")

	// The one slot is taken; a backlog builds up behind it.
	release := holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "blocker", "args": ["U1"]}`)
	s.waitState("blocker", "STARTED")
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("q%d", i)
		s.post("entries_of", fmt.Sprintf(`{"job_id": %q, "args": ["U1"]}`, id))
		ids = append(ids, id)
	}
	// A job whose ETA is far off waits behind the ready ones, and in the
	// listing too.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	s.post("entries_of", fmt.Sprintf(`{"job_id": "later", "args": ["U1"], "eta": %q}`, future))

	listed := s.queue("default")
	var got []string
	for _, p := range listed {
		got = append(got, p.JobID)
		if p.Task != "entries_of" || p.Queue != "default" || p.EnqueuedAt == nil {
			t.Fatalf("listing entry %+v", p)
		}
	}
	if want := strings.Join(append(ids, "later"), ","); strings.Join(got, ",") != want {
		t.Fatalf("queue listing %v, want %s", got, want)
	}
	if listed[len(listed)-1].ETA == nil || listed[0].ETA != nil {
		t.Fatalf("ETAs in listing: first %v, last %v", listed[0].ETA, listed[len(listed)-1].ETA)
	}

	release()
	var prev time.Time
	for _, id := range ids {
		j := s.waitState(id, "SUCCESS", "FAILURE")
		started := parseTime(t, j.StartedAt)
		if !started.After(prev) {
			t.Fatalf("job %s started at %v, not after the job before it (%v): not first in, first out", id, started, prev)
		}
		prev = started
	}
	if j, _ := s.job("later"); j.State != "PENDING" {
		t.Fatalf("job with a future ETA is %s", j.State)
	}
	if q := s.queue("default"); len(q) != 1 || q[0].JobID != "later" {
		t.Fatalf("queue after the backlog: %+v", q)
	}
}

// A job submitted to an idle queue starts in a free slot as it is admitted.
// A submission refused there (its ID is taken) must hand its slot back: with
// one slot, a leaked one would leave every later job waiting for good.
func TestRefusedSubmitsLeaveTheSlotFree(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start("--worker-concurrency", "1")

	// Waiting for its ETA, "later" holds its ID but no slot; the queue
	// finds nothing ready and goes idle.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	s.post("entries_of", fmt.Sprintf(`{"job_id": "later", "args": ["U1"], "eta": %q}`, future))
	for i := range 20 {
		if r := s.do("POST", "/tasks/entries_of/jobs", `{"job_id": "later", "args": ["U2"]}`); r.code != 409 {
			t.Fatalf("resubmit %d of a waiting job: %d %s", i, r.code, r.Message)
		}
		id := fmt.Sprintf("now%d", i)
		s.post("entries_of", fmt.Sprintf(`{"job_id": %q, "args": ["U1"]}`, id))
		if j := s.waitState(id, "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 100 {
			t.Fatalf("job %s after a refused submit: %+v", id, j)
		}
	}
	if j, _ := s.job("later"); j.State != "PENDING" {
		t.Fatalf("job with a future ETA is %s", j.State)
	}
}

func TestCancelStopsTheQueryAtTheDatabase(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			dbs := newDatabases(t, d, d)
			seedEntries(t, dbs.src)
			s := newEnv(t, dbs.toml, tasks(t, d)).start("--worker-concurrency", "1")

			s.post("slow", `{"job_id": "slow"}`)
			s.waitState("slow", "STARTED")
			waitSessions(t, 20*time.Second, "the slow query to run on the server", dbs.src, "slept", 1)
			s.post("entries_of", `{"job_id": "waiting", "args": ["U1"]}`)

			// A pending job leaves its queue.
			if r := s.do("DELETE", "/jobs/waiting", ""); r.code != 200 {
				t.Fatalf("cancel pending job: %d %s", r.code, r.Message)
			}
			if j, _ := s.job("waiting"); j.State != "CANCELLED" {
				t.Fatalf("cancelled pending job is %s", j.State)
			}
			if q := s.queue("default"); len(q) != 0 {
				t.Fatalf("queue after cancel: %+v", q)
			}

			// A running job's query is gone from the server within a
			// second.
			if r := s.do("DELETE", "/jobs/slow", ""); r.code != 200 {
				t.Fatalf("cancel running job: %d %s", r.code, r.Message)
			}
			waitSessions(t, time.Second, "the cancelled query to leave the server", dbs.src, "slept", 0)
			if j, _ := s.job("slow"); j.State != "CANCELLED" || j.FinishedAt == nil {
				t.Fatalf("cancelled running job: %+v", j)
			}

			// The slot is free again.
			s.post("entries_of", `{"job_id": "after", "args": ["U1"]}`)
			if j := s.waitState("after", "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
				t.Fatalf("job after the cancel: %+v", j)
			}
			if n := count(t, dbs.res, stagingCount(dbs.res)); n != 0 {
				t.Fatalf("%d staging tables left", n)
			}

			// A finished job is not cancelled again; purge deletes it.
			if r := s.do("DELETE", "/jobs/slow", ""); r.code != 409 || !strings.Contains(r.Message, `job "slow" has finished (CANCELLED); add purge=true`) {
				t.Fatalf("cancel a finished job: %d %q", r.code, r.Message)
			}
			if r := s.do("DELETE", "/jobs/slow?purge=true", ""); r.code != 200 {
				t.Fatalf("purge: %d %s", r.code, r.Message)
			}
			if _, code := s.job("slow"); code != 404 {
				t.Fatalf("purged job: GET %d", code)
			}
			if r := s.do("DELETE", "/jobs/slow", ""); r.code != 404 {
				t.Fatalf("cancel a purged job: %d", r.code)
			}
		})
	}
}

func stagingCount(db *sqlexec.DB) string {
	if db.Dialect == sqlexec.MySQL {
		return `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'sqljobber\_stage%'`
	}
	return `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'sqljobber\_stage%'`
}

func tableExists(t *testing.T, db *sqlexec.DB, name string) bool {
	t.Helper()
	switch db.Dialect {
	case sqlexec.MySQL:
		return count(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '%s'`, name)) == 1
	case sqlexec.SQLite:
		return count(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'`, name)) == 1
	}
	return count(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '%s'`, name)) == 1
}

func TestPurgeDropsTheResultsTable(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.MySQL)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()
	s.post("entries_of", `{"job_id": "p1", "args": ["U1"]}`)
	s.waitState("p1", "SUCCESS")
	if !tableExists(t, dbs.res, "results_p1") {
		t.Fatal("no results table")
	}
	if r := s.do("DELETE", "/jobs/p1?purge=maybe", ""); r.code != 400 || !strings.HasPrefix(r.Message, `purge: "maybe"`) {
		t.Fatalf("bad purge flag: %d %q", r.code, r.Message)
	}
	if r := s.do("DELETE", "/jobs/p1?purge=true", ""); r.code != 200 {
		t.Fatalf("purge: %d %s", r.code, r.Message)
	}
	if tableExists(t, dbs.res, "results_p1") {
		t.Fatal("purge left the results table")
	}
	if _, code := s.job("p1"); code != 404 {
		t.Fatalf("purged job: GET %d", code)
	}
	if r := s.do("GET", "/jobs/p1/results", ""); r.code != 410 || !strings.HasPrefix(r.Message, `job "p1" was purged at `) {
		t.Fatalf("results of a purged job: %d %q", r.code, r.Message)
	}
}

func TestETAIsHonouredAcrossARestart(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	env := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres))
	a := env.start()

	// An ETA in the past runs now.
	a.post("entries_of", `{"job_id": "past", "args": ["U1"], "eta": "2001-01-01T00:00:00Z"}`)
	a.waitState("past", "SUCCESS")

	eta := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
	r := a.do("POST", "/tasks/entries_of/jobs", fmt.Sprintf(`{"job_id": "eta", "args": ["U1"], "eta": %q}`, eta.Format("2006-01-02 15:04:05")))
	if r.code != 200 || !strings.Contains(string(r.Data), eta.Format(time.RFC3339)) {
		t.Fatalf("POST with ETA: %d %s %s", r.code, r.Message, r.Data)
	}
	// Before its ETA the job waits. Read after it (a busy machine can take
	// a second from the POST to here) the job may rightly have started;
	// when it started is checked below either way.
	if j, _ := a.job("eta"); j.State != "PENDING" && time.Now().Before(eta) {
		t.Fatalf("job before its ETA is %s", j.State)
	}
	a.stop()

	b := env.start()
	j := b.waitState("eta", "SUCCESS", "FAILURE")
	if started := parseTime(t, j.StartedAt); j.State != "SUCCESS" || started.Before(eta) {
		t.Fatalf("job with ETA %v started at %v: %+v", eta, started, j)
	}
}

func TestFailedJobsAreRetriedWithBackoff(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	config := dbs.toml + "\n[app]\nretry_backoff = \"50ms\"\n"
	sql := map[string]string{"t.sql": `
-- name: divide
SELECT 1 / x AS q FROM divisor;

-- name: flaky
-- raw: 1
SELECT * FROM appears_later;
`}
	sqlexectestExec(t, dbs.src, "CREATE TABLE divisor (x INTEGER)", "INSERT INTO divisor VALUES (0)")
	s := newEnv(t, config, sql).start()

	// Always failing: every retry is used, the last error kept.
	s.post("divide", `{"job_id": "div", "retries": 2}`)
	j := s.waitState("div", "SUCCESS", "FAILURE")
	if j.State != "FAILURE" || j.Attempt != 3 || !strings.Contains(j.Error, "division by zero") {
		t.Fatalf("failing job: %+v", j)
	}
	// It published nothing, so it names no results table to read.
	if j.ResultsTable != "" || tableExists(t, dbs.res, "results_div") {
		t.Fatalf("a failed job names results table %q", j.ResultsTable)
	}

	// Failing until the table appears: RETRY in between, then SUCCESS.
	s.post("flaky", `{"job_id": "flaky", "retries": 50}`)
	j = s.waitState("flaky", "RETRY")
	if j.Attempt < 1 || !strings.Contains(j.Error, "appears_later") {
		t.Fatalf("job waiting to retry: %+v", j)
	}
	// The table appears holding its row, in one statement: created empty
	// and filled in a second, a retry in between would succeed with no
	// rows.
	sqlexectestExec(t, dbs.src, "CREATE TABLE appears_later AS SELECT 1 AS x")
	j = s.waitState("flaky", "SUCCESS", "FAILURE")
	if j.State != "SUCCESS" || j.Attempt < 2 || j.Count != 1 || j.Error != "" || j.ResultsTable != "results_flaky" {
		t.Fatalf("retried job: %+v", j)
	}
}

func TestResultsExpireAfterTheirTTL(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()
	s.post("entries_of", `{"job_id": "short", "args": ["U1"], "ttl": 1}`)
	s.post("entries_of", `{"job_id": "kept", "args": ["U1"]}`)
	j := s.waitState("short", "SUCCESS")
	s.waitState("kept", "SUCCESS")
	r := s.do("GET", "/jobs/short", "")
	if !strings.Contains(string(r.Data), `"expires_at":"`) {
		t.Fatalf("job with a TTL shows no expiry: %s (%+v)", r.Data, j)
	}
	waitGone(t, 15*time.Second, "the expired job to be gone", s, "short")
	if tableExists(t, dbs.res, "results_short") {
		t.Fatal("expiry left the results table")
	}
	if r := s.do("GET", "/jobs/short/results", ""); r.code != 410 || !strings.HasPrefix(r.Message, `job "short" expired at `) {
		t.Fatalf("results of an expired job: %d %q", r.code, r.Message)
	}
	if _, code := s.job("kept"); code != 200 || !tableExists(t, dbs.res, "results_kept") {
		t.Fatal("a job without a TTL expired")
	}
}

func TestTTLFromTaskAndConfigSurvivesRestart(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	files := tasks(t, sqlexec.Postgres)
	files["ttl.sql"] = "-- name: short_lived\n-- ttl: 2s\nSELECT id FROM entries WHERE user_id = $1;\n"
	env := newEnv(t, dbs.toml+"\n[app]\ndefault_job_ttl = \"1h\"\n", files)
	a := env.start()
	a.post("short_lived", `{"job_id": "tagged", "args": ["U1"]}`)
	a.post("entries_of", `{"job_id": "default", "args": ["U1"]}`)
	// "ttl": 0 keeps the results, whatever the task and the default say.
	a.post("short_lived", `{"job_id": "keep", "args": ["U1"], "ttl": 0}`)
	tagged := a.waitState("tagged", "SUCCESS")
	def := a.waitState("default", "SUCCESS")
	if keep := a.waitState("keep", "SUCCESS"); keep.ExpiresAt != nil {
		t.Fatalf(`a job with "ttl": 0 expires at %s`, *keep.ExpiresAt)
	}
	expires := func(j jobStatus) time.Duration {
		var e, f time.Time
		if err := dbs.res.Postgres().QueryRow(context.Background(),
			"SELECT expires_at, finished_at FROM sqljobber_jobs WHERE job_id = $1", j.JobID).Scan(&e, &f); err != nil {
			t.Fatal(err)
		}
		return e.Sub(f)
	}
	if d := expires(tagged); d != 2*time.Second {
		t.Fatalf("task TTL: expires %v after finishing", d)
	}
	if d := expires(def); d != time.Hour {
		t.Fatalf("default TTL: expires %v after finishing", d)
	}
	// The expiry is the ledger's: a restarted node carries it out.
	a.stop()
	b := env.start()
	waitGone(t, 15*time.Second, "the task-TTL job to expire after a restart", b, "tagged")
	if tableExists(t, dbs.res, "results_tagged") || !tableExists(t, dbs.res, "results_default") || !tableExists(t, dbs.res, "results_keep") {
		t.Fatal("expiry dropped the wrong tables")
	}
}

// waitGone waits until GET /jobs/{id} answers 410: the job expired.
func waitGone(t *testing.T, within time.Duration, what string, s *testServer, id string) {
	t.Helper()
	testwait.For(t, within, what, func() (bool, string) {
		r := s.do("GET", "/jobs/"+id, "")
		return r.code == 410 && strings.HasPrefix(r.Message, fmt.Sprintf("job %q expired at ", id)), fmt.Sprintf("GET answers %d %s", r.code, r.Message)
	})
}

func TestTinyPoolsDoNotDeadlock(t *testing.T) {
	for _, p := range []struct{ src, res sqlexec.Dialect }{{sqlexec.Postgres, sqlexec.Postgres}, {sqlexec.MySQL, sqlexec.MySQL}} {
		t.Run(fmt.Sprintf("%s_to_%s", p.src, p.res), func(t *testing.T) {
			dbs := newDatabases(t, p.src, p.res)
			seedEntries(t, dbs.src)
			config := strings.ReplaceAll(dbs.toml, "max_active = 4", "max_active = 1\nmax_idle = 1")
			s := newEnv(t, config, tasks(t, p.src)).start("--worker-concurrency", "10")
			var ids []string
			for i := range 30 {
				ids = append(ids, s.post("entries_of", fmt.Sprintf(`{"job_id": "tiny%d", "args": ["U%d"]}`, i, 1+i%2)))
			}
			for _, id := range ids {
				if j := s.waitState(id, "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
					t.Fatalf("job %s: %+v", id, j)
				}
			}
		})
	}
}

// sqlexectestExec runs statements on db.
func sqlexectestExec(t *testing.T, db *sqlexec.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		execStmt(t, db, s)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// seedEntries creates entries (100 rows of U1, 150 of U2) and an empty gate
// table on db.
func seedEntries(t *testing.T, db *sqlexec.DB) {
	t.Helper()
	sqlexectest.Exec(t, db, "CREATE TABLE entries (id INTEGER PRIMARY KEY, user_id VARCHAR(10) NOT NULL, amount DECIMAL(12,2) NOT NULL)")
	var vals []string
	for i := 1; i <= 250; i++ {
		user := "U1"
		if i > 100 {
			user = "U2"
		}
		vals = append(vals, fmt.Sprintf("(%d, '%s', %d.%02d)", i, user, i*3, i%100))
	}
	sqlexectest.Exec(t, db, "INSERT INTO entries VALUES "+strings.Join(vals, ", "))
	sqlexectest.Exec(t, db, "CREATE TABLE gate (x INTEGER)")
}

// tasks is the task file of these tests for a source dialect: entries_of
// reads a user's entries; gated does too, but waits while the test holds
// the gate; slow sleeps for 30 s. Each query carries a comment naming the
// test, so that the test can find its own sessions on the server.
func tasks(t *testing.T, d sqlexec.Dialect) map[string]string {
	p := placeholder(d, 1)
	sleep := "pg_sleep(30)"
	if d == sqlexec.MySQL {
		sleep = "SLEEP(30)"
	}
	m := marker(t)
	// On PostgreSQL the gate is an advisory lock (which preparing the
	// query does not wait for, as it would for a table lock); on MySQL a
	// table lock.
	gated := fmt.Sprintf("SELECT e.id, e.amount FROM entries e LEFT JOIN gate g ON g.x = e.id WHERE e.user_id = %s", p)
	if d == sqlexec.Postgres {
		gated = fmt.Sprintf("SELECT e.id, e.amount FROM entries e, (SELECT pg_advisory_xact_lock_shared(%d)) AS gate WHERE e.user_id = %s", gateKey(t), p)
	}
	return map[string]string{"tasks.sql": fmt.Sprintf(`
-- name: entries_of
SELECT id, user_id, amount FROM entries WHERE user_id = %s ORDER BY id /* %s */;

-- name: gated
%s /* %s */;

-- name: slow
SELECT %s AS slept /* %s */;
`, p, m, gated, m, sleep, m)}
}

// gateKey is the test's PostgreSQL advisory lock key.
func gateKey(t *testing.T) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(marker(t)))
	return int64(h.Sum64() >> 1)
}

// withBroken adds to a task file set a task "broken" that fails when it
// runs (it is raw: not prepared at start-up).
func withBroken(files map[string]string) map[string]string {
	files["broken.sql"] = "-- name: broken\n-- raw: 1\nSELECT * FROM no_such_table;\n"
	return files
}

// marker is a string unique to the test, for finding its queries.
func marker(t *testing.T) string {
	return "test:" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

// sessions counts the sessions on db's server running a query that carries
// the test's marker (and, if like is not empty, contains like).
func sessions(t *testing.T, db *sqlexec.DB, like string) int64 {
	t.Helper()
	pattern := "%" + marker(t) + "%"
	if db.Dialect == sqlexec.Postgres {
		return count(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()
	AND state = 'active' AND query LIKE '%s' AND query LIKE '%%%s%%'`, pattern, like))
	}
	return count(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM information_schema.processlist WHERE id <> CONNECTION_ID()
	AND info LIKE '%s' AND info LIKE '%%%s%%'`, pattern, like))
}

// holdGate locks the gate table so that the gated task blocks at the source
// until release is called. A blocked job is STARTED, deterministically.
func holdGate(t *testing.T, db *sqlexec.DB) (release func()) {
	t.Helper()
	ctx := context.Background()
	if p := db.Postgres(); p != nil {
		tx, err := p.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", gateKey(t)); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
		t.Cleanup(release)
		return release
	}
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "LOCK TABLES gate WRITE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, _ = conn.ExecContext(ctx, "UNLOCK TABLES")
			conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

var pairs = []struct{ src, res sqlexec.Dialect }{
	{sqlexec.Postgres, sqlexec.Postgres},
	{sqlexec.MySQL, sqlexec.MySQL},
	{sqlexec.Postgres, sqlexec.MySQL},
	{sqlexec.MySQL, sqlexec.Postgres},
}

func TestJobLifecycle(t *testing.T) {
	for _, p := range pairs {
		t.Run(fmt.Sprintf("%s_to_%s", p.src, p.res), func(t *testing.T) {
			t.Parallel()
			dbs := newDatabases(t, p.src, p.res)
			seedEntries(t, dbs.src)
			s := newEnv(t, dbs.toml, tasks(t, p.src)).start()

			// The task list.
			r := s.do("GET", "/tasks", "")
			var list []map[string]any
			if err := json.Unmarshal(r.Data, &list); err != nil || r.code != 200 {
				t.Fatalf("GET /tasks: %d %s", r.code, r.Data)
			}
			if len(list) != 3 || list[0]["name"] != "entries_of" || list[0]["num_args"] != float64(1) ||
				list[0]["queue"] != "default" || fmt.Sprint(list[0]["dbs"]) != "[src]" || fmt.Sprint(list[0]["results"]) != "[res]" ||
				!strings.HasPrefix(fmt.Sprint(list[0]["sql"]), "SELECT id, user_id, amount FROM entries WHERE user_id = ") {
				t.Fatalf("GET /tasks: %s", r.Data)
			}

			// A job runs and its table holds its rows.
			r = s.do("POST", "/tasks/entries_of/jobs", `{"job_id": "life:1", "args": ["U1"]}`)
			if r.code != 200 || string(r.Data) != `{"job_id":"life:1","task":"entries_of","queue":"default","eta":null,"retries":0,"workers":1}` {
				t.Fatalf("POST: %d %s %s", r.code, r.Message, r.Data)
			}
			j := s.waitState("life:1", "SUCCESS", "FAILURE")
			if j.State != "SUCCESS" || j.Count != 100 || j.ResultsBackend != "res" || j.ResultsTable != "results_life:1" ||
				j.Attempt != 1 || j.CreatedAt == nil || j.StartedAt == nil || j.FinishedAt == nil {
				t.Fatalf("job: %+v", j)
			}
			if n := count(t, dbs.res, "SELECT COUNT(*) FROM "+quoteTable(dbs.res, "results_life:1")); n != 100 {
				t.Fatalf("results table has %d rows, want 100", n)
			}

			// While a job of an ID is unfinished, the ID is refused, for
			// any task.
			release := holdGate(t, dbs.src)
			s.post("gated", `{"job_id": "g1", "args": ["U1"]}`)
			s.waitState("g1", "STARTED")
			for _, task := range []string{"gated", "entries_of"} {
				r = s.do("POST", "/tasks/"+task+"/jobs", `{"job_id": "g1", "args": ["U2"]}`)
				if r.code != 409 || !strings.Contains(r.Message, `job "g1" is STARTED`) {
					t.Fatalf("second job of a running ID: %d %q", r.code, r.Message)
				}
			}
			release()
			if j := s.waitState("g1", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 100 {
				t.Fatalf("gated job: %+v", j)
			}

			// A finished ID runs again and its table is replaced.
			s.post("entries_of", `{"job_id": "life:1", "args": ["U2"]}`)
			if j := s.waitState("life:1", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 150 || j.Attempt != 1 {
				t.Fatalf("re-run: %+v", j)
			}
			if n := count(t, dbs.res, "SELECT COUNT(*) FROM "+quoteTable(dbs.res, "results_life:1")); n != 150 {
				t.Fatalf("re-run's table has %d rows, want 150", n)
			}

			// Without a job_id, one is made up.
			id := s.post("entries_of", `{"args": ["U1"]}`)
			if len(id) != 32 {
				t.Fatalf("generated ID %q", id)
			}
			if j := s.waitState(id, "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
				t.Fatalf("generated-ID job: %+v", j)
			}
		})
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()

	huge := `{"args": ["` + strings.Repeat("x", 1<<20) + `"]}`
	for _, tc := range []struct {
		method, path, body string
		code               int
		message            string
	}{
		{"POST", "/tasks/nope/jobs", `{}`, 404, `task not found: "nope"`},
		{"POST", "/tasks/entries_of/jobs", `{"args": [`, 400, "malformed JSON"},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"]} {}`, 400, "malformed JSON: data after the object"},
		{"POST", "/tasks/entries_of/jobs", `{"arg": ["U1"]}`, 400, `unknown field "arg"`},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"], "retries": "3"}`, 400, "retries: must be an integer, not string"},
		{"POST", "/tasks/entries_of/jobs", `{"args": []}`, 400, `args: task "entries_of" takes 1 arguments, got 0`},
		{"POST", "/tasks/entries_of/jobs", `{"args": [{"a": 1}]}`, 400, "args[0]: must be a string, number, boolean or null"},
		{"POST", "/tasks/entries_of/jobs", `{"job_id": "a b", "args": ["U1"]}`, 400, "job_id: must be 1 to 55 characters of letters, digits, '_', '-' or ':'"},
		{"POST", "/tasks/entries_of/jobs", `{"job_id": "` + strings.Repeat("a", 56) + `", "args": ["U1"]}`, 400, "job_id: must be 1 to 55"},
		{"POST", "/tasks/entries_of/jobs", `{"job_id": "x'; DROP TABLE entries; --", "args": ["U1"]}`, 400, "job_id:"},
		{"POST", "/tasks/entries_of/jobs", `{"job_id": "queue", "args": ["U1"]}`, 400, `job_id: "queue" is reserved`},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"], "retries": -1}`, 400, "retries: must be between 0 and 1000"},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"], "ttl": -5}`, 400, "ttl: must be between 0 and"},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"], "eta": "tomorrow"}`, 400, `eta: "tomorrow" is neither`},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"], "db": "other"}`, 400, `db: task "entries_of" does not run on database "other"`},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"], "queue": "no queue"}`, 400, "queue: must be"},
		{"POST", "/tasks/entries_of/jobs", huge, 413, "request body is larger than 1048576 bytes"},
		{"GET", "/jobs/nope", "", 404, `job not found: "nope"`},
		{"GET", "/nope", "", 404, "no such endpoint: GET /nope"},
		{"DELETE", "/tasks", "", 405, "method DELETE is not allowed on /tasks"},
	} {
		r := s.do(tc.method, tc.path, tc.body)
		if r.code != tc.code || r.Status != "error" || !strings.HasPrefix(r.Message, tc.message) {
			t.Errorf("%s %s %.60s: got %d %q, want %d %q", tc.method, tc.path, tc.body, r.code, r.Message, tc.code, tc.message)
		}
	}
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM sqljobber_jobs"); n != 0 {
		t.Errorf("refused requests left %d ledger rows", n)
	}
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE 'sqljobber\\_%'"); n != 0 {
		t.Errorf("refused requests left %d tables", n)
	}
	if n := count(t, dbs.src, "SELECT COUNT(*) FROM entries"); n != 250 {
		t.Errorf("entries has %d rows", n)
	}
}

func TestConcurrentSubmitsOfOneIDRunOnce(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL, sqlexec.SQLite} {
		t.Run(string(d), func(t *testing.T) { testConcurrentSubmits(t, d) })
	}
}

// testConcurrentSubmits: the ledger (on results database d) admits one of
// many simultaneous jobs of one ID.
func testConcurrentSubmits(t *testing.T, d sqlexec.Dialect) {
	dbs := newDatabases(t, sqlexec.Postgres, d)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()
	release := holdGate(t, dbs.src)

	const n = 20
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- s.do("POST", "/tasks/gated/jobs", `{"job_id": "same", "args": ["U1"]}`).code
		}()
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[200] != 1 || got[409] != n-1 {
		t.Fatalf("status codes %v, want one 200 and %d 409", got, n-1)
	}
	release()
	if j := s.waitState("same", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Attempt != 1 {
		t.Fatalf("job: %+v", j)
	}
}

func TestRestartKeepsLedgerAndResumesJobs(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	// The gated job cannot finish while the node drains: it is handed
	// back when the drain times out.
	env := newEnv(t, dbs.toml+"\n[app]\ndrain_timeout = \"200ms\"\n", tasks(t, sqlexec.Postgres))
	a := env.start()

	a.post("entries_of", `{"job_id": "done", "args": ["U1"]}`)
	a.waitState("done", "SUCCESS")
	release := holdGate(t, dbs.src)
	a.post("gated", `{"job_id": "running", "args": ["U2"]}`)
	a.waitState("running", "STARTED")
	// No node of this run works queue "later": the job waits, PENDING.
	a.post("entries_of", `{"job_id": "pending", "args": ["U2"], "queue": "later"}`)
	if j := a.waitState("pending", "PENDING"); j.Queue != "later" {
		t.Fatalf("pending job: %+v", j)
	}
	a.stop()

	var state string
	if err := dbs.res.Postgres().QueryRow(context.Background(),
		"SELECT state FROM sqljobber_jobs WHERE job_id = 'running'").Scan(&state); err != nil || state != "PENDING" {
		t.Fatalf("a job interrupted by shutdown is %q (%v), want PENDING again", state, err)
	}
	release()

	b := env.start("--queue", "default", "--queue", "later")
	if j, _ := b.job("done"); j.State != "SUCCESS" || j.Count != 100 {
		t.Fatalf("finished job after restart: %+v", j)
	}
	// Handed back at shutdown, the interrupted run does not count as an
	// attempt.
	if j := b.waitState("running", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 150 || j.Attempt != 1 {
		t.Fatalf("interrupted job after restart: %+v", j)
	}
	if j := b.waitState("pending", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 150 {
		t.Fatalf("pending job after restart: %+v", j)
	}
	// The interrupted run's staging table is gone.
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'sqljobber_stage%'"); n != 0 {
		t.Fatalf("%d staging tables left", n)
	}
}

func TestTaskTimeoutIsEnforcedAtTheSource(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			dbs := newDatabases(t, d, sqlexec.Postgres)
			sleep := "SELECT pg_sleep(30) AS slept"
			if d == sqlexec.MySQL {
				sleep = "SELECT SLEEP(30) AS slept"
			}
			s := newEnv(t, dbs.toml, map[string]string{"t.sql": "-- name: slow\n-- timeout: 300ms\n" + sleep + ";\n"}).start()
			s.post("slow", `{"job_id": "slow"}`)
			j := s.waitState("slow", "SUCCESS", "FAILURE")
			want := "canceling statement due to statement timeout"
			if d == sqlexec.MySQL {
				want = "max_statement_time exceeded"
			}
			if j.State != "FAILURE" || !strings.Contains(j.Error, want) {
				t.Fatalf("job: %+v, want FAILURE with %q", j, want)
			}
		})
	}
}

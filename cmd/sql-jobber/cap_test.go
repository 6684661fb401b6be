package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// cappedSource prepares a PostgreSQL source whose task "capped" records
// each run's start and end at the source (cap_runs) around a sleep, and
// returns the task file. A run waits at its start while the test holds the
// gate (holdGate).
func cappedSource(t *testing.T, dbs *databases, sleep string) map[string]string {
	t.Helper()
	execStmt(t, dbs.src, "CREATE TABLE cap_runs (job TEXT NOT NULL, started TIMESTAMPTZ NOT NULL, ended TIMESTAMPTZ)")
	execStmt(t, dbs.src, fmt.Sprintf(`CREATE FUNCTION capped_run(j TEXT) RETURNS INT LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	INSERT INTO cap_runs (job, started) VALUES (j, clock_timestamp());
	PERFORM pg_advisory_xact_lock_shared(%d);
	PERFORM pg_sleep(%s);
	UPDATE cap_runs SET ended = clock_timestamp() WHERE job = j AND ended IS NULL;
	RETURN 1;
END $$`, gateKey(t), sleep))
	return map[string]string{"capped.sql": "-- name: capped\nSELECT capped_run($1) AS ran;\n"}
}

// mostAtOnce is the most runs recorded in cap_runs that overlapped, and
// how many runs ended.
func mostAtOnce(t *testing.T, db *sqlexec.DB) (most, ended int) {
	t.Helper()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	rows, err := db.Postgres().Query(context.Background(), "SELECT started, ended FROM cap_runs WHERE ended IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s, e time.Time
		if err := rows.Scan(&s, &e); err != nil {
			t.Fatal(err)
		}
		edges = append(edges, edge{s, 1}, edge{e, -1})
		ended++
	}
	// An end and a start at the same instant do not overlap.
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta
	})
	n := 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most, ended
}

// ledgerRunning counts the jobs the ledger shows STARTED against db.
func ledgerRunning(res *sqlexec.DB, db string) (int, error) {
	n := 0
	err := res.Querier().Query(context.Background(), "SELECT COUNT(*) FROM sqljobber_jobs WHERE state = 'STARTED' AND source_db = ?",
		func(scan func(...any) error) error { return scan(&n) }, db)
	return n, err
}

// watchRunning records, until stop is called, the most jobs the ledger
// shows STARTED against db at once.
func watchRunning(t *testing.T, res *sqlexec.DB, db string) (stop func() int) {
	var (
		most    int
		quit    = make(chan struct{})
		watched = make(chan struct{})
	)
	go func() {
		defer close(watched)
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if n, err := ledgerRunning(res, db); err == nil {
				most = max(most, n)
			}
		}
	}()
	var once sync.Once
	stop = func() int {
		once.Do(func() { close(quit); <-watched })
		return most
	}
	t.Cleanup(func() { stop() })
	return stop
}

type dbSummary struct {
	DB         string `json:"db"`
	MaxRunning *int   `json:"max_running"`
	Running    int64  `json:"running"`
	Ready      int64  `json:"ready"`
	HeldBack   int64  `json:"held_back"`
}

func (s *testServer) databases() map[string]dbSummary {
	s.t.Helper()
	r := s.do("GET", "/databases", "")
	if r.code != 200 {
		s.t.Fatalf("GET /databases: %d %s", r.code, r.Message)
	}
	var list []dbSummary
	if err := json.Unmarshal(r.Data, &list); err != nil {
		s.t.Fatal(err)
	}
	out := map[string]dbSummary{}
	for _, d := range list {
		out[d.DB] = d
	}
	return out
}

// TestClusterCapsASourceDatabase: with [db.src] max_running = 2, ten slow
// jobs submitted through both nodes of a cluster (five slots each) never
// run more than two at once at the source, on any ledger dialect; they
// start in the order they were submitted, and all succeed. While they
// wait, GET /databases and /metrics show the cap, the two running and
// the rest held back.
func TestClusterCapsASourceDatabase(t *testing.T) {
	for _, ledgerDialect := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL, sqlexec.SQLite} {
		t.Run(string(ledgerDialect), func(t *testing.T) {
			dbs := newDatabases(t, sqlexec.Postgres, ledgerDialect)
			files := cappedSource(t, dbs, "0.3")
			config := strings.Replace(dbs.toml, "[db.src]\n", "[db.src]\nmax_running = 2\n", 1)
			env := newEnv(t, config+"\n[cluster]\nremoval_grace = \"500ms\"\n", files)
			a := env.startMember("A", nil, "--worker-concurrency", "5")
			b := env.startMember("B", a, "--worker-concurrency", "5")
			waitMembers(t, 2, a, b)

			// The ledger's count, watched while the jobs run.
			stopWatching := watchRunning(t, dbs.res, "src")
			// The first runs wait at the source until every job is in
			// and seen waiting: on a busy machine, submitting ten jobs
			// can take longer than running them.
			release := holdGate(t, dbs.src)
			var ids []string
			for i := range 10 {
				id := fmt.Sprintf("cap%02d", i)
				ids = append(ids, id)
				[]*testServer{a, b}[i%2].post("capped", fmt.Sprintf(`{"job_id": %q, "args": [%q]}`, id, id))
			}
			testwait.For(t, 20*time.Second, "GET /databases to show src at its cap with the other jobs held back", func() (bool, string) {
				d := b.databases()["src"]
				return d.MaxRunning != nil && *d.MaxRunning == 2 && d.Running == 2 && d.Ready == 8 && d.HeldBack == 8,
					fmt.Sprintf("%+v", d)
			})
			code, _, metrics := rawGet(t, a.base, "/metrics", "")
			for _, want := range []string{`sqljobber_db_max_running{db="src"} 2`, `sqljobber_db_running{db="src"} 2`, `sqljobber_db_held_back{db="src"} 8`} {
				if code != 200 || !strings.Contains(metrics, "\n"+want) {
					t.Errorf("/metrics (%d) lacks %s", code, want)
				}
			}
			release()
			for _, id := range ids {
				if j := a.waitState(id, "SUCCESS", "FAILURE", "CANCELLED"); j.State != "SUCCESS" || j.Attempt != 1 {
					t.Fatalf("job %s: %+v", id, j)
				}
			}
			mostStarted := stopWatching()
			most, ended := mostAtOnce(t, dbs.src)
			if ended != 10 || most != 2 {
				t.Fatalf("%d runs ended at the source, at most %d at once; want 10, at most 2 (the cap)", ended, most)
			}
			if mostStarted > 2 {
				t.Fatalf("the ledger showed %d jobs of src STARTED at once", mostStarted)
			}
			// They started in the order they came.
			var nodes []string
			var last time.Time
			for _, id := range ids {
				var node string
				var started ledgerTimeScan
				err := dbs.res.Querier().Query(context.Background(), "SELECT node, started_at FROM sqljobber_jobs WHERE job_id = ?",
					func(scan func(...any) error) error { return scan(&node, &started) }, id)
				if err != nil {
					t.Fatal(err)
				}
				if started.t.Before(last) {
					var dump []string
					_ = dbs.res.Querier().Query(context.Background(), "SELECT job_id, node, fence, lost_runs, error FROM sqljobber_jobs ORDER BY job_id",
						func(scan func(...any) error) error {
							var id, node, e string
							var fence, lost int
							err := scan(&id, &node, &fence, &lost, &e)
							dump = append(dump, fmt.Sprintf("%s %s fence %d lost %d %q", id, node, fence, lost, e))
							return err
						})
					t.Fatalf("job %s started at %v, before an earlier job (%v); jobs: %v", id, started.t, last, dump)
				}
				last = started.t
				nodes = append(nodes, node)
			}
			// Which node takes a freed place is a race (on SQLite the
			// node that ran the job that freed it most often wins).
			t.Logf("the jobs ran on %v", nodes)
			d := a.databases()["src"]
			if d.Running != 0 || d.Ready != 0 || d.HeldBack != 0 {
				t.Fatalf("GET /databases after: %+v", d)
			}
		})
	}
}

// ledgerTimeScan scans a ledger time from any dialect's form.
type ledgerTimeScan struct{ t time.Time }

func (l *ledgerTimeScan) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		l.t = v.UTC()
		return nil
	case []byte:
		return l.Scan(string(v))
	case string:
		t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", v, time.UTC)
		l.t = t
		return err
	}
	return fmt.Errorf("unexpected %T", src)
}

// TestCapHoldsUpNoOtherDatabase: while a capped database's jobs wait for
// its cap, the same queue's jobs for another database run in the free
// slots; the capped jobs keep their turn and run once the cap allows.
func TestCapHoldsUpNoOtherDatabase(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	// "other" is the same server under another name, without a cap.
	config := strings.Replace(dbs.toml, "[db.src]\n", "[db.src]\nmax_running = 1\n", 1)
	srcSection := dbs.toml[:strings.Index(dbs.toml, "[results.res]")]
	config += "\n" + strings.Replace(srcSection, "[db.src]", "[db.other]", 1)
	s := newEnv(t, config, tasks(t, sqlexec.Postgres)).start("--worker-concurrency", "3")
	release := holdGate(t, dbs.src)
	for i := range 3 {
		s.post("gated", fmt.Sprintf(`{"job_id": "held%d", "args": ["U1"], "db": "src"}`, i))
	}
	waitSessions(t, 20*time.Second, "one capped job to wait at the source", dbs.src, "gate", 1)
	for i := range 4 {
		id := fmt.Sprintf("free%d", i)
		s.post("entries_of", fmt.Sprintf(`{"job_id": %q, "args": ["U1"], "db": "other"}`, id))
		if j := s.waitState(id, "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != 100 {
			t.Fatalf("job %s of the uncapped database: %+v", id, j)
		}
	}
	d := s.databases()
	if d["src"].Running != 1 || d["src"].HeldBack != 2 || d["other"].MaxRunning != nil || d["other"].Running != 0 {
		t.Fatalf("GET /databases: %+v", d)
	}
	for i, want := range []string{"STARTED", "PENDING", "PENDING"} {
		if j, _ := s.job(fmt.Sprintf("held%d", i)); j.State != want {
			t.Fatalf("capped job held%d: %+v, want %s", i, j, want)
		}
	}
	if n := sessions(t, dbs.src, "gate"); n != 1 {
		t.Fatalf("%d capped jobs at the source, want 1", n)
	}
	release()
	for i := range 3 {
		if j := s.waitState(fmt.Sprintf("held%d", i), "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
			t.Fatalf("capped job held%d: %+v", i, j)
		}
	}
}

// TestClusterCapFreesWhenItsNodeDies: a node killed (SIGKILL) while it
// runs a capped database's jobs keeps their places under the cap until the
// cluster finds it gone; then they run again on the survivor, never more
// than the cap at once. The runs' lease is an hour: failover, not lease
// expiry, frees the places.
func TestClusterCapFreesWhenItsNodeDies(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	config := strings.Replace(dbs.toml, "[db.src]\n", "[db.src]\nmax_running = 2\n", 1)
	env := newEnv(t, config+"\n[app]\nrun_lease = \"1h\"\n\n[cluster]\nremoval_grace = \"1s\"\n", tasks(t, sqlexec.Postgres))
	release := holdGate(t, dbs.src)
	stopWatching := watchRunning(t, dbs.res, "src")

	vport, sport := freePortPair(t), freePortPair(t)
	victim := startProcess(t, env, "--cluster-bind", "127.0.0.1:"+strconv.Itoa(vport), "--worker-name", "victim", "--worker-concurrency", "4")
	api := &testServer{t: t, base: victim.base}
	for i := range 4 {
		api.post("gated", fmt.Sprintf(`{"job_id": "g%d", "args": ["U1"]}`, i))
	}
	waitStarted(t, 20*time.Second, "the victim to run two jobs, its cap", dbs, func(n map[string]int) bool { return n["victim"] == 2 })
	survivor := startProcess(t, env, "--cluster-bind", "127.0.0.1:"+strconv.Itoa(sport), "--worker-name", "survivor", "--worker-concurrency", "4",
		"--join", "127.0.0.1:"+strconv.Itoa(vport))
	api = &testServer{t: t, base: survivor.base}
	waitMembers(t, 2, api)
	if d := api.databases()["src"]; d.Running != 2 || d.HeldBack != 2 {
		t.Fatalf("GET /databases with the cap reached: %+v", d)
	}

	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.wait(10 * time.Second)
	killed := time.Now()
	waitStarted(t, 30*time.Second, "the survivor to take the dead node's places", dbs, func(n map[string]int) bool {
		return n["survivor"] == 2 && n["victim"] == 0
	})
	t.Logf("the cap's places were free %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	release()
	for i := range 4 {
		if j := api.waitState(fmt.Sprintf("g%d", i), "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
			t.Fatalf("job g%d: %+v", i, j)
		}
	}
	if most := stopWatching(); most != 2 {
		t.Fatalf("the ledger showed at most %d jobs of src STARTED at once, want 2", most)
	}
}

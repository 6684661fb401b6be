package main

import (
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// flightTasks is the task file of the single-flight tests, on a PostgreSQL
// source seeded by seedFlight: counted reads a user's entries once the
// test's gate opens, with -- cache:, and counts its own executions in the
// sequence runs (a volatile CTE, evaluated once a query), whose number each
// row carries.
func flightTasks(t *testing.T) map[string]string {
	return map[string]string{"flight.sql": fmt.Sprintf(`
-- name: counted
-- cache: 10m
WITH r AS MATERIALIZED (SELECT nextval('runs') AS run)
SELECT r.run, e.id, e.amount FROM r, entries e, (SELECT pg_advisory_xact_lock_shared(%d)) AS gate WHERE e.user_id = $1 ORDER BY e.id /* %s */;
`, gateKey(t), marker(t))}
}

// seedFlight seeds a PostgreSQL source for flightTasks.
func seedFlight(t *testing.T, db *sqlexec.DB) {
	t.Helper()
	seedEntries(t, db)
	execStmt(t, db, "CREATE SEQUENCE runs")
}

// runs is how many times counted ran on the source.
func runs(t *testing.T, db *sqlexec.DB) int64 {
	t.Helper()
	return count(t, db, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM runs")
}

// flightJob is what the single-flight tests read of GET /jobs/{id}.
type flightJob struct {
	State      string `json:"state"`
	Count      int64  `json:"count"`
	Node       string `json:"node"`
	Joined     string `json:"joined"`
	ReusedFrom string `json:"reused_from"`
}

func (s *testServer) flightJob(id string) flightJob {
	s.t.Helper()
	r := s.do("GET", "/jobs/"+id, "")
	var j flightJob
	if r.code != 200 || json.Unmarshal(r.Data, &j) != nil {
		s.t.Fatalf("GET /jobs/%s: %d %s", id, r.code, r.Data)
	}
	return j
}

// postAll submits bodies to task at once, each on its own connection, and
// fails the test unless all are accepted.
func (s *testServer) postAll(task string, bodies []string) {
	s.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(bodies))
	for i, body := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := nethttp.Post(s.base+"/tasks/"+task+"/jobs", "application/json", strings.NewReader(body))
			if err != nil {
				errs[i] = err
				return
			}
			defer res.Body.Close()
			if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 {
				errs[i] = fmt.Errorf("%s: %d %s", body, res.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			s.t.Fatal(err)
		}
	}
}

// TestIdenticalJobsAtOnceRunOnce: fifty identical jobs posted at once, on a
// ledger of each kind, make one run on the source: one job leads, the
// others wait on it (joined), a wait on one of them ends when the leader
// succeeds, and all fifty are SUCCESS with the same rows.
func TestIdenticalJobsAtOnceRunOnce(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dbs := newDatabases(t, sqlexec.Postgres, d)
			seedFlight(t, dbs.src)
			s := newEnv(t, dbs.toml, flightTasks(t)).start()
			release := holdGate(t, dbs.src)
			const n = 50
			var ids, bodies []string
			for i := range n {
				ids = append(ids, fmt.Sprintf("burst%02d", i))
				bodies = append(bodies, fmt.Sprintf(`{"job_id": %q, "args": ["U1"]}`, ids[i]))
			}
			s.postAll("counted", bodies)
			var leader string
			for _, id := range ids {
				if j := s.flightJob(id); j.Joined == "" {
					if leader != "" {
						t.Fatalf("%s and %s both lead", leader, id)
					}
					leader = id
				}
			}
			var joiner string
			for _, id := range ids {
				if j := s.flightJob(id); id != leader && (j.Joined != leader || j.State != "PENDING") {
					t.Fatalf("%s: %+v; want it PENDING, joined to %s", id, j, leader)
				} else if id != leader {
					joiner = id
				}
			}
			waited := make(chan response, 1)
			go func() {
				res, err := nethttp.Get(s.base + "/jobs/" + joiner + "?wait=50s")
				var r response
				if err == nil {
					defer res.Body.Close()
					r.code = res.StatusCode
					err = json.NewDecoder(res.Body).Decode(&r)
				}
				if err != nil {
					r.Message = err.Error()
				}
				waited <- r
			}()
			release()
			select {
			case r := <-waited:
				var j flightJob
				if r.code != 200 || json.Unmarshal(r.Data, &j) != nil || j.State != "SUCCESS" || j.ReusedFrom != leader {
					t.Fatalf("the wait on %s: %d %s %s", joiner, r.code, r.Message, r.Data)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("a wait on a joiner did not end when its leader succeeded")
			}
			var rows string
			for _, id := range ids {
				j := s.waitState(id, "SUCCESS", "FAILURE", "CANCELLED")
				if j.State != "SUCCESS" || j.Count != 100 {
					t.Fatalf("%s: %+v", id, j)
				}
				if f := s.flightJob(id); id != leader && f.ReusedFrom != leader {
					t.Fatalf("%s: reused_from %q; want %s", id, f.ReusedFrom, leader)
				}
				r := s.do("GET", "/jobs/"+id+"/results?limit=1000", "")
				if r.code != 200 || !strings.Contains(string(r.Data), `[1,1,"3.01"]`) || rows != "" && string(r.Data) != rows {
					t.Fatalf("%s's results: %d %.300s", id, r.code, r.Data)
				}
				rows = string(r.Data)
			}
			if n := runs(t, dbs.src); n != 1 {
				t.Fatalf("the source ran the query %d times; want once", n)
			}
		})
	}
}

// TestClusterAFlightOutlivesItsLeadersNode: jobs posted on both nodes of a
// cluster join an identical job running on one of them; that node stops
// before the job can finish, the job runs again on the other, and the jobs
// that joined it get its results, without running.
func TestClusterAFlightOutlivesItsLeadersNode(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedFlight(t, dbs.src)
	// The stopping node hands its gated run back when its drain times out.
	env := newEnv(t, dbs.toml+"\n[app]\ndrain_timeout = \"200ms\"\n\n[cluster]\nremoval_grace = \"500ms\"\n", flightTasks(t))
	a := env.startMember("A", nil)
	b := env.startMember("B", a)
	waitMembers(t, 2, a, b)
	release := holdGate(t, dbs.src)
	a.post("counted", `{"job_id": "lead", "args": ["U1"]}`)
	waitStarted(t, 30*time.Second, "the leader to run", dbs, func(n map[string]int) bool { return n["A"]+n["B"] == 1 })
	a.post("counted", `{"job_id": "via-a", "args": ["U1"]}`)
	b.post("counted", `{"job_id": "via-b", "args": ["U1"]}`)
	for _, id := range []string{"via-a", "via-b"} {
		if j := a.flightJob(id); j.Joined != "lead" || j.State != "PENDING" {
			t.Fatalf("%s: %+v; want it joined to lead", id, j)
		}
	}
	dies, survivor, died := a, b, "A"
	if a.flightJob("lead").Node == "B" {
		dies, survivor, died = b, a, "B"
	}
	dies.stop()
	waitMembers(t, 1, survivor)
	release()
	if lead := survivor.waitState("lead", "SUCCESS", "FAILURE"); lead.State != "SUCCESS" {
		t.Fatalf("the leader: %+v", lead)
	}
	if node := survivor.flightJob("lead").Node; node == died {
		t.Fatalf("the leader finished on %s, the node that stopped", node)
	}
	for _, id := range []string{"via-a", "via-b"} {
		survivor.waitState(id, "SUCCESS", "FAILURE")
		if j := survivor.flightJob(id); j.State != "SUCCESS" || j.ReusedFrom != "lead" || j.Count != 100 {
			t.Fatalf("%s: %+v", id, j)
		}
	}
	// The stopped node's run may have counted before it was stopped.
	if n := runs(t, dbs.src); n > 2 {
		t.Fatalf("the source ran the query %d times; want the leader's runs alone", n)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// trickleRows is how many rows the trickle task returns: it pauses 0.2 s
// after each thousand, so that it runs for about 4 s, sending rows all the
// while.
const trickleRows = 20_000

// seedNumbers creates numbers (n = 1 to trickleRows) on db.
func seedNumbers(t *testing.T, db *sqlexec.DB) {
	t.Helper()
	sqlexectest.Exec(t, db, "CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
	for from := 1; from <= trickleRows; from += 5000 {
		vals := make([]string, 0, 5000)
		for n := from; n < from+5000 && n <= trickleRows; n++ {
			vals = append(vals, fmt.Sprintf("(%d)", n))
		}
		sqlexectest.Exec(t, db, "INSERT INTO numbers VALUES "+strings.Join(vals, ", "))
	}
}

// trickleTask is the task file of the trickle task for a source dialect.
func trickleTask(d sqlexec.Dialect) map[string]string {
	pause := "pg_sleep(0.2)::text"
	if d == sqlexec.MySQL {
		pause = "SLEEP(0.2)"
	}
	return map[string]string{"trickle.sql": fmt.Sprintf(
		"-- name: trickle\nSELECT n, CASE WHEN n %% 1000 = 0 THEN %s END AS pause FROM numbers;\n", pause)}
}

// liveStatus is what GET /jobs/{id} says of a job's progress.
type liveStatus struct {
	State         string   `json:"state"`
	Count         int64    `json:"count"`
	RowsPerSecond *float64 `json:"rows_per_second"`
	Node          string   `json:"node"`
}

func (s *testServer) live(id string) liveStatus {
	s.t.Helper()
	r := s.do("GET", "/jobs/"+id, "")
	if r.code != 200 {
		s.t.Fatalf("GET /jobs/%s: %d %s", id, r.code, r.Message)
	}
	var j liveStatus
	if err := json.Unmarshal(r.Data, &j); err != nil {
		s.t.Fatal(err)
	}
	return j
}

// waitRising polls job id until successive answers, while it is STARTED,
// have shown its count rise twice, with a rate; it fails if the job
// finishes first.
func waitRising(t *testing.T, s *testServer, id string) {
	t.Helper()
	var seen []int64
	testwait.For(t, 60*time.Second, "the count of running job "+id+" to rise on successive reads", func() (bool, string) {
		j := s.live(id)
		switch {
		case j.State == "PENDING":
		case j.State != "STARTED":
			t.Fatalf("job %s is %s (count %d) before its count was seen rising: %v", id, j.State, j.Count, seen)
		case j.RowsPerSecond == nil:
			// Its node may not have answered in time, or the run is
			// between the ledger's STARTED and its start here.
		case j.Count > 0 && *j.RowsPerSecond <= 0:
			t.Fatalf("job %s: count %d at %v rows/s", id, j.Count, *j.RowsPerSecond)
		case j.Count > 0 && (len(seen) == 0 || j.Count > seen[len(seen)-1]):
			seen = append(seen, j.Count)
		}
		return len(seen) >= 3, fmt.Sprintf("%s, counts seen rising %v", j.State, seen)
	})
	t.Logf("job %s while running: counts %v", id, seen)
}

// TestProgressWhileRunning: while a job runs, its status shows the rows
// written so far rising, and a rate, without waiting for the end; its
// final status has the final count and no rate. So do the listing and the
// group view.
func TestProgressWhileRunning(t *testing.T) {
	for _, p := range pairs {
		t.Run(fmt.Sprintf("%s_to_%s", p.src, p.res), func(t *testing.T) {
			dbs := newDatabases(t, p.src, p.res)
			seedNumbers(t, dbs.src)
			s := newEnv(t, dbs.toml, trickleTask(p.src)).start()

			s.post("trickle", `{"job_id": "trickle"}`)
			waitRising(t, s, "trickle")

			r := s.do("GET", "/jobs?state=STARTED", "")
			var page struct {
				Jobs []liveStatus `json:"jobs"`
			}
			if err := json.Unmarshal(r.Data, &page); r.code != 200 || err != nil {
				t.Fatalf("GET /jobs: %d %s %v", r.code, r.Message, err)
			}
			if len(page.Jobs) == 1 && page.Jobs[0].State == "STARTED" && (page.Jobs[0].RowsPerSecond == nil || page.Jobs[0].Count == 0) {
				t.Errorf("the listing shows running job without its progress: %+v", page.Jobs[0])
			}

			j := s.waitState("trickle", "SUCCESS")
			if j.Count != trickleRows {
				t.Fatalf("final count %d, want %d", j.Count, trickleRows)
			}
			if f := s.live("trickle"); f.RowsPerSecond != nil || f.Count != trickleRows {
				t.Fatalf("finished job: %+v, want count %d and no rate", f, trickleRows)
			}
		})
	}
}

// TestProgressInAGroup: a running member of a group shows its progress in
// the group's view.
func TestProgressInAGroup(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedNumbers(t, dbs.src)
	s := newEnv(t, dbs.toml, trickleTask(sqlexec.Postgres)).start()
	if r := s.do("POST", "/groups", `{"group_id": "g", "jobs": [{"job_id": "m1", "task": "trickle"}]}`); r.code != 200 {
		t.Fatalf("POST /groups: %d %s", r.code, r.Message)
	}
	var seen []int64
	testwait.For(t, 60*time.Second, "the group view to show its running member's count rising", func() (bool, string) {
		r := s.do("GET", "/groups/g", "")
		var g struct {
			Jobs []liveStatus `json:"jobs"`
		}
		if err := json.Unmarshal(r.Data, &g); r.code != 200 || err != nil || len(g.Jobs) != 1 {
			t.Fatalf("GET /groups/g: %d %s %v %s", r.code, r.Message, err, r.Data)
		}
		m := g.Jobs[0]
		if m.State != "STARTED" && m.State != "PENDING" {
			t.Fatalf("member is %s before its count was seen rising: %v", m.State, seen)
		}
		if m.RowsPerSecond != nil && m.Count > 0 && (len(seen) == 0 || m.Count > seen[len(seen)-1]) {
			seen = append(seen, m.Count)
		}
		return len(seen) >= 2, fmt.Sprintf("member %+v, counts seen %v", m, seen)
	})
	s.waitGroup("g", "SUCCESS")
}

// TestClusterProgressFromAnotherNode: a job that runs on one member shows
// its progress when read on another, which asks the member running it.
func TestClusterProgressFromAnotherNode(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedNumbers(t, dbs.src)
	env := clusterEnv(t, dbs, trickleTask(sqlexec.Postgres))
	// The API node works no queue of the task: the job runs on the other.
	api := env.startMember("api", nil, "--queue", "elsewhere")
	env.startMember("worker", api, "--worker-only")
	waitMembers(t, 2, api)

	api.post("trickle", `{"job_id": "far"}`)
	waitRising(t, api, "far")
	if j := api.waitState("far", "SUCCESS"); j.Count != trickleRows {
		t.Fatalf("final count %d, want %d", j.Count, trickleRows)
	}
	if j := api.live("far"); j.Node != "worker" {
		t.Fatalf("job ran on %s, want worker", j.Node)
	}
}

// TestClusterProgressFromADrainingNode: a member that is stopping (leaving)
// still runs its jobs until its drain ends, and another member reads their
// progress from it all the while.
func TestClusterProgressFromADrainingNode(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedNumbers(t, dbs.src)
	// The job streams rows up to the gate, and waits there while the test
	// holds it.
	gated := map[string]string{"gated.sql": fmt.Sprintf("-- name: half\n"+
		"SELECT n, CASE WHEN n = %d THEN pg_advisory_xact_lock_shared(%d)::text END AS gate FROM numbers ORDER BY n /* %s */;\n",
		trickleRows/2, gateKey(t), marker(t))}
	env := newEnv(t, dbs.toml+"\n[app]\ndrain_timeout = \"2m\"\n\n[cluster]\nremoval_grace = \"500ms\"\n", gated)
	api := env.startMember("api", nil, "--queue", "elsewhere")
	worker := env.startMember("worker", api, "--worker-only")
	waitMembers(t, 2, api)
	release := holdGate(t, dbs.src)

	api.post("half", `{"job_id": "draining"}`)
	hasProgress := func() (bool, string) {
		j := api.live("draining")
		return j.State == "STARTED" && j.Count > 0 && j.RowsPerSecond != nil, fmt.Sprintf("%+v", j)
	}
	testwait.For(t, 60*time.Second, "the job's progress up to the gate", hasProgress)

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		worker.stop()
	}()
	testwait.For(t, 30*time.Second, "the worker to be leaving", func() (bool, string) {
		for _, m := range api.members() {
			if m.Name == "worker" {
				return m.State == "leaving", m.State
			}
		}
		return false, "gone"
	})
	testwait.For(t, 30*time.Second, "the job's progress while its node drains", hasProgress)

	release()
	if j := api.waitState("draining", "SUCCESS", "FAILURE"); j.State != "SUCCESS" || j.Count != trickleRows {
		t.Fatalf("the job: %+v, want SUCCESS with %d rows", j, trickleRows)
	}
	<-stopped
}

package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

type groupStatus struct {
	GroupID     string      `json:"group_id"`
	State       string      `json:"state"`
	Concurrency int         `json:"concurrency"`
	Jobs        []jobStatus `json:"jobs"`
}

func (s *testServer) group(id string) (groupStatus, int) {
	s.t.Helper()
	r := s.do("GET", "/groups/"+id, "")
	var g groupStatus
	if r.code == 200 {
		if err := json.Unmarshal(r.Data, &g); err != nil {
			s.t.Fatal(err)
		}
	}
	return g, r.code
}

func (s *testServer) waitGroup(id string, states ...string) groupStatus {
	s.t.Helper()
	var g groupStatus
	testwait.For(s.t, 60*time.Second, "group "+id+" to be "+strings.Join(states, " or "), func() (bool, string) {
		var code int
		g, code = s.group(id)
		if code != 200 {
			return false, fmt.Sprintf("GET /groups/%s answers %d", id, code)
		}
		return slices.Contains(states, g.State), "it is " + g.State
	})
	return g
}

func groupBody(t *testing.T, id string, concurrency int, task string, jobIDs ...string) string {
	type job struct {
		JobID string   `json:"job_id"`
		Task  string   `json:"task"`
		Args  []string `json:"args"`
	}
	body := map[string]any{"group_id": id, "concurrency": concurrency}
	var jobs []job
	for _, j := range jobIDs {
		jobs = append(jobs, job{JobID: j, Task: task, Args: []string{"U1"}})
	}
	body["jobs"] = jobs
	return jsonBody(t, body)
}

func TestGroupRunsAtMostItsConcurrency(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start("--worker-concurrency", "10")

	release := holdGate(t, dbs.src)
	ids := []string{"ga", "gb", "gc", "gd", "ge", "gf"}
	r := s.do("POST", "/groups", groupBody(t, "g1", 2, "gated", ids...))
	if r.code != 200 {
		t.Fatalf("POST /groups: %d %s", r.code, r.Message)
	}
	var rec struct {
		GroupID string `json:"group_id"`
		Jobs    []struct {
			JobID string `json:"job_id"`
			Task  string `json:"task"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(r.Data, &rec); err != nil || rec.GroupID != "g1" || len(rec.Jobs) != 6 || rec.Jobs[5].JobID != "gf" {
		t.Fatalf("group receipt: %s", r.Data)
	}

	// Ten slots are free, but the group lets two members run: two
	// sessions wait on the gate at the source, no more.
	waitSessions(t, 20*time.Second, "two members to run", dbs.src, "gate", 2)
	g, _ := s.group("g1")
	var started, waiting int
	for i, j := range g.Jobs {
		if j.JobID != ids[i] {
			t.Fatalf("group jobs out of submission order: %v", g.Jobs)
		}
		switch j.State {
		case "STARTED":
			started++
		case "PENDING":
			waiting++
		}
	}
	if g.State != "STARTED" || started != 2 || waiting != 4 || g.Concurrency != 2 {
		t.Fatalf("group while gated: state %s, %d started, %d pending", g.State, started, waiting)
	}
	// Not a wait but a watch: the sleep paces a few looks, over a tenth
	// of a second, that no third member starts meanwhile.
	for range 5 {
		if n := sessions(t, dbs.src, "gate"); n > 2 {
			t.Fatalf("%d members run at once, concurrency is 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	release()
	g = s.waitGroup("g1", "SUCCESS", "FAILURE")
	if g.State != "SUCCESS" {
		t.Fatalf("group: %+v", g)
	}
	for _, j := range g.Jobs {
		if j.State != "SUCCESS" || j.Count != 100 {
			t.Fatalf("member %+v", j)
		}
	}
}

func TestGroupStatesAndCancellation(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, withBroken(tasks(t, sqlexec.Postgres))).start()

	// One member fails: the group fails once all have finished.
	body := jsonBody(t, map[string]any{"group_id": "mixed", "jobs": []map[string]any{
		{"job_id": "m1", "task": "entries_of", "args": []string{"U1"}},
		{"job_id": "m2", "task": "broken"},
	}})
	if r := s.do("POST", "/groups", body); r.code != 200 {
		t.Fatalf("POST mixed group: %d %s", r.code, r.Message)
	}
	if g := s.waitGroup("mixed", "SUCCESS", "FAILURE"); g.State != "FAILURE" || g.Jobs[0].State != "SUCCESS" || g.Jobs[1].State != "FAILURE" {
		t.Fatalf("mixed group: %+v", g)
	}

	// Cancelling a group cancels every unfinished member, running or not.
	release := holdGate(t, dbs.src)
	if r := s.do("POST", "/groups", groupBody(t, "c1", 1, "gated", "c1a", "c1b", "c1c")); r.code != 200 {
		t.Fatalf("POST c1: %d %s", r.code, r.Message)
	}
	s.waitState("c1a", "STARTED")
	if r := s.do("DELETE", "/groups/c1", ""); r.code != 200 {
		t.Fatalf("cancel group: %d %s", r.code, r.Message)
	}
	g := s.waitGroup("c1", "CANCELLED")
	for _, j := range g.Jobs {
		if j.State != "CANCELLED" {
			t.Fatalf("member of a cancelled group: %+v", j)
		}
	}
	waitSessions(t, time.Second, "the cancelled member's query to leave the server", dbs.src, "gate", 0)
	release()

	if r := s.do("DELETE", "/groups/c1", ""); r.code != 409 || !strings.Contains(r.Message, `group "c1" has finished (CANCELLED)`) {
		t.Fatalf("cancel a finished group: %d %q", r.code, r.Message)
	}
	if r := s.do("DELETE", "/groups/mixed?purge=true", ""); r.code != 200 {
		t.Fatalf("purge group: %d %s", r.code, r.Message)
	}
	if _, code := s.group("mixed"); code != 404 {
		t.Fatalf("purged group: GET %d", code)
	}
	if _, code := s.job("m1"); code != 404 || tableExists(t, dbs.res, "results_m1") {
		t.Fatalf("purging a group left member m1 (GET %d) or its table", code)
	}
	if r := s.do("GET", "/jobs/m1/results", ""); r.code != 410 || !strings.HasPrefix(r.Message, `job "m1" was purged at `) {
		t.Fatalf("results of a purged group's member: %d %q", r.code, r.Message)
	}
}

func TestBadGroupsChangeNothing(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()
	release := holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "busy", "args": ["U1"]}`)
	s.waitState("busy", "STARTED")

	job := func(id, task string, args ...any) map[string]any {
		return map[string]any{"job_id": id, "task": task, "args": args}
	}
	for _, tc := range []struct {
		name string
		body any
		code int
		msg  string
	}{
		{"no jobs", map[string]any{"group_id": "b"}, 400, "jobs: must list at least one job"},
		{"zero concurrency", map[string]any{"concurrency": 0, "jobs": []any{job("x", "entries_of", "U1")}}, 400, "concurrency: must be between 1 and 1000000"},
		{"concurrency beyond 32 bits", map[string]any{"group_id": "b3", "concurrency": 1 << 31, "jobs": []any{job("x", "entries_of", "U1")}}, 400, "concurrency: must be between 1 and 1000000"},
		{"duplicate IDs", map[string]any{"jobs": []any{job("x", "entries_of", "U1"), job("x", "entries_of", "U2")}}, 400, `jobs[1].job_id: "x" is also jobs[0]'s ID`},
		{"unknown task", map[string]any{"jobs": []any{job("x", "entries_of", "U1"), job("y", "nope")}}, 400, `jobs[1].task: no task "nope"`},
		{"missing task", map[string]any{"jobs": []any{map[string]any{"job_id": "x"}}}, 400, "jobs[0].task: required"},
		{"wrong args", map[string]any{"jobs": []any{job("x", "entries_of")}}, 400, `jobs[0].args: task "entries_of" takes 1 arguments, got 0`},
		{"bad group ID", map[string]any{"group_id": "a b", "jobs": []any{job("x", "entries_of", "U1")}}, 400, "group_id: must be 1 to"},
		{"bad ETA", map[string]any{"jobs": []any{map[string]any{"task": "entries_of", "args": []string{"U1"}, "eta": "soon"}}}, 400, `jobs[0].eta: "soon" is neither`},
		{"unknown field", map[string]any{"jobs": []any{job("x", "entries_of", "U1")}, "priority": 1}, 400, `unknown field "priority"`},
		{"member ID busy", map[string]any{"group_id": "b2", "jobs": []any{job("x", "entries_of", "U1"), job("busy", "entries_of", "U1")}}, 409, `job "busy" is STARTED`},
	} {
		r := s.do("POST", "/groups", jsonBody(t, tc.body))
		if r.code != tc.code || !strings.HasPrefix(r.Message, tc.msg) {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, r.code, r.Message, tc.code, tc.msg)
		}
	}
	if _, code := s.job("x"); code != 404 {
		t.Errorf("a refused group left job x (GET %d)", code)
	}
	if _, code := s.group("b3"); code != 404 {
		t.Errorf("a group of too great a concurrency was recorded (GET %d)", code)
	}
	if _, code := s.group("b2"); code != 404 {
		t.Errorf("a refused group left its record (GET %d)", code)
	}
	if _, code := s.group("nope"); code != 404 {
		t.Errorf("unknown group: GET %d", code)
	}
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM sqljobber_jobs"); n != 1 {
		t.Errorf("ledger has %d jobs, want only busy", n)
	}
	release()

	// The same group ID runs again once its jobs have finished.
	for range 2 {
		if r := s.do("POST", "/groups", groupBody(t, "again", 2, "entries_of", "again1", "again2")); r.code != 200 {
			t.Fatalf("POST again: %d %s", r.code, r.Message)
		}
		s.waitGroup("again", "SUCCESS")
	}
}

// TestCancelOfALargeGroupIsWhole: a group of thousands of jobs, running
// while it is cancelled, is cancelled by one DELETE: when it answers, no
// member waits or runs, and none starts afterwards (its waiters learn at
// once). Before, the cancel went member by member, ran out of time, and
// left members to be released and run after the group read CANCELLED.
func TestCancelOfALargeGroupIsWhole(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start("--worker-concurrency", "20")
	const n = 9000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("big-%04d", i)
	}
	if r := s.do("POST", "/groups", groupBody(t, "big", 20, "entries_of", ids...)); r.code != 200 {
		t.Fatalf("POST group: %d %s", r.code, r.Message)
	}
	// Let it get going: some members finished, some running.
	testwait.For(t, 60*time.Second, "members of the group to finish", func() (bool, string) {
		g, _ := s.group("big")
		done := 0
		for _, j := range g.Jobs {
			if j.State == "SUCCESS" {
				done++
			}
		}
		return done >= 40, fmt.Sprintf("%d finished", done)
	})
	waited := make(chan jobStatus, 1)
	go func() {
		r := s.do("GET", "/jobs/big-8999?wait=30s", "")
		var j jobStatus
		_ = json.Unmarshal(r.Data, &j)
		waited <- j
	}()
	if r := s.do("DELETE", "/groups/big", ""); r.code != 200 {
		t.Fatalf("DELETE group: %d %s", r.code, r.Message)
	}
	final := func() map[string]int {
		g, code := s.group("big")
		if code != 200 || g.State != "CANCELLED" || len(g.Jobs) != n {
			t.Fatalf("group after the cancel: %d, %s, %d jobs", code, g.State, len(g.Jobs))
		}
		by := map[string]int{}
		for _, j := range g.Jobs {
			by[j.State]++
		}
		return by
	}
	at := final()
	if at["PENDING"]+at["STARTED"]+at["RETRY"] != 0 || at["CANCELLED"] == 0 {
		t.Fatalf("members when the cancel answered: %v", at)
	}
	select {
	case j := <-waited:
		if j.State != "CANCELLED" {
			t.Errorf("a waiter on a member learnt %q", j.State)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("a waiter on a cancelled member was not answered within 20s of the cancel")
	}
	// No member was released or run since: the same states once a job
	// submitted after the cancel, to the same queue (which takes its
	// jobs first in, first out), has run.
	s.post("entries_of", `{"job_id": "after", "args": ["U1"]}`)
	s.waitState("after", "SUCCESS")
	if later := final(); !maps.Equal(later, at) {
		t.Fatalf("members changed after the cancel: %v, then %v", at, later)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// longWaitConfig allows a ?wait= longer than any test: a wait that is not answered
// when its job finishes fails the test by its deadline, not by a timing
// assertion.
const longWaitConfig = "\n[app]\nmax_wait = \"10m\"\n"

// getAsync sends GET path in the background; the channel gets the answer.
func (s *testServer) getAsync(path string) <-chan response {
	out := make(chan response, 1)
	go func() {
		var r response
		res, err := nethttp.Get(s.base + path)
		if err != nil {
			r.Message = err.Error()
			out <- r
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if err := json.Unmarshal(b, &r); err != nil {
			r.Message = fmt.Sprintf("not the JSON envelope: %q", b)
		}
		r.code = res.StatusCode
		out <- r
	}()
	return out
}

// waiters is the sqljobber_waiters gauge of the given nodes, summed.
func waiters(t *testing.T, nodes ...*testServer) float64 {
	var n float64
	for _, s := range nodes {
		n += value(scrape(t, s.base), "sqljobber_waiters")
	}
	return n
}

// waitWaiters waits until want requests wait on the given nodes, summed.
func waitWaiters(t *testing.T, within time.Duration, what string, want float64, nodes ...*testServer) {
	t.Helper()
	testwait.For(t, within, what, func() (bool, string) {
		n := waiters(t, nodes...)
		return n == want, fmt.Sprintf("sqljobber_waiters is %v, want %v", n, want)
	})
}

// answer receives a wait's answer, failing the test if it has none by the
// deadline.
func answer(t *testing.T, what string, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
	panic("unreachable")
}

// notYet fails the test if a wait has answered.
func notYet(t *testing.T, what string, ch <-chan response) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s answered before its job finished: %d %s %s", what, r.code, r.Message, r.Data)
	default:
	}
}

func TestWaitAnswersWhenTheJobFinishes(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml+longWaitConfig, tasks(t, sqlexec.Postgres)).start()

	// A finished job, an unknown one and a bad wait answer at once.
	s.post("entries_of", `{"job_id": "done", "args": ["U1"]}`)
	s.waitState("done", "SUCCESS")
	if r := s.do("GET", "/jobs/done?wait=10m", ""); r.code != 200 || !jsonHas(r.Data, "state", "SUCCESS") {
		t.Fatalf("wait on a finished job: %d %s %s", r.code, r.Message, r.Data)
	}
	if r := s.do("GET", "/jobs/nosuch?wait=10m", ""); r.code != 404 {
		t.Fatalf("wait on an unknown job: %d %s", r.code, r.Message)
	}

	release := holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "w1", "args": ["U1"]}`)
	if r := s.do("POST", "/groups", groupBody(t, "wg", 1, "gated", "wg1", "wg2")); r.code != 200 {
		t.Fatalf("POST /groups: %d %s", r.code, r.Message)
	}
	s.waitState("w1", "STARTED")
	job1, job2 := s.getAsync("/jobs/w1?wait=10m"), s.getAsync("/jobs/w1?wait=600")
	group := s.getAsync("/groups/wg?wait=10m")
	waitWaiters(t, 20*time.Second, "three requests to wait at the grains", 3, s)

	// A short wait ends with the job still running.
	if r := s.do("GET", "/jobs/w1?wait=50ms", ""); r.code != 200 || !jsonHas(r.Data, "state", "STARTED") {
		t.Fatalf("short wait: %d %s %s", r.code, r.Message, r.Data)
	}
	notYet(t, "wait on w1", job1)
	notYet(t, "wait on group wg", group)

	release()
	for _, ch := range []<-chan response{job1, job2} {
		r := answer(t, "wait on w1", ch)
		var j jobStatus
		if err := json.Unmarshal(r.Data, &j); r.code != 200 || err != nil || j.State != "SUCCESS" || j.Count != 100 {
			t.Fatalf("wait on w1: %d %s %s", r.code, r.Message, r.Data)
		}
	}
	r := answer(t, "wait on group wg", group)
	var g groupStatus
	if err := json.Unmarshal(r.Data, &g); r.code != 200 || err != nil || g.State != "SUCCESS" || len(g.Jobs) != 2 ||
		g.Jobs[0].State != "SUCCESS" || g.Jobs[1].State != "SUCCESS" {
		t.Fatalf("wait on group wg: %d %s %s", r.code, r.Message, r.Data)
	}
	waitWaiters(t, 20*time.Second, "no request to wait", 0, s)

	// A cancellation ends the wait too.
	holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "w2", "args": ["U1"]}`)
	s.waitState("w2", "STARTED")
	job := s.getAsync("/jobs/w2?wait=10m")
	waitWaiters(t, 20*time.Second, "a request to wait", 1, s)
	if r := s.do("DELETE", "/jobs/w2", ""); r.code != 200 {
		t.Fatalf("cancel: %d %s", r.code, r.Message)
	}
	if r := answer(t, "wait on w2", job); r.code != 200 || !jsonHas(r.Data, "state", "CANCELLED") {
		t.Fatalf("wait on a cancelled job: %d %s %s", r.code, r.Message, r.Data)
	}
}

// jsonHas reports whether the JSON object data has key with the string
// value want.
func jsonHas(data json.RawMessage, key, want string) bool {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return false
	}
	return m[key] == want
}

func TestClusterWaitFromAnyNode(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	env := newEnv(t, dbs.toml+longWaitConfig+"\n[cluster]\nremoval_grace = \"500ms\"\n", tasks(t, sqlexec.Postgres))
	a := env.startMember("A", nil, "--worker-concurrency", "2")
	b := env.startMember("B", a, "--worker-concurrency", "2")
	c := env.startMember("C", a, "--worker-concurrency", "2")
	waitMembers(t, 3, a, b, c)

	release := holdGate(t, dbs.src)
	ids := []string{"x1", "x2", "x3", "x4", "x5", "x6"}
	for i, id := range ids {
		[]*testServer{a, b, c}[i%3].post("gated", fmt.Sprintf(`{"job_id": %q, "args": ["U2"]}`, id))
	}
	// Every job is waited for through every node: most waits cross nodes
	// to the job's grain, and the job runs on any node.
	var waits []<-chan response
	for _, id := range ids {
		for _, s := range []*testServer{a, b, c} {
			waits = append(waits, s.getAsync("/jobs/"+id+"?wait=10m"))
		}
	}
	waitWaiters(t, 30*time.Second, "every request to wait at a grain", float64(len(waits)), a, b, c)
	for _, w := range waits {
		notYet(t, "a wait", w)
	}
	release()
	for i, w := range waits {
		r := answer(t, "wait on "+ids[i/3], w)
		var j jobStatus
		if err := json.Unmarshal(r.Data, &j); r.code != 200 || err != nil || j.State != "SUCCESS" || j.Count != 150 || j.JobID != ids[i/3] {
			t.Fatalf("wait on %s: %d %s %s", ids[i/3], r.code, r.Message, r.Data)
		}
	}
}

// A wait's answer is the job as a read of it returns it, byte for byte,
// however the wait learnt it (the grain builds a SUCCESS from the record
// it read while the job ran and what the run says it wrote; it passes on
// the record it read for any other): on each engine's ledger, for a job
// started as it was admitted, one that finished while waited on, and one
// that failed.
func TestWaitAnswerIsTheJobAsRead(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			dbs := newDatabases(t, d, d)
			seedEntries(t, dbs.src)
			files := tasks(t, d)
			// broken fails once the gate lets it run: its error is the
			// query's, at execution.
			broken := fmt.Sprintf("SELECT CAST(e.user_id AS INTEGER) AS n FROM entries e, (SELECT pg_advisory_xact_lock_shared(%d)) AS gate WHERE e.user_id = $1", gateKey(t))
			if d == sqlexec.MySQL {
				broken = "SELECT e.id FROM entries e LEFT JOIN gate g ON g.x = e.id WHERE e.user_id = ? AND e.id = (SELECT 1 UNION SELECT 2)"
			}
			files["broken.sql"] = "-- name: broken\n" + broken + ";\n"
			s := newEnv(t, dbs.toml+"\n[app]\nmax_wait = \"10m\"\nledger = \"res\"\n", files).start()

			same := func(what, id string, waited response) {
				t.Helper()
				read := s.do("GET", "/jobs/"+id, "")
				if waited.code != 200 || read.code != 200 || string(waited.Data) != string(read.Data) {
					t.Fatalf("%s: the wait answered %d %s\n%s\nwhere a read answers %d\n%s", what, waited.code, waited.Message, waited.Data, read.code, read.Data)
				}
			}

			// Started as it was admitted, waited on at once.
			s.post("entries_of", `{"job_id": "fast", "args": ["U1"], "ttl": 3600}`)
			fast := s.do("GET", "/jobs/fast?wait=10m", "")
			if !jsonHas(fast.Data, "state", "SUCCESS") {
				t.Fatalf("wait on fast: %d %s %s", fast.code, fast.Message, fast.Data)
			}
			same("fast", "fast", fast)
			// Waited on once finished.
			same("fast, finished", "fast", s.do("GET", "/jobs/fast?wait=10m", ""))

			// Read STARTED by the grain, then finished.
			for _, c := range []struct{ id, task, state string }{{"held", "gated", "SUCCESS"}, {"failed", "broken", "FAILURE"}} {
				release := holdGate(t, dbs.src)
				s.post(c.task, fmt.Sprintf(`{"job_id": %q, "args": ["U1"], "ttl": 60}`, c.id))
				s.waitState(c.id, "STARTED")
				ch := s.getAsync("/jobs/" + c.id + "?wait=10m")
				waitWaiters(t, 20*time.Second, "a request to wait on "+c.id, 1, s)
				release()
				r := answer(t, "wait on "+c.id, ch)
				if !jsonHas(r.Data, "state", c.state) {
					t.Fatalf("wait on %s: %d %s %s", c.id, r.code, r.Message, r.Data)
				}
				same(c.id, c.id, r)
			}
		})
	}
}

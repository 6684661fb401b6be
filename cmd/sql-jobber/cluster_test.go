package main

// Cluster tests run several nodes in this one process. protoactor-go and
// grpc race inside themselves when they do, so these tests (named
// TestCluster*) run without -race; see the Makefile.

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

type member struct {
	Name   string         `json:"name"`
	ID     string         `json:"id"`
	Queues map[string]int `json:"queues"`
	Self   bool           `json:"self"`
	State  string         `json:"state"`
	API    string         `json:"api"`
}

func (s *testServer) members() []member {
	s.t.Helper()
	r := s.do("GET", "/cluster/members", "")
	var out []member
	if r.code != 200 {
		s.t.Fatalf("GET /cluster/members: %d %s", r.code, r.Message)
	}
	if err := json.Unmarshal(r.Data, &out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// clusterEnv is a test environment whose config tightens the cluster's
// removal grace.
func clusterEnv(t *testing.T, dbs *databases, files map[string]string) *testEnv {
	return newEnv(t, dbs.toml+"\n[cluster]\nremoval_grace = \"500ms\"\n", files)
}

// startMember starts a node named name that joins the cluster of first
// (nil: it starts one).
func (e *testEnv) startMember(name string, first *testServer, flags ...string) *testServer {
	e.t.Helper()
	args := []string{"--cluster-bind", "127.0.0.1:0", "--worker-name", name}
	if first != nil {
		args = append(args, "--join", first.app.node.GossipAddress())
	}
	return e.start(append(args, flags...)...)
}

// waitMembers waits until every node sees n alive members.
func waitMembers(t *testing.T, n int, nodes ...*testServer) {
	t.Helper()
	testwait.For(t, 30*time.Second, fmt.Sprintf("every node to see %d alive members", n), func() (bool, string) {
		ok := true
		var seen []string
		for i, s := range nodes {
			alive := 0
			for _, m := range s.members() {
				if m.State == "alive" {
					alive++
				}
			}
			ok = ok && alive == n
			seen = append(seen, fmt.Sprintf("node %d sees %d", i, alive))
		}
		return ok, strings.Join(seen, ", ")
	})
}

// nodesOf counts, per node, the jobs in state (from the ledger).
func nodesOf(t *testing.T, dbs *databases, state string) map[string]int {
	t.Helper()
	rows, err := dbs.res.Postgres().Query(context.Background(), "SELECT node, COUNT(*) FROM sqljobber_jobs WHERE state = $1 GROUP BY node", state)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var node string
		var n int
		if err := rows.Scan(&node, &n); err != nil {
			t.Fatal(err)
		}
		out[node] = n
	}
	return out
}

func TestClusterSpreadsJobsAndAnswersAnywhere(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	env := clusterEnv(t, dbs, tasks(t, sqlexec.Postgres))
	a := env.startMember("A", nil, "--worker-concurrency", "2")
	b := env.startMember("B", a, "--worker-concurrency", "2")
	c := env.startMember("C", a, "--worker-concurrency", "2")
	waitMembers(t, 3, a, b, c)
	for _, m := range c.members() {
		if m.Queues["default"] != 2 || m.API == "" {
			t.Fatalf("member %+v", m)
		}
	}

	release := holdGate(t, dbs.src)
	var ids []string
	post := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("spread%02d", i)
			ids = append(ids, id)
			// Submitted through every node in turn.
			[]*testServer{a, b, c}[i%3].post("gated", fmt.Sprintf(`{"job_id": %q, "args": ["U1"]}`, id))
		}
	}
	post(0, 6)
	// Six slots in the cluster, two on each node: all taken.
	waitStarted(t, 20*time.Second, "every node to run two jobs", dbs, func(n map[string]int) bool {
		return n["A"] == 2 && n["B"] == 2 && n["C"] == 2
	})
	waitSessions(t, 20*time.Second, "six gated queries to wait at the source", dbs.src, "gate", 6)

	// A job running on one node, cancelled through another: its query
	// leaves the server at once, not at the next lease renewal.
	victim := ids[0]
	var node string
	if err := dbs.res.Postgres().QueryRow(context.Background(), "SELECT node FROM sqljobber_jobs WHERE job_id = $1", victim).Scan(&node); err != nil {
		t.Fatal(err)
	}
	via := map[string]*testServer{"A": b, "B": c, "C": a}[node]
	if r := via.do("DELETE", "/jobs/"+victim, ""); r.code != 200 {
		t.Fatalf("cancel from another node: %d %s", r.code, r.Message)
	}
	waitSessions(t, 2*time.Second, "the cancelled run's query to leave the server", dbs.src, "gate", 5)

	// A backlog: one job takes the freed slot, five wait, listed from
	// any node.
	post(6, 12)
	waitSessions(t, 20*time.Second, "the freed slot to be taken", dbs.src, "gate", 6)
	if q := c.queue("default"); len(q) != 5 {
		t.Fatalf("queue listing from C: %d jobs pending, want 5", len(q))
	}
	release()
	for i, id := range ids {
		want := "SUCCESS"
		if id == victim {
			want = "CANCELLED"
		}
		// Status from any node.
		if j := []*testServer{c, a, b}[i%3].waitState(id, "SUCCESS", "FAILURE", "CANCELLED"); j.State != want {
			t.Fatalf("job %s: %+v", id, j)
		}
	}
	if n := nodesOf(t, dbs, "SUCCESS"); len(n) != 3 {
		t.Fatalf("jobs ran on %v, want all three nodes", n)
	}
}

func TestClusterJoinCancelsNoRunningJob(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	env := clusterEnv(t, dbs, tasks(t, sqlexec.Postgres))
	a := env.startMember("A", nil, "--worker-concurrency", "10")
	b := env.startMember("B", a, "--worker-concurrency", "10")
	c := env.startMember("C", a, "--worker-concurrency", "10")
	waitMembers(t, 3, a, b, c)

	release := holdGate(t, dbs.src)
	var ids []string
	for i := range 50 {
		id := fmt.Sprintf("join%02d", i)
		ids = append(ids, id)
		[]*testServer{a, b, c}[i%3].post("gated", fmt.Sprintf(`{"job_id": %q, "args": ["U1"]}`, id))
	}
	waitStarted(t, 30*time.Second, "30 jobs to run", dbs, func(n map[string]int) bool {
		return n["A"]+n["B"]+n["C"] == 30
	})
	// A fourth node joins while they run; grains move to it.
	d := env.startMember("D", a, "--worker-concurrency", "10")
	waitMembers(t, 4, a, b, c, d)
	waitStarted(t, 30*time.Second, "the new node to take the rest", dbs, func(n map[string]int) bool { return n["D"] == 10 })
	// Status and submissions go through the moved grains.
	d.post("entries_of", `{"job_id": "after-join", "args": ["U2"]}`)
	release()
	for _, id := range append(ids, "after-join") {
		j := d.waitState(id, "SUCCESS", "FAILURE", "CANCELLED")
		if j.State != "SUCCESS" || j.Attempt != 1 {
			t.Fatalf("job %s after the join: %+v", id, j)
		}
	}
}

func TestClusterStoppedNodesJobsFinishElsewhere(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	// The stopping node cannot finish its gated jobs: it hands them back
	// when its drain times out.
	env := newEnv(t, dbs.toml+"\n[app]\ndrain_timeout = \"200ms\"\n\n[cluster]\nremoval_grace = \"500ms\"\n", tasks(t, sqlexec.Postgres))
	a := env.startMember("A", nil, "--worker-concurrency", "2")
	b := env.startMember("B", a, "--worker-concurrency", "2")
	c := env.startMember("C", a, "--worker-concurrency", "2")
	waitMembers(t, 3, a, b, c)
	release := holdGate(t, dbs.src)
	for i := range 6 {
		a.post("gated", fmt.Sprintf(`{"job_id": "stop%d", "args": ["U1"]}`, i))
	}
	waitStarted(t, 30*time.Second, "B to run two jobs", dbs, func(n map[string]int) bool { return n["B"] == 2 })
	b.stop()
	waitMembers(t, 2, a, c)
	release()
	for i := range 6 {
		id := fmt.Sprintf("stop%d", i)
		if j := a.waitState(id, "SUCCESS", "FAILURE"); j.State != "SUCCESS" {
			t.Fatalf("job %s: %+v", id, j)
		}
	}
	if n := nodesOf(t, dbs, "SUCCESS"); n["B"] != 0 || n["A"]+n["C"] != 6 {
		t.Fatalf("jobs finished on %v", n)
	}
}

func TestClusterQueuesRunOnlyWhereServed(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	env := clusterEnv(t, dbs, tasks(t, sqlexec.Postgres))
	fast := env.startMember("fast", nil, "--queue", "fast", "--worker-concurrency", "5")
	env.startMember("slow", fast, "--queue", "slow", "--worker-concurrency", "1", "--worker-only")
	waitMembers(t, 2, fast)
	want := map[string]string{}
	for i := range 10 {
		q := []string{"fast", "slow"}[i%2]
		id := fmt.Sprintf("%s%d", q, i)
		fast.post("entries_of", fmt.Sprintf(`{"job_id": %q, "args": ["U1"], "queue": %q}`, id, q))
		want[id] = q
	}
	fast.post("entries_of", `{"job_id": "orphan", "args": ["U1"], "queue": "nobody"}`)
	for id, q := range want {
		fast.waitState(id, "SUCCESS")
		var node string
		if err := dbs.res.Postgres().QueryRow(context.Background(), "SELECT node FROM sqljobber_jobs WHERE job_id = $1", id).Scan(&node); err != nil {
			t.Fatal(err)
		}
		if node != q {
			t.Fatalf("job %s of queue %s ran on %s", id, q, node)
		}
	}
	if j, _ := fast.job("orphan"); j.State != "PENDING" {
		t.Fatalf("job of a queue nobody works: %+v", j)
	}
	if q := fast.queue("nobody"); len(q) != 1 || q[0].JobID != "orphan" {
		t.Fatalf("listing of queue nobody: %+v", q)
	}
}

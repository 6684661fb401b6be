package actors_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
)

// job reads job id, failing the test if it cannot.
func (e *env) job(id string) *sqljobber.Job {
	e.t.Helper()
	j, err := e.engine.Job(context.Background(), id)
	if err != nil {
		e.t.Fatalf("job %s: %v", id, err)
	}
	return j
}

// cachedReq is a request for a job of task cached (-- cache: 1h) of
// argument 2.
func cachedReq(id string) actors.SubmitRequest {
	return actors.SubmitRequest{JobID: id, Task: "cached", Args: []any{json.Number("2")}}
}

func (e *env) mustSubmit(ctx context.Context, req actors.SubmitRequest) {
	e.t.Helper()
	if _, err := e.engine.Submit(ctx, req); err != nil {
		e.t.Fatalf("submit %s: %v", req.JobID, err)
	}
}

// TestIdenticalJobsJoinTheOneUnfinished: jobs that may reuse results,
// submitted while an identical job runs, wait on it (PENDING, joined
// naming it) without running, and are SUCCESS with its results when it
// succeeds, their waiters told; cancelling one leaves the leader running.
// A fresh job, another owner's, and a group's member run on their own.
func TestIdenticalJobsJoinTheOneUnfinished(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 4}})
	ctx := context.Background()
	bob := sqljobber.WithCaller(ctx, sqljobber.Caller{Name: "bob"})
	e.mustSubmit(ctx, cachedReq("lead"))
	e.writing("lead")
	for _, id := range []string{"j1", "j2", "j3"} {
		e.mustSubmit(ctx, cachedReq(id))
		if j := e.job(id); j.State != sqljobber.StatePending || j.Joined != "lead" {
			t.Fatalf("%s: %+v; want it PENDING, joined to lead", id, j)
		}
	}
	fresh := cachedReq("fresh")
	fresh.Fresh = true
	e.mustSubmit(ctx, fresh)
	e.mustSubmit(bob, cachedReq("bobs"))
	one := 1
	if _, err := e.engine.SubmitGroup(ctx, actors.GroupRequest{GroupID: "g", Concurrency: &one,
		Jobs: []actors.SubmitRequest{cachedReq("member")}}); err != nil {
		t.Fatal(err)
	}
	e.writing("fresh", "bobs", "member")
	for _, id := range []string{"fresh", "member"} {
		if j := e.job(id); j.Joined != "" {
			t.Fatalf("%s joined %s", id, j.Joined)
		}
	}

	if err := e.engine.Cancel(ctx, "j3", false); err != nil {
		t.Fatal(err)
	}
	if j := e.job("lead"); j.State != sqljobber.StateStarted {
		t.Fatalf("the leader after a joiner's cancel: %+v", j)
	}
	waited := make(chan error, 1)
	go func() { _, err := e.engine.WaitJob(ctx, "j1", 30*time.Second); waited <- err }()
	e.res.open()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a wait on a joiner did not end when its leader succeeded")
	}
	if j := e.job("j1"); j.State != sqljobber.StateSuccess {
		t.Fatalf("j1 after its wait: %+v", j)
	}
	e.states([]sqljobber.State{sqljobber.StateSuccess, sqljobber.StateSuccess, sqljobber.StateSuccess, sqljobber.StateCancelled},
		"lead", "j1", "j2", "j3")
	lead := e.job("lead")
	for _, id := range []string{"j1", "j2"} {
		j := e.job(id)
		if j.ReusedFrom != "lead" || j.Joined != "" || j.Count != lead.Count || j.ResultsTable != lead.ResultsTable || e.ran(id) {
			t.Fatalf("%s: %+v; want the leader's results, no run", id, j)
		}
		if n, err := e.count(ctx, id); err != nil || n != 2 {
			t.Fatalf("%s's results: %d, %v", id, n, err)
		}
	}
}

// TestAFlightRunsOnWhenItsLeaderIsCancelled: cancelling the job others
// joined runs the oldest of them in its place, and the others get its
// results.
func TestAFlightRunsOnWhenItsLeaderIsCancelled(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 2}})
	ctx := context.Background()
	e.mustSubmit(ctx, cachedReq("lead"))
	e.writing("lead")
	e.mustSubmit(ctx, cachedReq("a"))
	e.mustSubmit(ctx, cachedReq("b"))
	if err := e.engine.Cancel(ctx, "lead", false); err != nil {
		t.Fatal(err)
	}
	e.writing("a")
	if j := e.job("b"); j.Joined != "a" || j.State != sqljobber.StatePending {
		t.Fatalf("b: %+v; want it waiting on a", j)
	}
	e.res.open()
	e.states([]sqljobber.State{sqljobber.StateCancelled, sqljobber.StateSuccess, sqljobber.StateSuccess}, "lead", "a", "b")
	if j := e.job("b"); j.ReusedFrom != "a" || e.ran("b") {
		t.Fatalf("b: %+v; want a's results", j)
	}
}

// TestClusterAFlightOutlivesItsLeadersNode: a job submitted on one node
// joins an identical job running on another; that node dies, its run is
// taken back and runs again on the node left, and the job that joined it
// is answered by its results.
func TestClusterAFlightOutlivesItsLeadersNode(t *testing.T) {
	s := newStores(t)
	// "dead" dies only as far as the cluster can tell: its engine goes on.
	// One slot, held by the lost run, and leases renewed (and found lost)
	// only every 20 minutes keep it from claiming the job it lost again,
	// which it would never finish (its writes wait), before the other
	// node does.
	dead, err := s.start(t, actors.Config{NodeName: "dead", Lease: time.Hour, NodeLease: time.Hour, Queues: map[string]int{"default": 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dead.mustSubmit(ctx, cachedReq("lead"))
	dead.writing("lead")
	other, err := s.start(t, actors.Config{NodeName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	other.mustSubmit(ctx, cachedReq("joiner"))
	if j := other.job("joiner"); j.Joined != "lead" {
		t.Fatalf("the job on the other node: %+v; want it joined to lead", j)
	}
	other.res.open()
	dead.node.Stop()
	other.engine.MemberDown(sqljobber.Member{Name: "dead", ID: dead.node.ID()})
	other.states([]sqljobber.State{sqljobber.StateSuccess, sqljobber.StateSuccess}, "lead", "joiner")
	lead, j := other.job("lead"), other.job("joiner")
	if lead.Node != "other" || lead.LostRuns != 1 || j.ReusedFrom != "lead" || other.ran("joiner") {
		t.Fatalf("the leader %+v; the joiner %+v", lead, j)
	}
	if n, err := other.count(ctx, "joiner"); err != nil || n != 2 {
		t.Fatalf("the joiner's results: %d, %v", n, err)
	}
	dead.res.open()
}

// TestAJobJoinsNoJobOfAnotherQueue: an identical job waiting in another
// queue (here one no node works) is not joined: the job runs in its own
// queue's slots rather than wait for another queue's. The same queue's
// identical jobs join it.
func TestAJobJoinsNoJobOfAnotherQueue(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 2}})
	ctx := context.Background()
	e.res.open()
	for _, id := range []string{"stuck", "other"} {
		req := cachedReq(id)
		req.Queue = "nobody"
		e.mustSubmit(ctx, req)
	}
	if j := e.job("other"); j.Joined != "stuck" {
		t.Fatalf("other: %+v; want it joined to stuck", j)
	}
	e.mustSubmit(ctx, cachedReq("runs"))
	if j := e.job("runs"); j.Joined != "" {
		t.Fatalf("runs joined %s, a job of a queue no node works", j.Joined)
	}
	e.states([]sqljobber.State{sqljobber.StatePending, sqljobber.StatePending, sqljobber.StateSuccess}, "stuck", "other", "runs")
}

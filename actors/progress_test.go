package actors_test

import (
	"context"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
)

// TestProgressOfARunningJob: a job running here reads with its progress,
// from the run; a finished one with its final count and none.
func TestProgressOfARunningJob(t *testing.T) {
	e := startEngine(t, actors.Config{})
	ctx := context.Background()
	e.submit("j")
	e.writing("j")
	e.eventually("the running job's progress", 30*time.Second, func() (bool, string) {
		j, err := e.engine.Job(ctx, "j")
		if err != nil {
			return false, err.Error()
		}
		return j.State == sqljobber.StateStarted && j.Progress != nil && j.Progress.Elapsed > 0, string(j.State)
	})
	page, err := e.engine.ListJobs(ctx, sqljobber.JobFilter{})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].Progress == nil {
		t.Fatalf("listing of the running job: %+v, %v", page, err)
	}
	e.res.open()
	e.states([]sqljobber.State{sqljobber.StateSuccess}, "j")
	j, err := e.engine.Job(ctx, "j")
	if err != nil || j.Progress != nil || j.Count != 1 {
		t.Fatalf("finished job: %+v, %v", j, err)
	}
}

// TestClusterProgressOfAJobOnANodeOutOfReach: a job that runs on a node this one
// cannot reach (not a member of its cluster) reads as the ledger has it,
// without progress, at once and without error.
func TestClusterProgressOfAJobOnANodeOutOfReach(t *testing.T) {
	s := newStores(t)
	runner, err := s.start(t, actors.Config{NodeName: "runner"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := s.start(t, actors.Config{NodeName: "reader", Queues: map[string]int{"elsewhere": 1}})
	if err != nil {
		t.Fatal(err)
	}
	runner.submit("j")
	runner.writing("j")
	began := time.Now()
	j, err := reader.engine.Job(context.Background(), "j")
	if err != nil || j.State != sqljobber.StateStarted || j.Progress != nil || j.Node != "runner" {
		t.Fatalf("job running out of reach: %+v, %v", j, err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("the read took %v", took)
	}
}

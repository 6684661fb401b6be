package actors_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
)

// waitersGauge reads the sqljobber_waiters gauge of reg.
func waitersGauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "sqljobber_waiters" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no sqljobber_waiters gauge")
	return 0
}

// sameJob fails the test unless got, a wait's answer, is the job as Job
// reads it, to the microsecond.
func sameJob(t *testing.T, e *env, what string, got *sqljobber.Job) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: the wait answered without the finished job", what)
	}
	read, err := e.engine.Job(context.Background(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(read)
	if string(a) != string(b) {
		t.Fatalf("%s: the wait answered\n%s\nwhere the job reads\n%s", what, a, b)
	}
}

// A wait answered when its job finishes carries the finished job, as a
// read of it would return it, so that the caller need not read it; so
// does a wait on a job that has finished already.
func TestWaitAnswersWithTheFinishedJob(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 1}, Metrics: reg})
	ctx := context.Background()
	ttl := time.Hour
	if _, err := e.engine.Submit(ctx, actors.SubmitRequest{JobID: "w1", Task: "count", TTL: &ttl}); err != nil {
		t.Fatal(err)
	}
	e.eventually("w1's write to begin", 30*time.Second, func() (bool, string) {
		running, _, _ := e.res.state()
		return running == 1, "not yet"
	})
	type answer struct {
		j   *sqljobber.Job
		err error
	}
	waited := make(chan answer, 1)
	go func() {
		j, err := e.engine.WaitJob(ctx, "w1", time.Minute)
		waited <- answer{j, err}
	}()
	e.eventually("a waiter on w1", 30*time.Second, func() (bool, string) {
		return waitersGauge(t, reg) == 1, "none yet"
	})
	e.res.open()
	var a answer
	select {
	case a = <-waited:
	case <-time.After(time.Minute):
		t.Fatal("the wait on w1 was not answered")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.j == nil || a.j.State != sqljobber.StateSuccess || a.j.Count != 1 || a.j.ExpiresAt.IsZero() {
		t.Fatalf("the wait on w1 answered %+v", a.j)
	}
	sameJob(t, e, "w1, waited on while it ran", a.j)

	j, err := e.engine.WaitJob(ctx, "w1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sameJob(t, e, "w1, waited on once finished", j)

	// No wait, no job: the caller reads it.
	if j, err := e.engine.WaitJob(ctx, "w1", 0); err != nil || j != nil {
		t.Fatalf("a wait of 0: %+v, %v", j, err)
	}
}

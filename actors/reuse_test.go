package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/resultsink"
)

// count reads the one value of job id's results (a COUNT).
func (e *env) count(ctx context.Context, id string) (int64, error) {
	p, err := e.engine.Results(ctx, id, resultsink.Query{})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	if !p.Rows.Next() {
		return 0, errors.New("no row")
	}
	n, _ := p.Rows.Values()[0].(int64)
	return n, nil
}

// run submits req as it is and waits for it to finish.
func (e *env) run(ctx context.Context, req actors.SubmitRequest) *sqljobber.Job {
	e.t.Helper()
	if _, err := e.engine.Submit(ctx, req); err != nil {
		e.t.Fatalf("submit %s: %v", req.JobID, err)
	}
	var j *sqljobber.Job
	e.eventually(req.JobID+" finished", 30*time.Second, func() (bool, string) {
		var err error
		j, err = e.engine.Job(ctx, req.JobID)
		if err != nil {
			return false, err.Error()
		}
		return j.State.Final(), string(j.State)
	})
	return j
}

// ran reports whether a run of job id wrote results.
func (e *env) ran(id string) bool {
	_, _, began := e.res.state()
	return slices.Contains(began, "results_"+id)
}

// TestAnIdenticalJobIsAnsweredFromEarlierResults: within a task's -- cache:
// or a request's max_age, a job of the same task, arguments, database and
// owner as one that succeeded is SUCCESS as soon as it is admitted, with
// that job's count and results and reused_from naming it, and no run; other
// arguments, another owner, fresh, or max_age 0 run. Purging the reusing
// job leaves its source's table; the source's purge or new run leaves the
// reusing job's results gone, never another run's.
func TestAnIdenticalJobIsAnsweredFromEarlierResults(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 2}})
	e.res.open()
	alice := sqljobber.WithCaller(context.Background(), sqljobber.Caller{Name: "alice"})
	bob := sqljobber.WithCaller(context.Background(), sqljobber.Caller{Name: "bob"})
	arg := func(n string) []any { return []any{json.Number(n)} }
	hour := time.Hour

	src := e.run(alice, actors.SubmitRequest{JobID: "a", Task: "cached", Args: arg("2"), TTL: &hour})
	if src.State != sqljobber.StateSuccess || src.Count != 1 || src.ReusedFrom != "" || !e.ran("a") {
		t.Fatalf("the first job: %+v", src)
	}
	twoHours := 2 * time.Hour
	if _, err := e.engine.Submit(alice, actors.SubmitRequest{JobID: "b", Task: "cached", Args: arg("2"), TTL: &twoHours}); err != nil {
		t.Fatal(err)
	}
	// Answered at once: no waiting, no run.
	b, err := e.engine.Job(alice, "b")
	if err != nil {
		t.Fatal(err)
	}
	if b.State != sqljobber.StateSuccess || b.ReusedFrom != "a" || b.Count != 1 || b.ResultsTable != "results_a" || e.ran("b") {
		t.Fatalf("the identical job: %+v", b)
	}
	if !b.ExpiresAt.Equal(src.ExpiresAt) {
		t.Fatalf("the reusing job expires at %v, after its source (%v)", b.ExpiresAt, src.ExpiresAt)
	}
	if n, err := e.count(alice, "b"); err != nil || n != 2 {
		t.Fatalf("the reusing job's results: %v, %v", n, err)
	}

	for _, tc := range []struct {
		what string
		ctx  context.Context
		req  actors.SubmitRequest
	}{
		{"other arguments", alice, actors.SubmitRequest{JobID: "c", Task: "cached", Args: arg("3")}},
		{"the same as text", alice, actors.SubmitRequest{JobID: "c2", Task: "cached", Args: []any{"2"}}},
		{"another owner", bob, actors.SubmitRequest{JobID: "d", Task: "cached", Args: arg("2")}},
		{"fresh", alice, actors.SubmitRequest{JobID: "e", Task: "cached", Args: arg("2"), Fresh: true}},
		{"max_age 0", alice, actors.SubmitRequest{JobID: "f", Task: "cached", Args: arg("2"), MaxAge: new(time.Duration)}},
	} {
		j := e.run(tc.ctx, tc.req)
		if j.State != sqljobber.StateSuccess || j.ReusedFrom != "" || !e.ran(tc.req.JobID) {
			t.Errorf("%s: %+v; want a run of its own", tc.what, j)
		}
	}

	// A task without -- cache: reuses when the request says max_age, and
	// results younger than it.
	e.run(alice, actors.SubmitRequest{JobID: "g", Task: "count"})
	if j := e.run(alice, actors.SubmitRequest{JobID: "h", Task: "count"}); j.ReusedFrom != "" {
		t.Fatalf("a task without a cache reused %s", j.ReusedFrom)
	}
	if j := e.run(alice, actors.SubmitRequest{JobID: "i", Task: "count", MaxAge: &hour}); j.ReusedFrom != "h" || e.ran("i") {
		t.Fatalf("max_age 1h: %+v; want the newest job, h", j)
	}

	// Purging the reusing job leaves its source's table.
	if err := e.engine.Cancel(alice, "b", true); err != nil {
		t.Fatal(err)
	}
	if n, err := e.count(alice, "a"); err != nil || n != 2 {
		t.Fatalf("the source after the reusing job's purge: %v, %v", n, err)
	}
	// A new run of the source: the job that reused its earlier run reads
	// nothing, not the new run's results.
	if _, err := e.engine.Submit(alice, actors.SubmitRequest{JobID: "j", Task: "cached", Args: arg("2")}); err != nil {
		t.Fatal(err)
	}
	j, err := e.engine.Job(alice, "j")
	// The newest run of the computation: f (a, e and f ran it).
	if err != nil || j.ReusedFrom != "f" {
		t.Fatalf("j: %+v, %v", j, err)
	}
	var gone *sqljobber.GoneError
	e.run(alice, actors.SubmitRequest{JobID: "f", Task: "cached", Args: arg("1"), Fresh: true})
	if _, err := e.count(alice, "j"); !errors.As(err, &gone) || gone.Source != "f" || !errors.Is(err, sqljobber.ErrGone) {
		t.Fatalf("the reusing job after its source ran again: %v", err)
	}
	// Resubmitted, j reuses the newest other run, e.
	if j := e.run(alice, actors.SubmitRequest{JobID: "j", Task: "cached", Args: arg("2")}); j.ReusedFrom != "e" {
		t.Fatalf("resubmitted: %+v", j)
	}
	if n, err := e.count(alice, "j"); err != nil || n != 2 {
		t.Fatalf("the resubmitted job's results: %v, %v", n, err)
	}
	if err := e.engine.Cancel(alice, "e", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.count(alice, "j"); !errors.As(err, &gone) || gone.Source != "e" {
		t.Fatalf("the reusing job after its source's purge: %v", err)
	}
}

// TestReuseRequestsAreChecked: max_age out of range, or with fresh, is
// refused naming the field.
func TestReuseRequestsAreChecked(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 1}})
	neg, huge, hour := -time.Second, 200*365*24*time.Hour, time.Hour
	for _, tc := range []struct {
		req   actors.SubmitRequest
		field string
	}{
		{actors.SubmitRequest{Task: "count", MaxAge: &neg}, "max_age"},
		{actors.SubmitRequest{Task: "count", MaxAge: &huge}, "max_age"},
		{actors.SubmitRequest{Task: "count", MaxAge: &hour, Fresh: true}, "fresh"},
	} {
		var invalid *sqljobber.InvalidError
		if _, err := e.engine.Submit(context.Background(), tc.req); !errors.As(err, &invalid) || invalid.Field != tc.field {
			t.Errorf("%+v: %v; want %s refused", tc.req, err, tc.field)
		}
	}
}

// TestAGroupMemberIsAnsweredFromEarlierResults: a member that may reuse
// results is SUCCESS as the group is admitted and takes none of the group's
// concurrency: the first member that runs starts at once.
func TestAGroupMemberIsAnsweredFromEarlierResults(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 2}})
	ctx := context.Background()
	arg := []any{json.Number("1")}
	e.res.open()
	e.run(ctx, actors.SubmitRequest{JobID: "src", Task: "cached", Args: arg})
	one := 1
	_, err := e.engine.SubmitGroup(ctx, actors.GroupRequest{GroupID: "g", Concurrency: &one, Jobs: []actors.SubmitRequest{
		{JobID: "m1", Task: "cached", Args: arg}, {JobID: "m2", Task: "cached", Args: arg, Fresh: true}, {JobID: "m3", Task: "count"}}})
	if err != nil {
		t.Fatal(err)
	}
	m1, err := e.engine.Job(ctx, "m1")
	if err != nil || m1.State != sqljobber.StateSuccess || m1.ReusedFrom != "src" || m1.Count != 1 || m1.GroupID != "g" {
		t.Fatalf("the reusing member: %+v, %v", m1, err)
	}
	e.states([]sqljobber.State{sqljobber.StateSuccess, sqljobber.StateSuccess, sqljobber.StateSuccess}, "m1", "m2", "m3")
	g, err := e.engine.Group(ctx, "g")
	if err != nil || g.State != sqljobber.StateSuccess {
		t.Fatalf("group: %+v, %v", g, err)
	}
	if m2, err := e.engine.Job(ctx, "m2"); err != nil || m2.ReusedFrom != "" || !e.ran("m2") {
		t.Fatalf("the fresh member: %+v, %v", m2, err)
	}
	// Purging the group leaves the source's table.
	if err := e.engine.CancelGroup(ctx, "g", true); err != nil {
		t.Fatal(err)
	}
	if n, err := e.count(ctx, "src"); err != nil || n != 3 {
		t.Fatalf("the source after its reusing member's group was purged: %v, %v", n, err)
	}
}

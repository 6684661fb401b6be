package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
)

// flightJob is a job of flight f, its results kept for ttl.
func flightJob(id, f string, ttl time.Duration) ledger.Job {
	return ledger.Job{Job: sqljobber.Job{ID: id, Task: "t", Queue: "q", Owner: "alice", TTL: ttl, ResultsBackend: "r",
		ResultsTable: "results_" + id}, Fingerprint: "fp-" + f, Flight: f}
}

func mustAdmitFlight(t *testing.T, l *env, j ledger.Job) *ledger.Job {
	t.Helper()
	a, err := l.AdmitFlight(context.Background(), j, nil, 0)
	if err != nil {
		t.Fatalf("admit %s: %v", j.ID, err)
	}
	return a
}

func mustGet(t *testing.T, l *env, id string) *ledger.Job {
	t.Helper()
	j, err := l.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func mustSettle(t *testing.T, l *env, flight string) *ledger.Settled {
	t.Helper()
	s, err := l.SettleFlight(context.Background(), flight)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAFlightHasOneLeader: identical jobs admitted at the same moment, as
// nodes would, make one leader; the others wait on it, held, and no claim
// takes them. When it succeeds, settling its flight answers them with its
// results, each expiring no later than they; another flight is apart.
func TestAFlightHasOneLeader(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const n = 20
		var wg sync.WaitGroup
		admitted := make([]*ledger.Job, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ttl := 2 * time.Hour
				if i%2 == 0 {
					ttl = 10 * time.Minute
				}
				admitted[i], errs[i] = l.AdmitFlight(ctx, flightJob(fmt.Sprintf("j%02d", i), "f", ttl), nil, 0)
			}()
		}
		wg.Wait()
		var leaders []string
		for i, a := range admitted {
			if errs[i] != nil {
				t.Fatalf("j%02d: %v", i, errs[i])
			}
			if a.Joined == "" {
				leaders = append(leaders, a.ID)
			}
		}
		if len(leaders) != 1 {
			t.Fatalf("leaders %v; want one", leaders)
		}
		leader := leaders[0]
		for _, a := range admitted {
			j := mustGet(t, l, a.ID)
			if a.ID != leader && (j.Joined != leader || !j.Held || j.State != sqljobber.StatePending) {
				t.Fatalf("a joiner as recorded: %+v", j)
			}
		}
		other := mustAdmitFlight(t, l, flightJob("other", "g", 0))
		if other.Joined != "" {
			t.Fatalf("a job of another flight joined %s", other.Joined)
		}
		// The same ID again is refused, as ever.
		var active *sqljobber.ActiveError
		if _, err := l.AdmitFlight(ctx, flightJob(leader, "f", 0), nil, 0); !errors.As(err, &active) {
			t.Fatalf("the leader's ID again: %v", err)
		}

		claimed, err := l.Claim(ctx, "q", node("n"), 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(claimed); !slices.Equal(got, []string{leader, "other"}) && !slices.Equal(got, []string{"other", leader}) {
			t.Fatalf("claimed %v; want the leaders alone", got)
		}
		if s := mustSettle(t, l, "f"); len(s.Answered) != 0 || s.Leader != nil {
			t.Fatalf("settled a flight whose leader runs: %+v", s)
		}
		if f, err := l.UnsettledFlights(ctx, 10); err != nil || len(f) != 0 {
			t.Fatalf("unsettled flights while the leader runs: %v, %v", f, err)
		}
		run := claimed[slices.IndexFunc(claimed, func(j *ledger.Job) bool { return j.ID == leader })]
		if _, err := l.Finish(ctx, leader, run.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 42, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		src := mustGet(t, l, leader)
		if f, err := l.UnsettledFlights(ctx, 10); err != nil || !slices.Equal(f, []string{"f"}) {
			t.Fatalf("unsettled flights once the leader finished: %v, %v", f, err)
		}
		l.clock.Advance(time.Second)
		s := mustSettle(t, l, "f")
		if len(s.Answered) != n-1 || s.Leader != nil {
			t.Fatalf("settled %d, leader %v; want %d answered", len(s.Answered), s.Leader, n-1)
		}
		for _, a := range admitted {
			if a.ID == leader {
				continue
			}
			j := mustGet(t, l, a.ID)
			if j.State != sqljobber.StateSuccess || j.ReusedFrom != leader || j.Joined != "" || j.Held || j.Count != 42 ||
				j.ResultsTable != src.ResultsTable || j.ResultsBackend != src.ResultsBackend || j.RunID != src.RunID {
				t.Fatalf("an answered joiner: %+v", j)
			}
			want := l.clock.Now().Add(a.TTL)
			if want.After(src.ExpiresAt) {
				want = src.ExpiresAt
			}
			if !j.ExpiresAt.Equal(want) {
				t.Fatalf("joiner %s (ttl %v) expires at %v; want %v (its leader's %v)", j.ID, j.TTL, j.ExpiresAt, want, src.ExpiresAt)
			}
		}
		if s := mustSettle(t, l, "f"); len(s.Answered) != 0 || s.Leader != nil {
			t.Fatalf("settled twice: %+v", s)
		}
		// An answered job is nobody's source: its table is its leader's.
		if j, err := l.Reusable(ctx, "alice", "t", "x", []string{"fp-f"}, time.Hour); err != nil || j.ID != leader {
			t.Fatalf("reusable: %v, %v", j, err)
		}
	})
}

// TestAFlightOutlivesItsLeader: a joiner cancelled leaves its leader be; a
// leader that fails hands the flight to the oldest joiner left, which runs,
// and the others wait on it; a leader admitted before a settlement takes
// the waiting jobs over; a leader's run lost with its node keeps its
// joiners, who get its results when it succeeds.
func TestAFlightOutlivesItsLeader(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for _, id := range []string{"lead", "a", "b", "c"} {
			mustAdmitFlight(t, l, flightJob(id, "f", 0))
			l.clock.Advance(time.Millisecond)
		}
		run := mustClaim(t, l)
		if _, err := l.Cancel(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if j := mustGet(t, l, "lead"); j.State != sqljobber.StateStarted || j.RunID != run.RunID {
			t.Fatalf("the leader after a joiner's cancel: %+v", j)
		}
		if _, err := l.Finish(ctx, "lead", run.RunID, ledger.Outcome{State: sqljobber.StateFailure, Error: "boom"}); err != nil {
			t.Fatal(err)
		}
		s := mustSettle(t, l, "f")
		if len(s.Answered) != 0 || s.Leader == nil || s.Leader.ID != "b" {
			t.Fatalf("settled %+v; want b to lead", s)
		}
		if j := mustGet(t, l, "c"); j.Joined != "b" || j.State != sqljobber.StatePending {
			t.Fatalf("c: %+v; want it waiting on b", j)
		}
		if j := mustGet(t, l, "a"); j.State != sqljobber.StateCancelled || j.Joined != "" {
			t.Fatalf("the cancelled joiner: %+v; want it CANCELLED, joined to none", j)
		}
		if d := mustAdmitFlight(t, l, flightJob("d", "f", 0)); d.Joined != "b" {
			t.Fatalf("d joined %q; want b", d.Joined)
		}
		// b is cancelled, and e admitted before the flight is settled:
		// e leads, and the others wait on it.
		if _, err := l.Cancel(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if e := mustAdmitFlight(t, l, flightJob("e", "f", 0)); e.Joined != "" {
			t.Fatalf("e joined %q; want it to lead", e.Joined)
		}
		if s := mustSettle(t, l, "f"); len(s.Answered) != 0 || s.Leader != nil {
			t.Fatalf("settled %+v; want the waiting jobs moved to e", s)
		}
		for _, id := range []string{"c", "d"} {
			if j := mustGet(t, l, id); j.Joined != "e" {
				t.Fatalf("%s waits on %q; want e", id, j.Joined)
			}
		}
		// e's run is lost with its node: e waits to run again, and
		// still leads.
		run, err := claimOne(l, "q", "dies", time.Minute)
		if err != nil || run == nil || run.ID != "e" {
			t.Fatalf("claimed %+v, %v; want e", run, err)
		}
		if lost, err := l.TakeOverNode(ctx, node("dies").ID, 3); err != nil || len(lost) != 1 {
			t.Fatalf("take over: %v, %v", lost, err)
		}
		if f, err := l.UnsettledFlights(ctx, 10); err != nil || len(f) != 0 {
			t.Fatalf("unsettled flights after the lost run: %v, %v", f, err)
		}
		run = mustClaim(t, l)
		if _, err := l.Finish(ctx, "e", run.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 7}); err != nil {
			t.Fatal(err)
		}
		s = mustSettle(t, l, "f")
		if len(s.Answered) != 2 || s.Leader != nil {
			t.Fatalf("settled %+v; want c and d answered", s)
		}
		for _, id := range []string{"c", "d"} {
			if j := mustGet(t, l, id); j.State != sqljobber.StateSuccess || j.ReusedFrom != "e" || j.Count != 7 || !j.ExpiresAt.IsZero() {
				t.Fatalf("%s: %+v", id, j)
			}
		}
		// A leader purged before its flight is settled: the oldest
		// waiting job runs.
		mustAdmitFlight(t, l, flightJob("p", "h", 0))
		mustAdmitFlight(t, l, flightJob("q", "h", 0))
		if _, err := l.Cancel(ctx, "p"); err != nil {
			t.Fatal(err)
		}
		mustDelete(t, l, mustGet(t, l, "p"))
		if s := mustSettle(t, l, "h"); s.Leader == nil || s.Leader.ID != "q" {
			t.Fatalf("settled %+v; want q to lead", s)
		}
		if j := mustClaim(t, l); j.ID != "q" {
			t.Fatalf("claimed %s; want q", j.ID)
		}
	})
}

// TestAFlightsLeaderMayStartAtOnce: admitted with a node, a leader is
// STARTED by a run there; a job that joins is not.
func TestAFlightsLeaderMayStartAtOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		n := node("n")
		lead, err := l.AdmitFlight(ctx, flightJob("lead", "f", 0), &n, time.Minute)
		if err != nil || lead.State != sqljobber.StateStarted || lead.RunID == "" || lead.Joined != "" || lead.Fence != 1 {
			t.Fatalf("the leader: %+v, %v", lead, err)
		}
		j, err := l.AdmitFlight(ctx, flightJob("j", "f", 0), &n, time.Minute)
		if err != nil || j.State != sqljobber.StatePending || j.RunID != "" || j.Joined != "lead" || !j.Held {
			t.Fatalf("the joiner: %+v, %v", j, err)
		}
		if got := mustGet(t, l, "j"); got.State != sqljobber.StatePending || got.Joined != "lead" {
			t.Fatalf("the joiner as recorded: %+v", got)
		}
	})
}

// TestAFlightIsOneComputation: a job's flight column can outlive what it
// computed where a build that knows no flights admits its ID again, with
// other arguments (its upsert leaves the column as it was). No job joins
// such a leader, nor is answered by its results: it runs on its own.
func TestAFlightIsOneComputation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		// What an earlier build's admission of an ID leaves: the row of
		// that ID's last job with its arguments, state and times anew.
		readmitByEarlierBuild := func(id string) {
			t.Helper()
			if _, err := l.db.Querier().Exec(ctx, `UPDATE sqljobber_jobs SET state = 'PENDING', args = '["other"]', run_id = '', finished_at = NULL,
	expires_at = NULL, held = 0 WHERE job_id = ?`, id); err != nil {
				t.Fatal(err)
			}
		}
		mustAdmitFlight(t, l, flightJob("lead", "f", 0))
		l.clock.Advance(time.Millisecond)
		mustAdmitFlight(t, l, flightJob("waits", "f", 0))
		run := mustClaim(t, l)
		if _, err := l.Finish(ctx, "lead", run.RunID, ledger.Outcome{State: sqljobber.StateFailure, Error: "boom"}); err != nil {
			t.Fatal(err)
		}
		readmitByEarlierBuild("lead")
		if s := mustSettle(t, l, "f"); len(s.Answered) != 0 {
			t.Fatalf("settled %+v", s)
		}
		run = mustClaim(t, l)
		if run.ID != "lead" || string(run.Args) != `["other"]` {
			t.Fatalf("claimed %+v; want lead, of other arguments", run)
		}
		if _, err := l.Finish(ctx, "lead", run.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 9}); err != nil {
			t.Fatal(err)
		}
		s := mustSettle(t, l, "f")
		if len(s.Answered) != 0 || s.Leader == nil || s.Leader.ID != "waits" {
			t.Fatalf("settled %+v; want waits to run, not answered by another computation's results", s)
		}
		if j := mustGet(t, l, "waits"); j.State != sqljobber.StatePending || j.ReusedFrom != "" || j.Joined != "" {
			t.Fatalf("waits: %+v", j)
		}

		// A leader left so is joined by nobody.
		l.clock.Advance(time.Millisecond)
		mustAdmitFlight(t, l, flightJob("old", "g", 0))
		run = mustClaim(t, l)
		if run.ID != "waits" {
			t.Fatalf("claimed %s; want waits", run.ID)
		}
		old := mustClaim(t, l)
		if _, err := l.Finish(ctx, "old", old.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}
		readmitByEarlierBuild("old")
		if j := mustAdmitFlight(t, l, flightJob("new", "g", 0)); j.Joined != "" {
			t.Fatalf("new joined %s, a job of other arguments", j.Joined)
		}
		claimed, err := l.Claim(ctx, "q", node("n"), 10, time.Minute)
		if got := ids(claimed); err != nil || len(got) != 2 || !slices.Contains(got, "old") || !slices.Contains(got, "new") {
			t.Fatalf("claimed %v, %v; want old and new, each on its own", got, err)
		}
	})
}

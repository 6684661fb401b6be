package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
)

// finishOwned runs a job of owner to success.
func finishOwned(t *testing.T, l *env, id, owner string) *ledger.Job {
	t.Helper()
	ctx := context.Background()
	mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q", Owner: owner}))
	j := mustClaim(t, l)
	if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 3}); err != nil {
		t.Fatal(err)
	}
	j, err := l.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestLedgerKeepsAFinishedIDToItsOwner: another owner cannot overwrite a
// finished job by submitting its ID, whether admitted or started at once;
// its owner can, and once purged the ID is free for anyone.
func TestLedgerKeepsAFinishedIDToItsOwner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		finishOwned(t, l, "a", "alice")
		var taken *sqljobber.TakenError
		if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: "a", Task: "other", Queue: "q", Owner: "bob"})); !errors.As(err, &taken) ||
			taken.ID != "a" || taken.Kind != "job" || !errors.Is(err, sqljobber.ErrJobActive) {
			t.Fatalf("bob admits alice's ID: %v", err)
		}
		if _, err := l.Start(ctx, jb(sqljobber.Job{ID: "a", Task: "other", Queue: "q", Owner: "bob"}), node("n"), time.Minute); !errors.As(err, &taken) {
			t.Fatalf("bob starts alice's ID: %v", err)
		}
		// Nobody's ("": before tokens) is not bob's either.
		finishOwned(t, l, "nobodys", "")
		if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: "nobodys", Task: "t", Queue: "q", Owner: "bob"})); !errors.As(err, &taken) {
			t.Fatalf("bob admits a job from before tokens: %v", err)
		}
		got, err := l.Get(ctx, "a")
		if err != nil || got.Owner != "alice" || got.Task != "t" || got.State != sqljobber.StateSuccess || got.Count != 3 {
			t.Fatalf("alice's job after bob's tries: %+v, %v", got, err)
		}
		again, err := l.Admit(ctx, jb(sqljobber.Job{ID: "a", Task: "other", Queue: "q", Owner: "alice"}))
		if err != nil || again.Owner != "alice" || again.State != sqljobber.StatePending {
			t.Fatalf("alice admits her ID again: %+v, %v", again, err)
		}
		if _, err := l.Cancel(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		cur, err := l.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		mustDelete(t, l, cur)
		ts, err := l.Tombstone(ctx, "a")
		if err != nil || ts.Owner != "alice" {
			t.Fatalf("tombstone: %+v, %v", ts, err)
		}
		if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q", Owner: "bob"})); err != nil {
			t.Fatalf("bob admits a purged ID: %v", err)
		}
	})
}

// TestLedgerKeepsAGroupToItsOwner: a finished group, or a finished job a
// group lists, is not another owner's to replace; nothing of the refused
// group is written.
func TestLedgerKeepsAGroupToItsOwner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		if _, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Owner: "alice", Concurrency: 1, JobIDs: []string{"m1"}},
			[]ledger.Job{jb(sqljobber.Job{ID: "m1", Task: "t", Queue: "q", GroupID: "g", Owner: "alice"})}); err != nil {
			t.Fatal(err)
		}
		j := mustClaim(t, l)
		if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}
		var taken *sqljobber.TakenError
		_, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Owner: "bob", Concurrency: 1, JobIDs: []string{"b1"}},
			[]ledger.Job{jb(sqljobber.Job{ID: "b1", Task: "t", Queue: "q", GroupID: "g", Owner: "bob"})})
		if !errors.As(err, &taken) || taken.Kind != "group" || taken.ID != "g" {
			t.Fatalf("bob admits alice's group ID: %v", err)
		}
		_, err = l.AdmitGroup(ctx, ledger.Group{ID: "g2", Owner: "bob", Concurrency: 1, JobIDs: []string{"b1", "m1"}},
			[]ledger.Job{jb(sqljobber.Job{ID: "b1", Task: "t", Queue: "q", GroupID: "g2", Owner: "bob"}),
				jb(sqljobber.Job{ID: "m1", Task: "t", Queue: "q", GroupID: "g2", Owner: "bob"})})
		if !errors.As(err, &taken) || taken.Kind != "job" || taken.ID != "m1" {
			t.Fatalf("bob's group lists alice's job: %v", err)
		}
		for _, id := range []string{"b1"} {
			if _, err := l.Get(ctx, id); !errors.Is(err, sqljobber.ErrJobNotFound) {
				t.Fatalf("a refused group left job %s: %v", id, err)
			}
		}
		if _, _, err := l.Group(ctx, "g2"); !errors.Is(err, sqljobber.ErrGroupNotFound) {
			t.Fatalf("a refused group was recorded: %v", err)
		}
		g, jobs, err := l.Group(ctx, "g")
		if err != nil || g.Owner != "alice" || len(jobs) != 1 || jobs[0].Owner != "alice" || jobs[0].State != sqljobber.StateSuccess {
			t.Fatalf("alice's group: %+v %+v %v", g, jobs, err)
		}
	})
}

func TestLedgerListsAnOwnersPendingJobs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for _, j := range []sqljobber.Job{{ID: "a1", Owner: "alice"}, {ID: "b1", Owner: "bob"}, {ID: "a2", Owner: "alice"}, {ID: "n1"}} {
			j.Task, j.Queue = "t", "q"
			mustAdmit(t, l, jb(j))
		}
		for owner, want := range map[string]string{"alice": "a1,a2", "bob": "b1", "": "n1", "eve": ""} {
			got, err := l.PendingOf(ctx, "q", owner, 10)
			if err != nil || strings.Join(ids(got), ",") != want {
				t.Errorf("%q's pending jobs: %v, %v; want %s", owner, ids(got), err, want)
			}
		}
		if all, err := l.Pending(ctx, "q", 10); err != nil || len(all) != 4 {
			t.Fatalf("all pending jobs: %v, %v", ids(all), err)
		}
	})
}

// TestLedgerCancelsAGroupAtOnce: one call cancels every unfinished member,
// running, waiting or held, and returns them as they were; none is claimed
// or released afterwards, and a finished member keeps its state.
func TestLedgerCancelsAGroupAtOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const n = 1203 // more than one statement's worth of IDs
		members := []ledger.Job{jb(sqljobber.Job{ID: "done", Task: "t", Queue: "q", GroupID: "g"}),
			jb(sqljobber.Job{ID: "run", Task: "t", Queue: "q", GroupID: "g", TTL: time.Hour})}
		for i := range n {
			members = append(members, heldJob(sqljobber.Job{ID: fmt.Sprintf("h%04d", i), Task: "t", Queue: "q", GroupID: "g"}))
		}
		jobIDs := make([]string, len(members))
		for i, m := range members {
			jobIDs[i] = m.ID
		}
		if _, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Concurrency: 2, JobIDs: jobIDs}, members); err != nil {
			t.Fatal(err)
		}
		done := mustClaim(t, l)
		if _, err := l.Finish(ctx, done.ID, done.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}
		run := mustClaim(t, l)
		if _, err := l.ReleaseGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		cancelled, err := l.CancelGroup(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if len(cancelled) != n+1 {
			t.Fatalf("cancelled %d members, want %d", len(cancelled), n+1)
		}
		i := slices.IndexFunc(cancelled, func(j *ledger.Job) bool { return j.ID == run.ID })
		if i < 0 || cancelled[i].State != sqljobber.StateStarted || cancelled[i].RunID != run.RunID || cancelled[i].NodeID != run.NodeID {
			t.Fatalf("the running member as it was: %+v", cancelled[i])
		}
		if c, err := claimOne(l, "q", "n", time.Minute); c != nil || err != nil {
			t.Fatalf("claimed %+v, %v after the cancel", c, err)
		}
		if released, err := l.ReleaseGroup(ctx, "g"); err != nil || len(released) != 0 {
			t.Fatalf("released %v, %v after the cancel", ids(released), err)
		}
		if _, err := l.Finish(ctx, run.ID, run.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); !errors.Is(err, ledger.ErrRunSuperseded) {
			t.Fatalf("the cancelled run finished: %v", err)
		}
		g, jobs, err := l.Group(ctx, "g")
		if err != nil || !g.Cancelled || len(jobs) != n+2 {
			t.Fatalf("group %+v with %d jobs, %v", g, len(jobs), err)
		}
		for _, j := range jobs {
			want := sqljobber.StateCancelled
			if j.ID == "done" {
				want = sqljobber.StateSuccess
			}
			if j.State != want || j.Held {
				t.Fatalf("member %s: %s (held %v), want %s", j.ID, j.State, j.Held, want)
			}
			if j.ID == "run" && !j.ExpiresAt.Equal(j.FinishedAt.Add(time.Hour)) {
				t.Fatalf("member run expires at %v, finished at %v with a TTL of 1h", j.ExpiresAt, j.FinishedAt)
			}
		}
		if _, err := l.CancelGroup(ctx, "nope"); !errors.Is(err, sqljobber.ErrGroupNotFound) {
			t.Fatalf("cancel an unknown group: %v", err)
		}
	})
}

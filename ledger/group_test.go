package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
)

func TestLedgerGroups(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		members := []ledger.Job{
			jb(sqljobber.Job{ID: "m1", Task: "t", Queue: "q", GroupID: "g"}),
			heldJob(sqljobber.Job{ID: "m2", Task: "t", Queue: "q", GroupID: "g"}),
			heldJob(sqljobber.Job{ID: "m3", Task: "t", Queue: "q", GroupID: "g"}),
		}
		if _, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Concurrency: 1, JobIDs: []string{"m1", "m2", "m3"}}, members); err != nil {
			t.Fatal(err)
		}
		// A group is admitted whole or not at all.
		mustAdmit(t, l, jb(sqljobber.Job{ID: "busy", Task: "t", Queue: "other"}))
		_, err := l.AdmitGroup(ctx, ledger.Group{ID: "g2", Concurrency: 1, JobIDs: []string{"x", "busy"}},
			[]ledger.Job{jb(sqljobber.Job{ID: "x", Task: "t", Queue: "q", GroupID: "g2"}), jb(sqljobber.Job{ID: "busy", Task: "t", Queue: "q", GroupID: "g2"})})
		var active *sqljobber.ActiveError
		if !errors.As(err, &active) || active.ID != "busy" {
			t.Fatalf("group with a busy ID: %v", err)
		}
		if _, err := l.Get(ctx, "x"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("a refused group left job x: %v", err)
		}
		if _, _, err := l.Group(ctx, "g2"); !errors.Is(err, sqljobber.ErrGroupNotFound) {
			t.Fatalf("a refused group was recorded: %v", err)
		}

		j := mustClaim(t, l)
		if j.ID != "m1" {
			t.Fatalf("claimed %s first", j.ID)
		}
		if j, _ := claimOne(l, "q", "n", time.Minute); j != nil {
			t.Fatalf("claimed held member %s", j.ID)
		}
		if released, err := l.ReleaseGroup(ctx, "g"); err != nil || len(released) != 0 {
			t.Fatalf("release while m1 runs: %v, %v", ids(released), err)
		}
		if _, err := l.Finish(ctx, "m1", j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}
		released, err := l.ReleaseGroup(ctx, "g")
		if err != nil || len(released) != 1 || released[0].ID != "m2" {
			t.Fatalf("release after m1: %v, %v", ids(released), err)
		}
		if held, err := l.HeldGroups(ctx, "", 10); err != nil || len(held) != 1 || held[0] != "g" {
			t.Fatalf("held groups: %v, %v", held, err)
		}
		if held, err := l.HeldGroups(ctx, "g", 10); err != nil || len(held) != 0 {
			t.Fatalf("held groups after g: %v, %v", held, err)
		}
		g, jobs, err := l.Group(ctx, "g")
		if err != nil || g.Concurrency != 1 || strings.Join(ids(jobs), ",") != "m1,m2,m3" {
			t.Fatalf("group: %+v %v %v", g, ids(jobs), err)
		}
		if _, err := l.DeleteGroup(ctx, "g"); !errors.As(err, &active) {
			t.Fatalf("delete an unfinished group: %v", err)
		}
	})
}

// TestLedgerGroupIDRunsAgain: once a group's jobs have all finished, its ID
// may be submitted again. The new group replaces the old: the old jobs it
// does not list leave the group, and its purge removes only its own.
func TestLedgerGroupIDRunsAgain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		admit := func(jobIDs ...string) error {
			var jobs []ledger.Job
			for _, id := range jobIDs {
				jobs = append(jobs, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q", GroupID: "g"}))
			}
			_, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Concurrency: 2, JobIDs: jobIDs}, jobs)
			return err
		}
		run := func() {
			for {
				j, err := claimOne(l, "q", "n", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if j == nil {
					return
				}
				if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := admit("a", "b"); err != nil {
			t.Fatal(err)
		}
		var active *sqljobber.ActiveError
		if err := admit("c"); !errors.As(err, &active) {
			t.Fatalf("a group ID whose jobs run was taken again: %v", err)
		}
		run()
		if err := admit("b", "c"); err != nil {
			t.Fatalf("a finished group's ID: %v", err)
		}
		_, jobs, err := l.Group(ctx, "g")
		if err != nil || strings.Join(ids(jobs), ",") != "b,c" {
			t.Fatalf("the group again: %v, %v", ids(jobs), err)
		}
		a, err := l.Get(ctx, "a")
		if err != nil || a.GroupID != "" || a.State != sqljobber.StateSuccess {
			t.Fatalf("the old group's job it does not list: %+v, %v", a, err)
		}
		run()
		purged, err := l.DeleteGroup(ctx, "g")
		if err != nil || strings.Join(ids(purged), ",") != "b,c" {
			t.Fatalf("purge: %v, %v", ids(purged), err)
		}
		if _, err := l.Get(ctx, "a"); err != nil {
			t.Fatalf("the purge of the new group took the old one's job: %v", err)
		}
	})
}

// A group of hundreds is admitted in statements of many members: whole,
// in order, each with its fence, and refused whole when a member's ID is
// held, however far into the group it is.
func TestLedgerAdmitsALargeGroupWhole(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		group := func(id string, n int) (ledger.Group, []ledger.Job) {
			g := ledger.Group{ID: id, Concurrency: 5}
			var jobs []ledger.Job
			for i := range n {
				mid := fmt.Sprintf("%s-%03d", id, i)
				g.JobIDs = append(g.JobIDs, mid)
				jobs = append(jobs, jb(sqljobber.Job{ID: mid, Task: "t", Queue: "q", GroupID: id}))
			}
			return g, jobs
		}
		mustAdmit(t, l, jb(sqljobber.Job{ID: "big-150", Task: "t", Queue: "other"}))
		g, jobs := group("big", 200)
		_, err := l.AdmitGroup(ctx, g, jobs)
		var active *sqljobber.ActiveError
		if !errors.As(err, &active) || active.ID != "big-150" {
			t.Fatalf("a group with a held ID: %v", err)
		}
		if _, err := l.Get(ctx, "big-000"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("a refused group left its first member: %v", err)
		}
		g, jobs = group("ok", 200)
		admitted, err := l.AdmitGroup(ctx, g, jobs)
		if err != nil || len(admitted) != 200 {
			t.Fatalf("a group of 200: %d admitted, %v", len(admitted), err)
		}
		for i, a := range admitted {
			got, err := l.Get(ctx, a.ID)
			if a.ID != g.JobIDs[i] || err != nil || got.State != sqljobber.StatePending || got.GroupID != "ok" || got.Fence != a.Fence {
				t.Fatalf("member %d: admitted %s (fence %d), recorded %+v, %v", i, a.ID, a.Fence, got, err)
			}
		}
	})
}

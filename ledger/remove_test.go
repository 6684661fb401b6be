package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

func TestLedgerExpiry(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "e", Task: "t", Queue: "q", TTL: time.Second}))
		mustAdmit(t, l, jb(sqljobber.Job{ID: "k", Task: "t", Queue: "q"}))
		for range 2 {
			j := mustClaim(t, l)
			if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, TTL: j.TTL}); err != nil {
				t.Fatal(err)
			}
		}
		e, _ := l.Get(ctx, "e")
		if d := e.ExpiresAt.Sub(e.FinishedAt); d != time.Second {
			t.Fatalf("expires %v after finishing, want 1s", d)
		}
		if k, _ := l.Get(ctx, "k"); !k.ExpiresAt.IsZero() {
			t.Fatalf("job without a TTL expires at %v", k.ExpiresAt)
		}
		if jobs, err := l.Expired(ctx, 10); err != nil || len(jobs) != 0 {
			t.Fatalf("expired too early: %v, %v", ids(jobs), err)
		}
		l.clock.Advance(time.Second)
		jobs, err := l.Expired(ctx, 10)
		if err != nil || len(jobs) != 1 || jobs[0].ID != "e" {
			t.Fatalf("expired: %v, %v", ids(jobs), err)
		}
	})
}

func TestLedgerRemembersRemovedJobs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		mustDelete(t, l, finish(t, l, "p", 0))
		ts, err := l.Tombstone(ctx, "p")
		if err != nil || ts.ID != "p" || ts.Reason != sqljobber.GonePurged || !ts.At.Equal(l.clock.Now()) {
			t.Fatalf("purged job: %+v, %v", ts, err)
		}
		if _, err := l.Get(ctx, "p"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("the purged job's record: %v", err)
		}

		finish(t, l, "e", time.Second)
		l.clock.Advance(time.Second)
		expired, err := l.Expired(ctx, 10)
		if err != nil || len(expired) != 1 {
			t.Fatalf("expired: %v, %v", ids(expired), err)
		}
		mustDelete(t, l, expired[0])
		if ts, err := l.Tombstone(ctx, "e"); err != nil || ts.Reason != sqljobber.GoneExpired {
			t.Fatalf("expired job: %+v, %v", ts, err)
		}

		// A job that was never there, and one whose deletion was refused.
		if _, err := l.Tombstone(ctx, "never"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("unknown job: %v", err)
		}
		kept := finish(t, l, "kept", 0)
		kept.UpdatedAt = kept.UpdatedAt.Add(-time.Second)
		if ok, err := l.DeleteIfUnchanged(ctx, kept); ok || err != nil {
			t.Fatalf("delete of a changed job: %v, %v", ok, err)
		}
		if _, err := l.Tombstone(ctx, "kept"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("a job still there has a tombstone: %v", err)
		}

		// A purged group's members.
		if _, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Concurrency: 1, JobIDs: []string{"m"}},
			[]ledger.Job{jb(sqljobber.Job{ID: "m", Task: "t", Queue: "q", GroupID: "g"})}); err != nil {
			t.Fatal(err)
		}
		m := mustClaim(t, l)
		if _, err := l.Finish(ctx, m.ID, m.RunID, ledger.Outcome{State: sqljobber.StateFailure}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.DeleteGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if ts, err := l.Tombstone(ctx, "m"); err != nil || ts.Reason != sqljobber.GonePurged {
			t.Fatalf("purged group member: %+v, %v", ts, err)
		}
	})
}

func TestLedgerForgetsTheGoneAfterTheRetention(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		ctx := context.Background()
		l := openLedger(t, d, ledger.Config{GoneRetention: time.Minute})
		mustDelete(t, l, finish(t, l, "old", 0))
		l.clock.Advance(time.Minute - time.Microsecond)
		if _, err := l.Tombstone(ctx, "old"); err != nil {
			t.Fatalf("tombstone within its retention: %v", err)
		}
		l.clock.Advance(time.Millisecond)
		if _, err := l.Tombstone(ctx, "old"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("tombstone past its retention: %v", err)
		}
		// The next removal deletes what is past the retention.
		mustDelete(t, l, finish(t, l, "new", 0))
		if n, err := countRows(ctx, l.db, ledger.TableDefault+"_gone"); err != nil || n != 1 {
			t.Fatalf("tombstones kept: %d, %v", n, err)
		}
	})
}

package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// TestLeasesHaveOneHolderAtATime: a lease is its holder's until it runs out
// or is let go; another node gets it then, or when the holder is gone by
// the caller's rule, never while it is held.
func TestLeasesHaveOneHolderAtATime(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		if cur, err := l.Lease(ctx, "node/n1"); err != nil || cur != nil {
			t.Fatalf("a lease nobody took: %+v, %v", cur, err)
		}
		got, err := l.TakeLease(ctx, "node/n1", "a", `{"address":"x"}`, time.Minute, nil)
		if err != nil || got.Holder != "a" || !got.Until.Equal(l.clock.Now().Add(time.Minute)) {
			t.Fatalf("take: %+v, %v", got, err)
		}
		var held *ledger.HeldError
		if _, err := l.TakeLease(ctx, "node/n1", "b", "", time.Minute, nil); !errors.As(err, &held) ||
			held.Lease.Holder != "a" || held.Lease.Detail != `{"address":"x"}` {
			t.Fatalf("take a held lease: %v", err)
		}
		// Its holder takes it again, or renews it.
		if _, err := l.TakeLease(ctx, "node/n1", "a", "", time.Minute, nil); err != nil {
			t.Fatalf("the holder takes its lease again: %v", err)
		}
		l.clock.Advance(50 * time.Second)
		if err := l.RenewLease(ctx, "node/n1", "a", time.Minute); err != nil {
			t.Fatal(err)
		}
		l.clock.Advance(50 * time.Second)
		if _, err := l.TakeLease(ctx, "node/n1", "b", "", time.Minute, nil); !errors.As(err, &held) {
			t.Fatalf("take a renewed lease: %v", err)
		}
		// The caller's rule: the holder is gone.
		if _, err := l.TakeLease(ctx, "node/n1", "b", "", time.Minute, func(cur *ledger.Lease) bool { return cur.Holder == "a" }); err != nil {
			t.Fatalf("take the lease of a holder that is gone: %v", err)
		}
		if err := l.RenewLease(ctx, "node/n1", "a", time.Minute); !errors.Is(err, ledger.ErrLeaseLost) {
			t.Fatalf("the old holder renews: %v", err)
		}
		// Run out.
		l.clock.Advance(time.Minute)
		if _, err := l.TakeLease(ctx, "node/n1", "c", "", time.Minute, nil); err != nil {
			t.Fatalf("take a lease that ran out: %v", err)
		}
		// Let go: free at once.
		if err := l.DropLease(ctx, "node/n1", "b"); err != nil {
			t.Fatal(err)
		}
		if cur, _ := l.Lease(ctx, "node/n1"); cur == nil || cur.Holder != "c" {
			t.Fatalf("a former holder let go of another's lease: %+v", cur)
		}
		if err := l.DropLease(ctx, "node/n1", "c"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.TakeLease(ctx, "node/n1", "d", "", time.Minute, nil); err != nil {
			t.Fatalf("take a lease let go of: %v", err)
		}
	})
}

// TestLeaseTakenByManyAtOnceHasOneHolder: nodes that take a free lease at
// the same moment (they start together) do not both get it.
func TestLeaseTakenByManyAtOnceHasOneHolder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			won []string
		)
		for _, h := range []string{"a", "b", "c", "d", "e", "f"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.TakeLease(context.Background(), "role/housekeeper", h, "", time.Minute, nil)
				var held *ledger.HeldError
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, h)
					mu.Unlock()
				case !errors.As(err, &held):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("holders %v, want one", won)
		}
		cur, err := l.Lease(context.Background(), "role/housekeeper")
		if err != nil || cur == nil || cur.Holder != won[0] {
			t.Fatalf("the lease: %+v, %v; the winner %v", cur, err, won)
		}
	})
}

// A node renews its runs' leases without waiting for any other job's row:
// it finds its runs by their jobs' keys. Its UPDATE once named running
// jobs by state and run ID, and MySQL's scan locked every running job it
// passed, of every node, until the statement ended: here it waited for a
// row that another transaction held, until the deadline.
func TestRenewWaitsForNoOtherJobsRow(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			l := openLedger(t, d, ledger.Config{})
			ctx := context.Background()
			mustAdmit(t, l, jb(sqljobber.Job{ID: "other", Task: "t", Queue: "q"}))
			l.clock.Advance(time.Millisecond)
			mustAdmit(t, l, jb(sqljobber.Job{ID: "mine", Task: "t", Queue: "q"}))
			other, err := claimOne(l, "q", "n2", time.Minute)
			if err != nil || other == nil || other.ID != "other" {
				t.Fatalf("claim: %+v, %v", other, err)
			}
			mine, err := claimOne(l, "q", "n1", time.Minute)
			if err != nil || mine == nil || mine.ID != "mine" {
				t.Fatalf("claim: %+v, %v", mine, err)
			}

			_, release := holdRow(t, l, "other")
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			alive, err := l.Renew(rctx, []ledger.JobRun{{JobID: mine.ID, RunID: mine.RunID}}, time.Hour)
			cancel()
			release()
			if err != nil || !alive[mine.RunID] || len(alive) != 1 {
				t.Fatalf("renew while another job's row is held: %v, %v", alive, err)
			}
			got, err := l.Get(ctx, "mine")
			if err != nil || got.LeaseUntil.Before(l.clock.Now().Add(59*time.Minute)) {
				t.Fatalf("the renewed run's lease: %v, %v", got.LeaseUntil, err)
			}
			if got, err := l.Get(ctx, "other"); err != nil || got.LeaseUntil.After(l.clock.Now().Add(time.Minute)) {
				t.Fatalf("the other run's lease was renewed too: %v, %v", got.LeaseUntil, err)
			}

			// A run ID renews only the job it runs: "mine" with the other
			// job's run ID is not a run, and is not renewed.
			alive, err = l.Renew(ctx, []ledger.JobRun{{JobID: mine.ID, RunID: other.RunID}}, time.Hour)
			if err != nil || len(alive) != 0 {
				t.Fatalf("renew of a job with another job's run ID: %v, %v", alive, err)
			}
		})
	}
}

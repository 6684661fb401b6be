package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
)

// TestConcurrentFinishesRecordEachRunsOwnOutcome: runs that finish at once
// (written together where the ledger batches them) each record their own
// count and expiry; a run whose job was cancelled meanwhile records
// nothing and is told so, and the others are not held up by it.
func TestConcurrentFinishesRecordEachRunsOwnOutcome(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const n = 24
		runs := map[string]string{}
		for i := range n {
			id := fmt.Sprintf("f%02d", i)
			// Every third job keeps its results (TTL 0), the others
			// for i minutes.
			ttl := time.Duration(i%3) * time.Minute
			mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q", TTL: ttl}))
			runs[id] = mustClaim(t, l).RunID
		}
		if _, err := l.Cancel(ctx, "f05"); err != nil {
			t.Fatal(err)
		}
		now := l.clock.Now()
		errs := make(map[string]error, n)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			id := fmt.Sprintf("f%02d", i)
			wg.Go(func() {
				ttl := time.Duration(i%3) * time.Minute
				_, err := l.Finish(ctx, id, runs[id], ledger.Outcome{State: sqljobber.StateSuccess, Count: int64(100 + i), TTL: ttl})
				mu.Lock()
				errs[id] = err
				mu.Unlock()
			})
		}
		wg.Wait()
		for i := range n {
			id := fmt.Sprintf("f%02d", i)
			j := mustGet(t, l, id)
			if id == "f05" {
				if !errors.Is(errs[id], ledger.ErrRunSuperseded) || j.State != sqljobber.StateCancelled {
					t.Errorf("cancelled job's finish: %v, state %s", errs[id], j.State)
				}
				continue
			}
			if errs[id] != nil {
				t.Errorf("finish %s: %v", id, errs[id])
				continue
			}
			var want time.Time
			if ttl := time.Duration(i%3) * time.Minute; ttl > 0 {
				want = now.Add(ttl)
			}
			if j.State != sqljobber.StateSuccess || j.Count != int64(100+i) || j.Error != "" || !j.ExpiresAt.Equal(want) ||
				!j.FinishedAt.Equal(now) || !j.LeaseUntil.IsZero() {
				t.Errorf("job %s: state %s, count %d, error %q, expires %v (want %v), finished %v, lease %v",
					id, j.State, j.Count, j.Error, j.ExpiresAt, want, j.FinishedAt, j.LeaseUntil)
			}
		}
	})
}

// TestABatchOfFinishesWritesOnlyTheRunsThatOwnTheirJobs: in one batch, a run
// whose job was cancelled, and one that is not the job's current run,
// write nothing, and the batch says which runs it recorded.
func TestABatchOfFinishesWritesOnlyTheRunsThatOwnTheirJobs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		runs := map[string]string{}
		for _, id := range []string{"a", "b", "c", "d"} {
			mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"}))
			runs[id] = mustClaim(t, l).RunID
		}
		if _, err := l.Cancel(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		ids := []string{"d", "c", "b", "a"}
		runIDs := []string{runs["d"], "not-c's-run", runs["b"], runs["a"]}
		outcomes := []ledger.Outcome{
			{State: sqljobber.StateSuccess, Count: 4, TTL: time.Hour},
			{State: sqljobber.StateSuccess, Count: 3},
			{State: sqljobber.StateSuccess, Count: 2},
			{State: sqljobber.StateSuccess, Count: 1},
		}
		written, ok, err := ledger.FinishTogether(ctx, l.Ledger, ids, runIDs, outcomes)
		if !ok {
			t.Skip("this ledger finishes runs one by one")
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(written) != 2 || !written["a"] || !written["d"] {
			t.Fatalf("recorded %v, want a and d", written)
		}
		if j := mustGet(t, l, "a"); j.State != sqljobber.StateSuccess || j.Count != 1 || !j.ExpiresAt.IsZero() {
			t.Errorf("a: %s, count %d, expires %v", j.State, j.Count, j.ExpiresAt)
		}
		if j := mustGet(t, l, "d"); j.State != sqljobber.StateSuccess || j.Count != 4 || !j.ExpiresAt.Equal(j.FinishedAt.Add(time.Hour)) {
			t.Errorf("d: %s, count %d, expires %v", j.State, j.Count, j.ExpiresAt)
		}
		if j := mustGet(t, l, "b"); j.State != sqljobber.StateCancelled {
			t.Errorf("b: %s", j.State)
		}
		if j := mustGet(t, l, "c"); j.State != sqljobber.StateStarted || j.RunID != runs["c"] {
			t.Errorf("c: %s, run %s", j.State, j.RunID)
		}
		// Every run of a batch owning its job: all recorded at once.
		for _, id := range []string{"e", "f"} {
			mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"}))
			runs[id] = mustClaim(t, l).RunID
		}
		written, _, err = ledger.FinishTogether(ctx, l.Ledger, []string{"e", "f", "c"}, []string{runs["e"], runs["f"], runs["c"]}, outcomes[:3])
		if err != nil || len(written) != 3 || !written["c"] || !written["e"] || !written["f"] {
			t.Fatalf("c, e and f: %v, %v", written, err)
		}
		for id, count := range map[string]int64{"e": 4, "f": 3, "c": 2} {
			if j := mustGet(t, l, id); j.State != sqljobber.StateSuccess || j.Count != count {
				t.Errorf("%s: %s, count %d, want %d", id, j.State, j.Count, count)
			}
		}
	})
}

package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// forEachCappedDialect runs fn on a ledger of each dialect whose database
// "capped" may run two jobs at once.
func forEachCappedDialect(t *testing.T, fn func(t *testing.T, l *env)) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		fn(t, openLedger(t, d, ledger.Config{MaxRunning: map[string]int{"capped": 2}}))
	})
}

// cj is a job of queue q against source database db.
func cj(id, db string) ledger.Job {
	return ledger.Job{Job: sqljobber.Job{ID: id, Task: "t", Queue: "q"}, SourceDB: db}
}

// TestLedgerCapPassesOverFullDatabases: a claim takes a capped database's
// jobs while it runs fewer than its cap, passes over the rest (which keep
// their place) and takes the younger jobs of other databases instead; a
// finished, handed back or lost run frees its place.
func TestLedgerCapPassesOverFullDatabases(t *testing.T) {
	forEachCappedDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for _, j := range []ledger.Job{cj("c0", "capped"), cj("f0", "free"), cj("c1", "capped"), cj("c2", "capped"), cj("f1", "free"), cj("c3", "capped"), cj("c4", "capped")} {
			mustAdmit(t, l, j)
			l.clock.Advance(time.Millisecond)
		}
		claim := func(n int) []*ledger.Job {
			t.Helper()
			jobs, err := l.Claim(ctx, "q", node("n"), n, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return jobs
		}
		// One at a time, then the rest: c2 is passed over in the second.
		if got := ids(claim(2)); strings.Join(got, ",") != "c0,f0" {
			t.Fatalf("first claim: %v", got)
		}
		running := claim(10)
		if got := ids(running); strings.Join(got, ",") != "c1,f1" {
			t.Fatalf("second claim: %v", got)
		}
		if got := ids(claim(10)); len(got) != 0 {
			t.Fatalf("a claim at the cap took %v", got)
		}
		loads, err := l.DBLoads(ctx, nil)
		if err != nil || loads["capped"].Running != 2 || loads["capped"].Ready != 3 || loads["free"].Running != 2 || loads["free"].Ready != 0 {
			t.Fatalf("loads: %+v %+v, %v", loads["capped"], loads["free"], err)
		}
		// Another node, sharing the ledger, sees the same cap.
		other, err := ledger.New(l.db, nil, ledger.Config{MaxRunning: map[string]int{"capped": 2}, Clock: l.clock})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := other.Claim(ctx, "q", node("m"), 10, time.Minute); err != nil || len(got) != 0 {
			t.Fatalf("another node's claim at the cap: %v, %v", ids(got), err)
		}
		// c1 finishes: c2 takes its place, in order.
		if _, err := l.Finish(ctx, "c1", running[0].RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}
		c2, err := other.Claim(ctx, "q", node("m"), 10, time.Minute)
		if err != nil || strings.Join(ids(c2), ",") != "c2" {
			t.Fatalf("claim after a finish: %v, %v", ids(c2), err)
		}
		// c2 is handed back: it runs again before c3.
		if err := l.Release(ctx, "c2", c2[0].RunID); err != nil {
			t.Fatal(err)
		}
		if got := ids(claim(10)); strings.Join(got, ",") != "c2" {
			t.Fatalf("claim after a release: %v", got)
		}
		// The other node dies with nothing of the cap's: still full. The
		// first node's runs are lost: two places free.
		if _, err := l.TakeOverNode(ctx, node("m").ID, 3); err != nil {
			t.Fatal(err)
		}
		if got := ids(claim(10)); len(got) != 0 {
			t.Fatalf("a claim at the cap took %v", got)
		}
		if _, err := l.TakeOverNode(ctx, node("n").ID, 3); err != nil {
			t.Fatal(err)
		}
		if got := ids(claim(10)); strings.Join(got, ",") != "c0,f0,c2,f1" {
			t.Fatalf("claim after the node's runs were taken back: %v", got)
		}
	})
}

// TestLedgerCapHoldsUnderConcurrentClaims: claimers on two ledgers (two
// nodes) take a capped database's jobs as fast as they can; the cap is
// reached, never more than it run at once, and every job runs once.
func TestLedgerCapHoldsUnderConcurrentClaims(t *testing.T) {
	forEachCappedDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const n = 30
		for i := range n {
			db := "capped"
			if i%3 == 2 {
				db = "free"
			}
			mustAdmit(t, l, cj(fmt.Sprintf("j%02d", i), db))
			l.clock.Advance(time.Millisecond)
		}
		other, err := ledger.New(l.db, nil, ledger.Config{MaxRunning: map[string]int{"capped": 2}, Clock: l.clock})
		if err != nil {
			t.Fatal(err)
		}
		var (
			running, most atomic.Int64
			mu            sync.Mutex
			seen          = map[string]int{}
			wg            sync.WaitGroup
			done          atomic.Int64
		)
		for w := range 6 {
			lg := l.Ledger
			if w%2 == 1 {
				lg = other
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done.Load() < n {
					jobs, err := lg.Claim(ctx, "q", node(fmt.Sprintf("w%d", w)), 1+w%3, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					for _, j := range jobs {
						mu.Lock()
						seen[j.ID]++
						mu.Unlock()
						if j.SourceDB != "capped" {
							continue
						}
						// Counted between its claim's commit and its
						// finish's start: surely STARTED in the ledger.
						r := running.Add(1)
						for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
						}
					}
					// Capped jobs are held until the cap is reached (or
					// for a while), so that claims meet at its last place
					// however the scheduler and SQLite's busy waits order
					// them.
					if slices.ContainsFunc(jobs, func(j *ledger.Job) bool { return j.SourceDB == "capped" }) {
						for deadline := time.Now().Add(500 * time.Millisecond); running.Load() < 2 && time.Now().Before(deadline); {
							time.Sleep(time.Millisecond)
						}
					}
					for _, j := range jobs {
						if j.SourceDB == "capped" {
							running.Add(-1)
						}
						if _, err := lg.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
							t.Error(err)
						}
						done.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d jobs ran, want %d", len(seen), n)
		}
		for id, k := range seen {
			if k != 1 {
				t.Fatalf("job %s claimed %d times", id, k)
			}
		}
		if m := most.Load(); m != 2 {
			t.Fatalf("at most %d capped jobs ran at once, want 2 (the cap, reached)", m)
		}
	})
}

// TestLedgerCapRowIsRestored: a cap's row that went missing is added
// again by the claim that needs it.
func TestLedgerCapRowIsRestored(t *testing.T) {
	forEachCappedDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		if _, err := l.db.Querier().Exec(ctx, "DELETE FROM sqljobber_jobs_caps"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			mustAdmit(t, l, cj(fmt.Sprintf("c%d", i), "capped"))
			l.clock.Advance(time.Millisecond)
		}
		jobs, err := l.Claim(ctx, "q", node("n"), 10, time.Minute)
		if err != nil || strings.Join(ids(jobs), ",") != "c0,c1" {
			t.Fatalf("claim: %v, %v", ids(jobs), err)
		}
		if n, err := countRows(ctx, l.db, "sqljobber_jobs_caps"); err != nil || n != 1 {
			t.Fatalf("cap rows: %d, %v", n, err)
		}
	})
}

// TestLedgerNextReadyIsInTheFuture: jobs ready now that a claim passed
// over are not a reason to claim again at once; the next job due is.
func TestLedgerNextReadyIsInTheFuture(t *testing.T) {
	forEachCappedDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for i := range 3 {
			mustAdmit(t, l, cj(fmt.Sprintf("c%d", i), "capped"))
		}
		if _, err := l.Claim(ctx, "q", node("n"), 10, time.Minute); err != nil {
			t.Fatal(err)
		}
		if next, ok, err := l.NextReady(ctx, "q"); err != nil || ok {
			t.Fatalf("next ready with only a passed-over job: %v %v %v", next, ok, err)
		}
		eta := l.clock.Now().Add(time.Minute)
		mustAdmit(t, l, ledger.Job{Job: sqljobber.Job{ID: "later", Task: "t", Queue: "q", ETA: eta}})
		if next, ok, err := l.NextReady(ctx, "q"); err != nil || !ok || !next.Equal(eta) {
			t.Fatalf("next ready: %v %v %v, want %v", next, ok, err, eta)
		}
	})
}

func TestLedgerCapConfig(t *testing.T) {
	for _, tc := range []struct {
		caps map[string]int
		want string
	}{
		{map[string]int{"db0": 0}, "db.db0.max_running: must be between 1 and 1000000, got 0"},
		{map[string]int{"db0": -3}, "db.db0.max_running: must be between 1 and 1000000, got -3"},
		{map[string]int{"db0": 1_000_001}, "db.db0.max_running: must be between 1 and 1000000, got 1000001"},
		{map[string]int{"bad name'; --": 1}, `max_running: invalid database name "bad name'; --"`},
	} {
		if err := (ledger.Config{MaxRunning: tc.caps}).Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q", tc.caps, err, tc.want)
		}
	}
	if err := (ledger.Config{MaxRunning: map[string]int{"db0": 1, "db1": 1_000_000}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkClaimUncapped measures what a claim of an uncapped database's
// job costs on a ledger without caps and on one that caps another
// database (go test -run '^$' -bench ClaimUncapped ./ledger/).
func BenchmarkClaimUncapped(b *testing.B) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL, sqlexec.SQLite} {
		for _, caps := range []map[string]int{nil, {"capped": 2}} {
			b.Run(fmt.Sprintf("%s/caps=%d", d, len(caps)), func(b *testing.B) {
				l := openLedger(b, d, ledger.Config{MaxRunning: caps})
				ctx := context.Background()
				for i := range b.N {
					if _, err := l.Admit(ctx, cj(fmt.Sprintf("b%d", i), "free")); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for range b.N {
					jobs, err := l.Claim(ctx, "q", node("n"), 1, time.Minute)
					if err != nil || len(jobs) != 1 {
						b.Fatalf("claim: %v, %v", ids(jobs), err)
					}
				}
			})
		}
	}
}

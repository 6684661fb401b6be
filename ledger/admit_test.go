package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

func TestLedgerAdmitsOneActiveJobPerID(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q", Args: []byte(`["ünïcödé"]`)})); err != nil {
			t.Fatal(err)
		}
		_, err := l.Admit(ctx, jb(sqljobber.Job{ID: "a", Task: "other", Queue: "q"}))
		var active *sqljobber.ActiveError
		if !errors.As(err, &active) || active.ID != "a" || active.State != sqljobber.StatePending {
			t.Fatalf("second admit: %v", err)
		}
		if got, err := l.Get(ctx, "a"); err != nil || got.Task != "t" {
			t.Fatalf("the refused admission changed the job: %+v, %v", got, err)
		}
		j, err := claimOne(l, "q", "n1", time.Minute)
		if err != nil || j == nil || j.ID != "a" || j.Attempt != 1 || j.State != sqljobber.StateStarted || string(j.Args) != `["ünïcödé"]` || len(j.RunID) != 16 {
			t.Fatalf("claim: %+v, %v", j, err)
		}
		if _, err := l.Finish(ctx, "a", j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 7}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Finish(ctx, "a", j.RunID, ledger.Outcome{State: sqljobber.StateFailure}); !errors.Is(err, ledger.ErrRunSuperseded) {
			t.Fatalf("second finish: %v", err)
		}
		// Finished: the ID is free again, and the new job starts afresh.
		j, err = l.Admit(ctx, jb(sqljobber.Job{ID: "a", Task: "other", Queue: "q"}))
		if err != nil || j.Task != "other" {
			t.Fatalf("re-admit: %+v, %v", j, err)
		}
		got, err := l.Get(ctx, "a")
		if err != nil || got.State != sqljobber.StatePending || got.Count != 0 || got.Attempt != 0 || got.RunID != "" {
			t.Fatalf("re-admitted job: %+v, %v", got, err)
		}
	})
}

// A job admitted already started (Ledger.Start) is a claimed one in all but
// the claim: it holds its ID, its fence grows with every run under the ID
// whichever way the run began, and its lease renews.
func TestLedgerStartAdmitsAndClaimsInOneWrite(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		before := l.clock.Now()
		j, err := l.Start(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q", Args: []byte(`[1]`)}), node("n1"), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Get(ctx, "a")
		if err != nil || got.State != sqljobber.StateStarted || got.RunID != j.RunID || len(got.RunID) != 16 || got.Node != "n1" ||
			got.Attempt != 1 || got.Fence != 1 || j.Fence != 1 || got.StartedAt.IsZero() || got.LeaseUntil.Before(before.Add(59*time.Second)) {
			t.Fatalf("started job %+v (returned fence %d), %v", got, j.Fence, err)
		}
		// It holds its ID, and no claim takes it again.
		_, err = l.Start(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}), node("n2"), time.Minute)
		var active *sqljobber.ActiveError
		if !errors.As(err, &active) || active.ID != "a" || active.State != sqljobber.StateStarted {
			t.Fatalf("second start: %v", err)
		}
		if got, err := l.Get(ctx, "a"); err != nil || got.RunID != j.RunID {
			t.Fatalf("the second start took the run: %+v, %v", got, err)
		}
		if c, err := claimOne(l, "q", "n2", time.Minute); c != nil || err != nil {
			t.Fatalf("claim took a started job: %+v, %v", c, err)
		}
		if alive, err := l.Renew(ctx, []ledger.JobRun{{JobID: j.ID, RunID: j.RunID}}, time.Hour); err != nil || !alive[j.RunID] {
			t.Fatalf("renew: %v, %v", alive, err)
		}
		if _, err := l.Finish(ctx, "a", j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}

		// Later runs under the ID, started either way, get later fences.
		j2, err := l.Start(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}), node("n1"), time.Minute)
		if err != nil || j2.Fence != 2 || j2.RunID == j.RunID {
			t.Fatalf("restart: %+v, %v", j2, err)
		}
		if _, err := l.Finish(ctx, "a", j2.RunID, ledger.Outcome{State: sqljobber.StateFailure}); err != nil {
			t.Fatal(err)
		}
		mustAdmit(t, l, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}))
		if c := mustClaim(t, l); c.Fence != 3 {
			t.Fatalf("claimed after starts: fence %d, want 3", c.Fence)
		}
	})
}

// A started admission does not hang on its caller: were it written with
// its answer lost to the caller's context, its job would hold the ID with
// nobody running it until its lease ran out.
func TestLedgerStartIsWrittenWhateverItsCallersContext(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		j, err := l.Start(ctx, jb(sqljobber.Job{ID: "gone", Task: "t", Queue: "q"}), node("n"), time.Minute)
		if err != nil {
			t.Fatalf("start with its caller gone: %v", err)
		}
		got, err := l.Get(context.Background(), "gone")
		if err != nil || got.State != sqljobber.StateStarted || got.RunID != j.RunID || got.Fence != j.Fence {
			t.Fatalf("started job %+v, returned %+v, %v", got, j, err)
		}
	})
}

// Starts and admissions written together (batched on PostgreSQL and
// MySQL) each come back with the fence their row holds.
func TestLedgerStartsAndAdmitsTogether(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const n = 24
		// Odd IDs have run once before.
		for i := 1; i < n; i += 2 {
			j, err := l.Start(ctx, jb(sqljobber.Job{ID: fmt.Sprintf("j%02d", i), Task: "t", Queue: "q"}), node("n"), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		fences := make([]int64, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				job := jb(sqljobber.Job{ID: fmt.Sprintf("j%02d", i), Task: "t", Queue: "q"})
				var j *ledger.Job
				var err error
				if i%4 < 2 {
					j, err = l.Start(ctx, job, node("n"), time.Minute)
				} else {
					j, err = l.Admit(ctx, job)
				}
				if err != nil {
					t.Error(err)
					return
				}
				fences[i] = j.Fence
			}()
		}
		wg.Wait()
		for i := range n {
			got, err := l.Get(ctx, fmt.Sprintf("j%02d", i))
			if err != nil {
				t.Fatal(err)
			}
			want, state := int64(i%2), sqljobber.StatePending
			if i%4 < 2 {
				want, state = want+1, sqljobber.StateStarted
			}
			if got.State != state || got.Fence != want || fences[i] != want && state == sqljobber.StateStarted {
				t.Errorf("%s: %s with fence %d (returned %d), want %s with fence %d", got.ID, got.State, got.Fence, fences[i], state, want)
			}
		}
	})
}

// TestConcurrentAdmissionsOfOneIDAdmitOne: admissions that arrive together
// (written in batches on PostgreSQL and MySQL) still admit exactly one job per ID and
// refuse the others with the job that holds it.
func TestConcurrentAdmissionsOfOneIDAdmitOne(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const ids, each = 40, 4
		var mu sync.Mutex
		admitted := map[string]int{}
		refused := map[string]int{}
		var wg sync.WaitGroup
		for i := range ids * each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("job-%d", i%ids)
				j, err := l.Admit(ctx, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q", Args: []byte(fmt.Sprintf(`[%d]`, i))}))
				var active *sqljobber.ActiveError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && j.ID == id && j.State == sqljobber.StatePending:
					admitted[id]++
				case errors.As(err, &active) && active.ID == id:
					refused[id]++
				default:
					t.Errorf("admit %s: %v, %v", id, j, err)
				}
			}()
		}
		wg.Wait()
		for i := range ids {
			id := fmt.Sprintf("job-%d", i)
			if admitted[id] != 1 || refused[id] != each-1 {
				t.Errorf("%s: admitted %d times, refused %d times; want 1 and %d", id, admitted[id], refused[id], each-1)
			}
		}
		pending, err := l.Pending(ctx, "q", 1000)
		if err != nil || len(pending) != ids {
			t.Fatalf("%d pending jobs (%v), want %d", len(pending), err, ids)
		}
	})
}

// TestAdmissionWaitingForALockHoldsUpNoOther: re-admitting a finished job
// whose row another transaction holds (a publication of its results, say)
// waits for that lock, and does not hold up other admissions meanwhile,
// whether they come alone or together (batched).
func TestAdmissionWaitingForALockHoldsUpNoOther(t *testing.T) {
	for _, dialect := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			l := openLedger(t, dialect, ledger.Config{})
			mustAdmit(t, l, jb(sqljobber.Job{ID: "x", Task: "t", Queue: "q"}))
			sqlexectest.Exec(t, l.db, "UPDATE sqljobber_jobs SET state = 'SUCCESS' WHERE job_id = 'x'")
			waiting, release := holdRow(t, l, "x")
			defer release()
			xDone := make(chan error, 1)
			go func() {
				_, err := l.Admit(ctx, jb(sqljobber.Job{ID: "x", Task: "t", Queue: "q"}))
				xDone <- err
			}()
			// x's admission waits for the lock before the others come.
			testwait.For(t, 10*time.Second, "x's admission to wait for its row", func() (bool, string) {
				n := waiting()
				select {
				case err := <-xDone:
					t.Fatalf("x's admission ended while its row was locked: %v", err)
				default:
				}
				return n > 0, fmt.Sprintf("%d sessions wait for the row's lock", n)
			})
			// Well under admitTimeout (30 s), over the batch's lock timeout (1 s).
			yctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := l.Admit(yctx, jb(sqljobber.Job{ID: fmt.Sprintf("y%d", i), Task: "t", Queue: "q"})); err != nil {
						t.Errorf("admitting y%d while x waits for its row: %v", i, err)
					}
				}()
			}
			wg.Wait()
			select {
			case err := <-xDone:
				t.Fatalf("x was admitted (%v) while its row was locked", err)
			default:
			}
			release()
			if err := <-xDone; err != nil {
				t.Fatalf("x, once its row was free: %v", err)
			}
		})
	}
}

// holdRow locks job id's row in a transaction of its own until release,
// and returns a count of the sessions waiting for a lock meanwhile.
func holdRow(t *testing.T, l *env, id string) (waiting func() int, release func()) {
	t.Helper()
	ctx := context.Background()
	if l.db.Dialect == sqlexec.Postgres {
		tx, err := l.db.Postgres().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var holder int
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid() FROM sqljobber_jobs WHERE job_id = $1 FOR UPDATE", id).Scan(&holder); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		return func() int {
				var n int
				if err := l.db.Postgres().QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", holder).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}, func() {
				once.Do(func() {
					if err := tx.Commit(ctx); err != nil {
						t.Error(err)
					}
				})
			}
	}
	tx, err := l.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var holder int64
	if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID() FROM sqljobber_jobs WHERE job_id = ? FOR UPDATE", id).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	return func() int {
			var n int
			// INNODB_TRX lags behind (it is a cache): the sessions whose
			// write to the ledger runs while the row is held are those
			// waiting for it.
			if err := l.db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> ? AND DB = DATABASE() AND INFO LIKE 'INSERT INTO `sqljobber_jobs`%'", holder).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}, func() {
			once.Do(func() {
				if err := tx.Commit(); err != nil {
					t.Error(err)
				}
			})
		}
}

// BenchmarkAdmit measures admissions that arrive together, as a burst of
// report requests does: 16 at a time, so that the drivers that batch them
// (PostgreSQL, MySQL) write several in each commit.
func BenchmarkAdmit(b *testing.B) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL, sqlexec.SQLite} {
		b.Run(string(d), func(b *testing.B) {
			l := openLedger(b, d, ledger.Config{})
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("b%d", next.Add(1))
					if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"})); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "admissions/s")
		})
	}
}

// TestABatchOfAdmissionsWritesNewAndFinishedIDs: a batch of new IDs is
// written whole; a batch that also holds the ID of a finished job (which
// it replaces, its fence token grown) and of an unfinished one (which it
// leaves alone) writes the first two and says so.
func TestABatchOfAdmissionsWritesNewAndFinishedIDs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		job := func(id string) ledger.Job { return jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"}) }
		written, ok, err := ledger.AdmitTogether(ctx, l.Ledger, []ledger.Job{job("n2"), job("n1"), job("n3")})
		if !ok {
			t.Skip("this ledger admits jobs one by one")
		}
		if err != nil || len(written) != 3 {
			t.Fatalf("new IDs: %v, %v", written, err)
		}
		for _, id := range []string{"n1", "n2", "n3"} {
			if j := mustGet(t, l, id); j.State != sqljobber.StatePending || written[id] != 0 {
				t.Errorf("%s: %s, fence %d", id, j.State, written[id])
			}
		}
		done := finish(t, l, "done", 0)
		mustAdmit(t, l, job("busy"))
		written, _, err = ledger.AdmitTogether(ctx, l.Ledger, []ledger.Job{job("busy"), job("done"), job("n4")})
		if err != nil {
			t.Fatal(err)
		}
		if len(written) != 2 || written["done"] != done.Fence {
			t.Fatalf("a batch with a finished and an unfinished ID: %v (the finished one's fence was %d)", written, done.Fence)
		}
		if j := mustGet(t, l, "done"); j.State != sqljobber.StatePending || j.Fence != done.Fence {
			t.Errorf("done: %s, fence %d", j.State, j.Fence)
		}
		if j := mustGet(t, l, "n4"); j.State != sqljobber.StatePending {
			t.Errorf("n4: %s", j.State)
		}
	})
}

// An admission that replaces a finished job says where that job's results
// were, where the ledger reports it (PostgreSQL): the node drops them
// without reading the job first. A new ID replaced nothing.
func TestLedgerAdmissionSaysWhatItReplaced(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		first := jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q", ResultsBackend: "one", ResultsTable: "results_a"})
		j, err := l.Admit(ctx, first)
		if err != nil || j.Replaced != nil {
			t.Fatalf("a new ID: %+v, %v", j.Replaced, err)
		}
		c, err := claimOne(l, "q", "n1", time.Minute)
		if err != nil || c == nil {
			t.Fatalf("claim: %v", err)
		}
		if _, err := l.Finish(ctx, "a", c.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 1}); err != nil {
			t.Fatal(err)
		}
		want := &ledger.Replaced{ResultsBackend: "one", ResultsTable: "results_a"}
		for i, admit := range []func(ledger.Job) (*ledger.Job, error){
			func(j ledger.Job) (*ledger.Job, error) { return l.Admit(ctx, j) },
			func(j ledger.Job) (*ledger.Job, error) { return l.Start(ctx, j, node("n1"), time.Minute) },
		} {
			next := jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q", ResultsBackend: "two", ResultsTable: "results_a"})
			j, err := admit(next)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !l.ReportsReplaced() && j.Replaced != nil:
				t.Fatalf("admission %d: replaced %+v, from a ledger that does not report it", i, j.Replaced)
			case l.ReportsReplaced() && (j.Replaced == nil || *j.Replaced != *want):
				t.Fatalf("admission %d: replaced %+v, want %+v", i, j.Replaced, want)
			case l.ReportsReplaced() && (j.Replaced.OwnTableOtherThan(want.ResultsBackend, want.ResultsTable) ||
				!j.Replaced.OwnTableOtherThan("elsewhere", want.ResultsTable)):
				t.Fatalf("admission %d: OwnTableOtherThan of %+v is wrong", i, j.Replaced)
			}
			// Finished again, by the run it started or by a claim's.
			if j.RunID == "" {
				if j, err = claimOne(l, "q", "n1", time.Minute); err != nil || j == nil {
					t.Fatalf("claim: %v", err)
				}
			}
			if _, err := l.Finish(ctx, "a", j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
				t.Fatal(err)
			}
			want = &ledger.Replaced{ResultsBackend: "two", ResultsTable: "results_a"}
		}
	})
}

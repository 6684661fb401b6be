package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

func TestLedgerClaimsFirstInFirstOutOnceEach(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const n = 40
		for i := range n {
			if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: fmt.Sprintf("j%02d", i), Task: "t", Queue: "q"})); err != nil {
				t.Fatal(err)
			}
			l.clock.Advance(time.Millisecond) // distinct enqueue times
		}
		// Other queues, held members and future jobs are not claimed.
		mustAdmit(t, l, jb(sqljobber.Job{ID: "other", Task: "t", Queue: "other"}))
		mustAdmit(t, l, heldJob(sqljobber.Job{ID: "held", Task: "t", Queue: "q"}))
		eta := l.clock.Now().Add(time.Hour)
		mustAdmit(t, l, jb(sqljobber.Job{ID: "later", Task: "t", Queue: "q", ETA: eta}))

		var (
			mu      sync.Mutex
			claimed []string
			wg      sync.WaitGroup
		)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					jobs, err := l.Claim(ctx, "q", node(fmt.Sprintf("w%d", w)), 1+w, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if len(jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range jobs {
						claimed = append(claimed, j.ID)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(claimed) != n {
			t.Fatalf("claimed %d jobs, want %d: %v", len(claimed), n, claimed)
		}
		seen := map[string]bool{}
		for _, id := range claimed {
			if seen[id] {
				t.Fatalf("job %s claimed twice", id)
			}
			seen[id] = true
		}
		next, ok, err := l.NextReady(ctx, "q")
		if err != nil || !ok || !next.Equal(eta) {
			t.Fatalf("next ready: %v %v %v, want %v", next, ok, err, eta)
		}
		pending, err := l.Pending(ctx, "q", 10)
		if err != nil || len(pending) != 2 || pending[0].ID != "later" || pending[1].ID != "held" {
			t.Fatalf("pending: %v, %v", ids(pending), err)
		}
	})
}

func TestLedgerOrderIsFIFOWithOneClaimer(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		var want []string
		for i := range 10 {
			id := fmt.Sprintf("f%d", 9-i) // IDs sort the other way round
			mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"}))
			want = append(want, id)
			l.clock.Advance(time.Millisecond)
		}
		var got []string
		for {
			// Three at a time, in order within a claim and across.
			jobs, err := l.Claim(ctx, "q", node("n"), 3, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				got = append(got, j.ID)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("claim order %v, want %v", got, want)
		}
	})
}

// TestLedgerClaimPassesOverTasks: a claim can pass over the jobs of some
// tasks (those at their -- conc: bound on the node); the others keep their
// order, and the passed-over jobs keep their place for a later claim.
func TestLedgerClaimPassesOverTasks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for i, task := range []string{"slow", "fast", "slow", "other", "fast"} {
			mustAdmit(t, l, jb(sqljobber.Job{ID: fmt.Sprintf("j%d", i), Task: task, Queue: "q"}))
			l.clock.Advance(time.Millisecond)
		}
		claim := func(except ...string) string {
			jobs, err := l.Claim(ctx, "q", node("n"), 10, time.Minute, except...)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Join(ids(jobs), ",")
		}
		if got := claim("slow", "nope"); got != "j1,j3,j4" {
			t.Fatalf("claim passing over slow: %s", got)
		}
		if got := claim(); got != "j0,j2" {
			t.Fatalf("the claim after: %s", got)
		}
	})
}

func TestLedgerRetryCancelAndRelease(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "r", Task: "t", Queue: "q", Retries: 1}))
		j := mustClaim(t, l)
		retryAt := l.clock.Now().Add(150 * time.Millisecond)
		if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateRetry, Error: "boom", RetryAt: retryAt}); err != nil {
			t.Fatal(err)
		}
		if j, _ := claimOne(l, "q", "n", time.Minute); j != nil {
			t.Fatal("a job was claimed before its retry time")
		}
		l.clock.Advance(150 * time.Millisecond)
		j = mustClaim(t, l)
		if j.Attempt != 2 || j.Error != "boom" {
			t.Fatalf("retried job: %+v", j)
		}

		// Released on shutdown: ready again, the attempt not counted.
		if err := l.Release(ctx, "r", j.RunID); err != nil {
			t.Fatal(err)
		}
		if j, _ := l.Get(ctx, "r"); j.State != sqljobber.StateRetry || j.Attempt != 1 {
			t.Fatalf("released job: %+v", j)
		}

		// Cancelling: a STARTED job, then a finished one.
		run := mustClaim(t, l).RunID
		prev, err := l.Cancel(ctx, "r")
		if err != nil || prev.State != sqljobber.StateStarted || prev.RunID != run {
			t.Fatalf("cancel: %+v, %v", prev, err)
		}
		if _, err := l.Finish(ctx, "r", run, ledger.Outcome{State: sqljobber.StateSuccess}); !errors.Is(err, ledger.ErrRunSuperseded) {
			t.Fatalf("finish after cancel: %v", err)
		}
		var finished *sqljobber.FinishedError
		if _, err := l.Cancel(ctx, "r"); !errors.As(err, &finished) || finished.State != sqljobber.StateCancelled {
			t.Fatalf("cancel a cancelled job: %v", err)
		}
		if _, err := l.Cancel(ctx, "nope"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("cancel unknown: %v", err)
		}
		if _, err := l.Delete(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Get(ctx, "r"); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("deleted job: %v", err)
		}
	})
}

// TestLedgerHandedBackJobsKeepTheirPlace: a job released by a stopping node,
// or whose run was lost with its node, goes back where it was in its queue,
// ahead of the jobs that came after it.
func TestLedgerHandedBackJobsKeepTheirPlace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for _, id := range []string{"first", "second"} {
			mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"}))
			l.clock.Advance(time.Millisecond)
		}
		first := mustClaim(t, l)
		second := mustClaim(t, l)
		l.clock.Advance(time.Second)
		for _, id := range []string{"later1", "later2"} {
			mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"}))
			l.clock.Advance(time.Millisecond)
		}
		if err := l.Release(ctx, first.ID, first.RunID); err != nil {
			t.Fatal(err)
		}
		if _, err := l.TakeOverNode(ctx, second.NodeID, 3); err != nil {
			t.Fatal(err)
		}
		var order []string
		for range 4 {
			order = append(order, mustClaim(t, l).ID)
		}
		if want := "first,second,later1,later2"; strings.Join(order, ",") != want {
			t.Fatalf("claimed %v, want %s", order, want)
		}
	})
}

// TestLedgerLostRunsDoNotSpendRetries: a run lost with its node (its node
// declared dead, a restart under its name, or its lease run out) is not the
// job's failure: the job runs again, its attempt not counted, even without
// retries; only a job that loses LostRunsMax runs fails. A lost run can no
// longer renew its lease, so it learns that it lost its job.
func TestLedgerLostRunsDoNotSpendRetries(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "lost", Task: "t", Queue: "q", Retries: 0}))
		claim := func(name string, lease time.Duration) *ledger.Job {
			t.Helper()
			j, err := claimOne(l, "q", name, lease)
			if err != nil || j == nil {
				t.Fatalf("claim: %v %v", j, err)
			}
			return j
		}
		check := func(how string, got []*ledger.Job, err error, state sqljobber.State, lostRuns int) {
			t.Helper()
			if err != nil || len(got) != 1 || got[0].ID != "lost" || got[0].State != state {
				t.Fatalf("%s: %v, %v", how, ids(got), err)
			}
			j, err := l.Get(ctx, "lost")
			if err != nil || j.State != state || j.LostRuns != lostRuns || j.Attempt != 0 && state != sqljobber.StateFailure {
				t.Fatalf("%s: the job is %+v, %v; want %s with %d lost runs", how, j, err, state, lostRuns)
			}
		}

		// Its node was declared dead.
		run := claim("dead", time.Minute)
		if other, err := l.TakeOverNode(ctx, "another-incarnation", 3); err != nil || len(other) != 0 {
			t.Fatalf("taking over another node's runs: %v, %v", ids(other), err)
		}
		got, err := l.TakeOverNode(ctx, run.NodeID, 3)
		check("its node died", got, err, sqljobber.StatePending, 1)
		if alive, err := l.Renew(ctx, []ledger.JobRun{{JobID: run.ID, RunID: run.RunID}}, time.Minute); err != nil || alive[run.RunID] {
			t.Fatalf("renew of a lost run: %v, %v", alive, err)
		}
		j, _ := l.Get(ctx, "lost")
		if !strings.Contains(j.Error, `lost with node "dead"`) {
			t.Fatalf("the lost run's error: %q", j.Error)
		}

		// Its node started again under its name, as another incarnation.
		claim("me", time.Minute)
		if got, err := l.TakeOverName(ctx, "me", node("me").ID, 3); err != nil || len(got) != 0 {
			t.Fatalf("a node took back its own live run: %v, %v", ids(got), err)
		}
		got, err = l.TakeOverName(ctx, "me", "me-2", 3)
		check("its node restarted", got, err, sqljobber.StatePending, 2)

		// Its lease ran out: the third lost run is one too many.
		claim("silent", time.Millisecond)
		if got, err := l.RecoverExpired(ctx, 3, 10); err != nil || len(got) != 0 {
			t.Fatalf("a run within its lease was taken: %v, %v", ids(got), err)
		}
		l.clock.Advance(5 * time.Millisecond)
		got, err = l.RecoverExpired(ctx, 3, 10)
		check("its lease ran out", got, err, sqljobber.StateFailure, 3)
		if j, _ := l.Get(ctx, "lost"); !strings.Contains(j.Error, "3 runs of this job were lost") || j.FinishedAt.IsZero() {
			t.Fatalf("the job that lost too many runs: %+v", j)
		}
	})
}

// A MySQL claim sent as scripts that fails after its pick locked its jobs,
// or in its pick, leaves them unlocked and unchanged: the transaction is
// rolled back, not left open on a pooled connection, and the next claim
// takes them.
func TestLedgerFailedScriptedClaimLocksNothing(t *testing.T) {
	l := openLedger(t, sqlexec.MySQL, ledger.Config{Clock: newTestClock()})
	if l.db.Scripts() == nil {
		t.Fatal("a MySQL results pool sends no scripts")
	}
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q"}))
	}
	for _, failPick := range []bool{false, true} {
		if err := ledger.FailingClaim(ctx, l.Ledger, "q", failPick); err == nil || !strings.Contains(err.Error(), "no_such_column") {
			t.Fatalf("a claim that fails (in its pick: %v): %v", failPick, err)
		}
	}
	// Locked, the rows would refuse this at once.
	tx, err := l.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT job_id FROM "+ledger.TableDefault+" WHERE state = 'PENDING' FOR UPDATE NOWAIT) AS locked").Scan(&n)
	if rerr := tx.Rollback(); err != nil || rerr != nil || n != 2 {
		t.Fatalf("the jobs after a failed claim: %d pending, %v, %v", n, err, rerr)
	}
	jobs, err := l.Claim(ctx, "q", node("n"), 10, time.Minute)
	if err != nil || len(jobs) != 2 || jobs[0].State != sqljobber.StateStarted {
		t.Fatalf("the claim after a failed one: %v, %v", jobs, err)
	}
}

package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// env is a ledger on a fresh database, with the clock it reads.
type env struct {
	*ledger.Ledger
	db    *sqlexec.DB
	clock *testClock
}

// openLedger migrates a ledger on a fresh database of dialect d.
func openLedger(t *testing.T, d sqlexec.Dialect, cfg ledger.Config) *env {
	t.Helper()
	return openLedgerOn(t, sqlexectest.Open(t, d, "ledger", sqlexec.OpenOptions{Results: true}), cfg)
}

// openLedgerOn migrates a ledger on db.
func openLedgerOn(t *testing.T, db *sqlexec.DB, cfg ledger.Config) *env {
	t.Helper()
	clock := newTestClock()
	cfg.Clock = clock
	l, err := ledger.New(db, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Twice: migration is idempotent.
	if err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{Ledger: l, db: db, clock: clock}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, l *env)) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		fn(t, openLedger(t, d, ledger.Config{}))
	})
}

// testClock is a ledger's clock that moves only when a test moves it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Now().UTC().Truncate(time.Microsecond)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d on.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jb is a job's record for an admission.
func jb(j sqljobber.Job) ledger.Job { return ledger.Job{Job: j} }

// heldJob is a group member's record, held back by its group.
func heldJob(j sqljobber.Job) ledger.Job { return ledger.Job{Job: j, Held: true} }

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
		if err := l.Finish(ctx, "a", j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 7}); err != nil {
			t.Fatal(err)
		}
		if err := l.Finish(ctx, "a", j.RunID, ledger.Outcome{State: sqljobber.StateFailure}); !errors.Is(err, ledger.ErrRunSuperseded) {
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
		j, err := l.Start(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q", Args: []byte(`[1]`)}), "n1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Get(ctx, "a")
		if err != nil || got.State != sqljobber.StateStarted || got.RunID != j.RunID || len(got.RunID) != 16 || got.Node != "n1" ||
			got.Attempt != 1 || got.Fence != 1 || j.Fence != 1 || got.StartedAt.IsZero() || got.LeaseUntil.Before(before.Add(59*time.Second)) {
			t.Fatalf("started job %+v (returned fence %d), %v", got, j.Fence, err)
		}
		// It holds its ID, and no claim takes it again.
		_, err = l.Start(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}), "n2", time.Minute)
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
		if alive, err := l.Renew(ctx, []string{j.RunID}, time.Hour); err != nil || !alive[j.RunID] {
			t.Fatalf("renew: %v, %v", alive, err)
		}
		if err := l.Finish(ctx, "a", j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}

		// Later runs under the ID, started either way, get later fences.
		j2, err := l.Start(ctx, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}), "n1", time.Minute)
		if err != nil || j2.Fence != 2 || j2.RunID == j.RunID {
			t.Fatalf("restart: %+v, %v", j2, err)
		}
		if err := l.Finish(ctx, "a", j2.RunID, ledger.Outcome{State: sqljobber.StateFailure}); err != nil {
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
		j, err := l.Start(ctx, jb(sqljobber.Job{ID: "gone", Task: "t", Queue: "q"}), "n", time.Minute)
		if err != nil {
			t.Fatalf("start with its caller gone: %v", err)
		}
		got, err := l.Get(context.Background(), "gone")
		if err != nil || got.State != sqljobber.StateStarted || got.RunID != j.RunID || got.Fence != j.Fence {
			t.Fatalf("started job %+v, returned %+v, %v", got, j, err)
		}
	})
}

// Starts and admissions written together (one batch on PostgreSQL) each
// come back with the fence their row holds.
func TestLedgerStartsAndAdmitsTogether(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		const n = 24
		// Odd IDs have run once before.
		for i := 1; i < n; i += 2 {
			j, err := l.Start(ctx, jb(sqljobber.Job{ID: fmt.Sprintf("j%02d", i), Task: "t", Queue: "q"}), "n", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
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
					j, err = l.Start(ctx, job, "n", time.Minute)
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
					jobs, err := l.Claim(ctx, "q", fmt.Sprintf("w%d", w), 1+w, time.Minute)
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
			jobs, err := l.Claim(ctx, "q", "n", 3, time.Minute)
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

func TestLedgerRetryCancelReleaseAndLostRuns(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "r", Task: "t", Queue: "q", Retries: 1}))
		j := mustClaim(t, l)
		retryAt := l.clock.Now().Add(150 * time.Millisecond)
		if err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateRetry, Error: "boom", RetryAt: retryAt}); err != nil {
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

		// A first run lost with its node (lease expired) runs again even
		// without retries; a second lost run fails the job.
		mustAdmit(t, l, jb(sqljobber.Job{ID: "lost", Task: "t", Queue: "q2"}))
		claimQ2 := func() string {
			j, err := claimOne(l, "q2", "dead-node", time.Millisecond)
			if err != nil || j == nil {
				t.Fatalf("claim: %v %v", j, err)
			}
			l.clock.Advance(5 * time.Millisecond)
			return j.RunID
		}
		lost1 := claimQ2()
		lost, err := l.RecoverLost(ctx, "")
		if err != nil || len(lost) != 1 || lost[0].ID != "lost" || lost[0].State != sqljobber.StateRetry {
			t.Fatalf("recover lost: %v, %v", ids(lost), err)
		}
		if j, _ := l.Get(ctx, "lost"); j.State != sqljobber.StateRetry || !strings.Contains(j.Error, `lost with node "dead-node"`) {
			t.Fatalf("recovered job: %+v", j)
		}
		if alive, err := l.Renew(ctx, []string{lost1}, time.Minute); err != nil || alive[lost1] {
			t.Fatalf("renew of a lost run: %v, %v", alive, err)
		}
		claimQ2()
		if lost, err := l.RecoverLost(ctx, ""); err != nil || len(lost) != 1 || lost[0].State != sqljobber.StateFailure {
			t.Fatalf("second lost run: %v, %v", ids(lost), err)
		}
		if j, _ := l.Get(ctx, "lost"); j.State != sqljobber.StateFailure || j.Attempt != 2 {
			t.Fatalf("job lost twice: %+v", j)
		}
		// A restarted node takes back its own runs at once.
		mustAdmit(t, l, jb(sqljobber.Job{ID: "mine", Task: "t", Queue: "q2"}))
		if j, err := claimOne(l, "q2", "me", time.Hour); err != nil || j == nil {
			t.Fatalf("claim: %v %v", j, err)
		}
		if lost, err := l.RecoverLost(ctx, "me"); err != nil || len(lost) != 1 || lost[0].ID != "mine" {
			t.Fatalf("recover own runs: %v, %v", ids(lost), err)
		}

		// Cancelling: a STARTED job, then a finished one.
		run4 := mustClaim(t, l).RunID
		prev, err := l.Cancel(ctx, "r")
		if err != nil || prev.State != sqljobber.StateStarted || prev.RunID != run4 {
			t.Fatalf("cancel: %+v, %v", prev, err)
		}
		if err := l.Finish(ctx, "r", run4, ledger.Outcome{State: sqljobber.StateSuccess}); !errors.Is(err, ledger.ErrRunSuperseded) {
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

func TestLedgerExpiry(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "e", Task: "t", Queue: "q", TTL: time.Second}))
		mustAdmit(t, l, jb(sqljobber.Job{ID: "k", Task: "t", Queue: "q"}))
		for range 2 {
			j := mustClaim(t, l)
			if err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, TTL: j.TTL}); err != nil {
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
		if err := l.Finish(ctx, "m1", j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
			t.Fatal(err)
		}
		released, err := l.ReleaseGroup(ctx, "g")
		if err != nil || len(released) != 1 || released[0].ID != "m2" {
			t.Fatalf("release after m1: %v, %v", ids(released), err)
		}
		if held, err := l.HeldGroups(ctx); err != nil || len(held) != 1 || held[0] != "g" {
			t.Fatalf("held groups: %v, %v", held, err)
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
				if err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess}); err != nil {
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

// finish runs a job of queue q to success, with ttl.
func finish(t *testing.T, l *env, id string, ttl time.Duration) *ledger.Job {
	t.Helper()
	ctx := context.Background()
	mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q", TTL: ttl}))
	j := mustClaim(t, l)
	if err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	j, err := l.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func mustDelete(t *testing.T, l *env, j *ledger.Job) {
	t.Helper()
	if ok, err := l.DeleteIfUnchanged(context.Background(), j); err != nil || !ok {
		t.Fatalf("delete %s: %v, %v", j.ID, ok, err)
	}
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
		if err := l.Finish(ctx, m.ID, m.RunID, ledger.Outcome{State: sqljobber.StateFailure}); err != nil {
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

func TestLedgerConfig(t *testing.T) {
	if _, err := ledger.New(nil, nil, ledger.Config{GoneRetention: -time.Second}); err == nil ||
		err.Error() != "gone_retention: must not be negative" {
		t.Fatalf("negative retention: %v", err)
	}
	c := ledger.Config{}.WithDefaults()
	if c.Table != "sqljobber_jobs" || c.GoneRetention != 7*24*time.Hour {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLedgerRefusesATableOfAnotherLayout(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			db := sqlexectest.Open(t, d, "ledger", sqlexec.OpenOptions{Results: true})
			sqlexectest.Exec(t, db, "CREATE TABLE sqljobber_jobs (job_id TEXT, state TEXT)")
			l, err := ledger.New(db, nil, ledger.Config{})
			if err == nil {
				err = l.Migrate(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), "exists without the columns this version needs") {
				t.Fatalf("err %v", err)
			}
		})
	}
}

func mustAdmit(t *testing.T, l *env, j ledger.Job) {
	t.Helper()
	if _, err := l.Admit(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

// claimOne claims at most one job of queue.
func claimOne(l *env, queue, node string, lease time.Duration) (*ledger.Job, error) {
	jobs, err := l.Claim(context.Background(), queue, node, 1, lease)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return jobs[0], nil
}

func mustClaim(t *testing.T, l *env) *ledger.Job {
	t.Helper()
	j, err := claimOne(l, "q", "n", time.Minute)
	if err != nil || j == nil {
		t.Fatalf("claim: %+v, %v", j, err)
	}
	return j
}

func ids(jobs []*ledger.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	if out == nil {
		return []string{}
	}
	sort.SliceStable(out, func(i, j int) bool { return false })
	return out
}

// TestLedgerQueriesReadTheirPartialIndexes: the ledger keeps finished
// jobs until their TTL, often millions of them, most in no group and many
// without expiry; picking the next jobs to claim, a group's jobs and the
// expired jobs must each read the index that holds only those rows, not
// scan the table.
func TestLedgerQueriesReadTheirPartialIndexes(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := openLedger(t, d, ledger.Config{})
			for i := range 300 {
				if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: fmt.Sprintf("done-%d", i), Task: "t", Queue: "q"})); err != nil {
					t.Fatal(err)
				}
			}
			sqlexectest.Exec(t, l.db, "UPDATE sqljobber_jobs SET state = 'SUCCESS'")
			// Thirty times as many, so that reading the whole table is
			// clearly the planners' worse choice.
			copyJobs(t, l.db, 30, "state")
			if _, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Concurrency: 1, JobIDs: []string{"g1", "g2"}},
				[]ledger.Job{jb(sqljobber.Job{ID: "g1", Task: "t", Queue: "other", GroupID: "g"}), heldJob(sqljobber.Job{ID: "g2", Task: "t", Queue: "other", GroupID: "g"})}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: "waiting", Task: "t", Queue: "q"})); err != nil {
				t.Fatal(err)
			}
			sqlexectest.Exec(t, l.db, "ANALYZE")
			plans, err := ledger.Plans(ctx, l.Ledger, "q", "g")
			if err != nil {
				t.Fatal(err)
			}
			for name, index := range map[string]string{"claim": "sqljobber_jobs_pending", "group": "sqljobber_jobs_grouped", "expired": "sqljobber_jobs_expiring"} {
				if !strings.Contains(plans[name], index) {
					t.Errorf("the %s query does not read %s:\n%s", name, index, plans[name])
				}
			}
			if j, err := claimOne(l, "q", "n1", time.Minute); err != nil || j == nil || j.ID != "waiting" {
				t.Fatalf("claimed %v, %v; want the waiting job", j, err)
			}
		})
	}
}

// TestConcurrentAdmissionsOfOneIDAdmitOne: admissions that arrive together
// (written in batches on PostgreSQL) still admit exactly one job per ID and
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

// TestMigrateReplacesTheIndexesOfALedgerInUse: a ledger made by an earlier
// version (with _ready, _group and _expiry), holding jobs, gets the partial
// indexes and loses those; an invalid index (an interrupted concurrent
// build) is built again.
func TestMigrateReplacesTheIndexesOfALedgerInUse(t *testing.T) {
	ctx := context.Background()
	l := openLedger(t, sqlexec.Postgres, ledger.Config{})
	mustAdmit(t, l, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}))
	// Enough finished jobs that an index build takes a while.
	copyJobs(t, l.db, 50000, "'SUCCESS'")
	indexes := func() string {
		rows, err := l.db.Postgres().Query(ctx, `SELECT c.relname || ':' || i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE c.relnamespace = current_schema()::regnamespace AND i.indrelid = 'sqljobber_jobs'::regclass AND NOT i.indisprimary ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, " ")
	}
	for _, setup := range []string{
		`DROP INDEX sqljobber_jobs_pending, sqljobber_jobs_grouped, sqljobber_jobs_expiring;
	CREATE INDEX sqljobber_jobs_ready ON sqljobber_jobs (queue, state, held, ready_at);
	CREATE INDEX sqljobber_jobs_group ON sqljobber_jobs (group_id); CREATE INDEX sqljobber_jobs_expiry ON sqljobber_jobs (expires_at)`,
		"UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'sqljobber_jobs_pending'::regclass",
	} {
		if _, err := l.db.Postgres().Exec(ctx, setup); err != nil {
			t.Fatal(err)
		}
		// Every node of a cluster migrates as it starts, maybe at once.
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			node, err := ledger.New(l.db, nil, ledger.Config{})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- node.Migrate(ctx)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("after %q: %v", setup, err)
			}
		}
		if got := indexes(); got != "sqljobber_jobs_expiring:true sqljobber_jobs_grouped:true sqljobber_jobs_pending:true" {
			t.Fatalf("after %q, indexes %q; want the valid partial ones alone", setup, got)
		}
	}
	if j, err := claimOne(l, "q", "n1", time.Minute); err != nil || j == nil || j.ID != "a" {
		t.Fatalf("claimed %v, %v", j, err)
	}
}

// TestAdmissionWaitingForALockHoldsUpNoOther: re-admitting a finished job
// whose row another transaction holds (a publication of its results, say)
// waits for that lock, and does not hold up other admissions meanwhile.
func TestAdmissionWaitingForALockHoldsUpNoOther(t *testing.T) {
	ctx := context.Background()
	l := openLedger(t, sqlexec.Postgres, ledger.Config{})
	mustAdmit(t, l, jb(sqljobber.Job{ID: "x", Task: "t", Queue: "q"}))
	sqlexectest.Exec(t, l.db, "UPDATE sqljobber_jobs SET state = 'SUCCESS' WHERE job_id = 'x'")
	tx, err := l.db.Postgres().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var holder int
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid() FROM sqljobber_jobs WHERE job_id = 'x' FOR UPDATE").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			_ = tx.Rollback(ctx)
		}
	}()
	xDone := make(chan error, 1)
	go func() {
		_, err := l.Admit(ctx, jb(sqljobber.Job{ID: "x", Task: "t", Queue: "q"}))
		xDone <- err
	}()
	// x's admission waits for the lock before y's comes.
	testwait.For(t, 10*time.Second, "x's admission to wait for its row", func() (bool, string) {
		var waiting int
		if err := l.db.Postgres().QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", holder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting > 0, fmt.Sprintf("%d sessions wait for the row's lock", waiting)
	})
	// Well under admitTimeout (30 s), over the batch's lock timeout (1 s).
	yctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := l.Admit(yctx, jb(sqljobber.Job{ID: "y", Task: "t", Queue: "q"})); err != nil {
		t.Fatalf("admitting y while x waits for its row: %v", err)
	}
	select {
	case err := <-xDone:
		t.Fatalf("x was admitted (%v) while its row was locked", err)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	locked = false
	if err := <-xDone; err != nil {
		t.Fatalf("x, once its row was free: %v", err)
	}
}

// countRows counts the rows of table.
func countRows(ctx context.Context, db *sqlexec.DB, table string) (int64, error) {
	var n int64
	err := db.Querier().Query(ctx, "SELECT COUNT(*) FROM "+table, func(scan func(...any) error) error { return scan(&n) })
	return n, err
}

// copyJobs adds n copies of every job in the ledger, with IDs of their own
// and state (an SQL expression over the copied row).
func copyJobs(t *testing.T, db *sqlexec.DB, n int, state string) {
	t.Helper()
	sqlexectest.Exec(t, db, fmt.Sprintf(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %d)
	INSERT INTO sqljobber_jobs (job_id, task, queue, state, args, db, group_id, retries, ttl_seconds, results_backend, results_table,
		count, error, attempt, run_id, node, fence, held, enqueued_at, ready_at, created_at, updated_at)
	SELECT job_id || '-' || n, task, queue, %s, args, db, group_id, retries, ttl_seconds, results_backend, results_table,
		count, error, attempt, run_id, node, fence, held, enqueued_at, ready_at, created_at, updated_at FROM sqljobber_jobs, g`, n, state))
}

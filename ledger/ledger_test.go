package ledger_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
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
func openLedger(t testing.TB, d sqlexec.Dialect, cfg ledger.Config) *env {
	t.Helper()
	return openLedgerOn(t, sqlexectest.Open(t, d, "ledger", sqlexec.OpenOptions{Results: true}), cfg)
}

// openLedgerOn migrates a ledger on db.
func openLedgerOn(t testing.TB, db *sqlexec.DB, cfg ledger.Config) *env {
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

// node is a node of worker name name, in its one incarnation here.
func node(name string) ledger.Node { return ledger.Node{Name: name, ID: name + "-1"} }

// jb is a job's record for an admission.
func jb(j sqljobber.Job) ledger.Job { return ledger.Job{Job: j} }

// heldJob is a group member's record, held back by its group.
func heldJob(j sqljobber.Job) ledger.Job { return ledger.Job{Job: j, Held: true} }

// finish runs a job of queue q to success, with ttl.
func finish(t *testing.T, l *env, id string, ttl time.Duration) *ledger.Job {
	t.Helper()
	ctx := context.Background()
	mustAdmit(t, l, jb(sqljobber.Job{ID: id, Task: "t", Queue: "q", TTL: ttl}))
	j := mustClaim(t, l)
	if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, TTL: ttl}); err != nil {
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

func mustAdmit(t *testing.T, l *env, j ledger.Job) {
	t.Helper()
	if _, err := l.Admit(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

// claimOne claims at most one job of queue.
func claimOne(l *env, queue, name string, lease time.Duration) (*ledger.Job, error) {
	jobs, err := l.Claim(context.Background(), queue, node(name), 1, lease)
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

// countRows counts the rows of table.
func countRows(ctx context.Context, db *sqlexec.DB, table string) (int64, error) {
	var n int64
	err := db.Querier().Query(ctx, "SELECT COUNT(*) FROM "+table, func(scan func(...any) error) error { return scan(&n) })
	return n, err
}

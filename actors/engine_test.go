package actors_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/cluster"
	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/retry"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

func TestMain(m *testing.M) {
	os.Exit(clustertest.CheckLeaks(m.Run()))
}

// tasks are the tasks of a test engine, on its source "src", which has an
// entries table of three rows.
const tasks = `
-- name: count
SELECT COUNT(*) AS n FROM entries;

-- name: one_at_a_time
-- conc: 1
SELECT COUNT(*) AS n FROM entries;

-- name: cached
-- cache: 1h
SELECT COUNT(*) AS n FROM entries WHERE id >= ?;
`

// env is an engine running alone on SQLite databases: a source, and a
// results database that also keeps the ledger. Its results backend lets
// writes through only when the test says (gatedResults).
type env struct {
	t      *testing.T
	engine *actors.Engine
	ledger *ledger.Ledger
	res    *gatedResults
	node   *cluster.Node
}

// stores are the databases of test engines: a source, and a results
// database that also keeps the ledger. Engines started on the same stores
// share the ledger, as the nodes of a cluster do.
type stores struct {
	reg     *sqlexec.Registry
	backend *resultsink.Backend
	ledger  *ledger.Ledger
	reader  *resultsink.Reader
	// wrap, if set, is what the engine gets in place of the ledger.
	wrap func(actors.Ledger) actors.Ledger
}

func newStores(t *testing.T) *stores {
	t.Helper()
	ctx := context.Background()
	src := sqlexectest.Open(t, sqlexec.SQLite, "src", sqlexec.OpenOptions{})
	sqlexectest.Exec(t, src, "CREATE TABLE entries (id INTEGER PRIMARY KEY, amount DECIMAL_TEXT(12,2))")
	sqlexectest.Exec(t, src, "INSERT INTO entries VALUES (1, '10.50'), (2, '20.25'), (3, '1.00')")
	backend, err := resultsink.Open(ctx, resultsink.Config{DBConfig: sqlexec.DBConfig{Name: "res", Type: sqlexec.SQLite, DSN: sqlexectest.DSN(t, sqlexec.SQLite)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	l, err := ledger.New(backend.DB(), backend.Durable(), ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	parsed, _, err := sqlexec.ParseTasks("tasks.sql", []byte(tasks))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := sqlexec.NewRegistry(parsed, []*sqlexec.DB{src}, []string{"res"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := resultsink.NewReader([]*resultsink.Backend{backend}, resultsink.ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &stores{reg: reg, backend: backend, ledger: l, reader: reader}
}

// startEngine starts an engine with cfg (NodeName and PollInterval have
// defaults of their own) on stores of its own, stopped at the end of the
// test.
func startEngine(t *testing.T, cfg actors.Config) *env {
	t.Helper()
	e, err := newStores(t).start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// start starts an engine with cfg on s, alone on a cluster node of its own,
// stopped at the end of the test, and returns the engine's start error.
func (s *stores) start(t *testing.T, cfg actors.Config) (*env, error) {
	t.Helper()
	ctx := context.Background()
	res := newGatedResults(s.backend)
	t.Cleanup(res.open)
	cfg.NodeName = cmp.Or(cfg.NodeName, "n1")
	cfg.PollInterval = cmp.Or(cfg.PollInterval, 50*time.Millisecond)
	var l actors.Ledger = s.ledger
	if s.wrap != nil {
		l = s.wrap(l)
	}
	e, err := actors.NewEngine(l, s.reg, map[string]actors.Results{"res": res}, s.reader, cfg)
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.NewNode(cluster.Config{Kinds: e.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Stop)
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Before node.Stop (cleanups run last first), after res.open: a run
	// stopped by the engine hands its job back.
	t.Cleanup(e.Stop)
	return &env{t: t, engine: e, ledger: s.ledger, res: res, node: node}, e.Start(ctx, node)
}

// gatedResults is the real results backend, whose writes wait until the
// test lets them through: it holds runs in their slots for as long as a
// test needs, and records which ran at once.
type gatedResults struct {
	actors.Results
	tokens   chan struct{} // a token lets one write through
	opened   chan struct{} // closed: every write goes through
	openOnce sync.Once

	mu      sync.Mutex
	running int
	peak    int
	began   []string // the tables whose writes began, in order
}

func newGatedResults(r actors.Results) *gatedResults {
	return &gatedResults{Results: r, tokens: make(chan struct{}, 1000), opened: make(chan struct{})}
}

func (g *gatedResults) Write(ctx context.Context, table, runID string, rows sqlexec.Rows, fence resultsink.Fence) (int64, bool, error) {
	g.mu.Lock()
	g.running++
	g.peak = max(g.peak, g.running)
	g.began = append(g.began, table)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	select {
	case <-g.tokens:
	case <-g.opened:
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
	return g.Results.Write(ctx, table, runID, rows, fence)
}

// release lets n writes through.
func (g *gatedResults) release(n int) {
	for range n {
		g.tokens <- struct{}{}
	}
}

// open lets every write through from now on.
func (g *gatedResults) open() { g.openOnce.Do(func() { close(g.opened) }) }

// state is how many writes are under way, the most there were at once, and
// the tables whose writes began, in order.
func (g *gatedResults) state() (running, peak int, began []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.peak, slices.Clone(g.began)
}

// submit submits a job of task count under id.
func (e *env) submit(id string) {
	e.t.Helper()
	if _, err := e.engine.Submit(context.Background(), actors.SubmitRequest{JobID: id, Task: "count"}); err != nil {
		e.t.Fatalf("submit %s: %v", id, err)
	}
}

// eventually waits for cond, failing the test with what and cond's last
// state after within.
func (e *env) eventually(what string, within time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var state string
	err := retry.Do(ctx, retry.Backoff{First: time.Millisecond, Max: 50 * time.Millisecond}, func(context.Context) (bool, error) {
		var ok bool
		ok, state = cond()
		return ok, nil
	})
	if err != nil {
		e.t.Fatalf("%s: not after %v: %s", what, within, state)
	}
}

// states waits until the jobs' states are want, in order.
func (e *env) states(want []sqljobber.State, ids ...string) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("jobs %v %v", ids, want), 30*time.Second, func() (bool, string) {
		var got []sqljobber.State
		for _, id := range ids {
			j, err := e.engine.Job(context.Background(), id)
			if err != nil {
				return false, err.Error()
			}
			got = append(got, j.State)
		}
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}

// submitGroupOfThree submits group g of members m1, m2 and m3, of
// concurrency 1, and waits for m1 to start.
func (e *env) submitGroupOfThree() {
	e.t.Helper()
	one := 1
	_, err := e.engine.SubmitGroup(context.Background(), actors.GroupRequest{GroupID: "g", Concurrency: &one,
		Jobs: []actors.SubmitRequest{{JobID: "m1", Task: "count"}, {JobID: "m2", Task: "count"}, {JobID: "m3", Task: "count"}}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.states([]sqljobber.State{sqljobber.StateStarted, sqljobber.StatePending, sqljobber.StatePending}, "m1", "m2", "m3")
}

// writing waits until the runs of jobs ids are writing their results (held
// by the gate): they are running, not only recorded STARTED.
func (e *env) writing(ids ...string) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("runs of %v writing", ids), 30*time.Second, func() (bool, string) {
		_, _, began := e.res.state()
		for _, id := range ids {
			if !slices.Contains(began, "results_"+id) {
				return false, fmt.Sprint(began)
			}
		}
		return true, ""
	})
}

func repeat(s sqljobber.State, n int) []sqljobber.State {
	out := make([]sqljobber.State, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestATaskRunsNoMoreJobsThanItsConc: a task tagged -- conc: 1 runs one job
// at a time on the node, however many slots its queue has free, whether
// its jobs would start as they are admitted or be claimed; the queue's
// other jobs do not wait behind them, and its own run in order.
func TestATaskRunsNoMoreJobsThanItsConc(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 3}})
	ctx := context.Background()
	for _, id := range []string{"b1", "b2", "c1", "b3", "c2"} {
		task := "one_at_a_time"
		if id[0] == 'c' {
			task = "count"
		}
		if _, err := e.engine.Submit(ctx, actors.SubmitRequest{JobID: id, Task: task}); err != nil {
			t.Fatalf("submit %s: %v", id, err)
		}
	}
	e.writing("b1", "c1", "c2")
	e.states([]sqljobber.State{sqljobber.StateStarted, sqljobber.StatePending, sqljobber.StatePending}, "b1", "b2", "b3")
	e.res.open()
	e.states(repeat(sqljobber.StateSuccess, 5), "b1", "b2", "b3", "c1", "c2")
	var prev *sqljobber.Job
	for _, id := range []string{"b1", "b2", "b3"} {
		j, err := e.engine.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Attempt != 1 {
			t.Errorf("%s ran %d times", id, j.Attempt)
		}
		if prev != nil && j.StartedAt.Before(prev.FinishedAt) {
			t.Errorf("%s started at %v, before %s finished at %v", id, j.StartedAt, prev.ID, prev.FinishedAt)
		}
		prev = j
	}
}

// TestQueueRunsNoMoreJobsThanItsSlots: a queue of two slots runs two jobs
// at once, whether they started as they were admitted (the queue was idle)
// or were claimed later; the others wait their turn, first in, first out.
func TestQueueRunsNoMoreJobsThanItsSlots(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 2}})
	ids := []string{"j0", "j1", "j2", "j3", "j4"}
	for _, id := range ids {
		e.submit(id)
	}
	e.states(append(repeat(sqljobber.StateStarted, 2), repeat(sqljobber.StatePending, 3)...), ids...)
	pending, err := e.engine.Queue(context.Background(), "default")
	if err != nil || len(pending) != 3 || pending[0].ID != "j2" || pending[2].ID != "j4" {
		t.Fatalf("queue listing: %v, %v", pending, err)
	}
	for done := 1; done <= len(ids); done++ {
		// The runs claimed so far have reached their write before one is
		// let go: a run claimed earlier but slower to get there would
		// otherwise seem to have begun after the next one.
		e.writing(ids[:min(done+1, len(ids))]...)
		e.res.release(1)
		e.eventually(fmt.Sprintf("%d jobs done", done), 30*time.Second, func() (bool, string) {
			n := 0
			for _, id := range ids {
				if j, err := e.engine.Job(context.Background(), id); err == nil && j.State == sqljobber.StateSuccess {
					n++
				}
			}
			return n == done, fmt.Sprintf("%d done", n)
		})
	}
	_, peak, began := e.res.state()
	if peak != 2 {
		t.Errorf("%d jobs ran at once, want the queue's 2 slots", peak)
	}
	// j0 and j1 ran at once from the start, so either may have begun
	// first; the others, one at a time, in the order they were submitted.
	if len(began) == len(ids) {
		slices.Sort(began[:2])
	}
	if want := []string{"results_j0", "results_j1", "results_j2", "results_j3", "results_j4"}; !slices.Equal(began, want) {
		t.Errorf("jobs began %v, want %v", began, want)
	}
	j, err := e.engine.Job(context.Background(), "j4")
	if err != nil || j.Count != 1 || j.Attempt != 1 {
		t.Fatalf("a job that waited its turn: %+v, %v", j, err)
	}
}

// countedClaims is a ledger that counts its claims.
type countedClaims struct {
	actors.Ledger
	n atomic.Int64
}

func (c *countedClaims) Claim(ctx context.Context, queue string, node ledger.Node, n int, lease time.Duration, except ...string) ([]*ledger.Job, error) {
	c.n.Add(1)
	return c.Ledger.Claim(ctx, queue, node, n, lease, except...)
}

// TestScheduledJobsWakeTheirQueueAtTheirETA: a burst of jobs scheduled for
// later has the queue claim nothing meanwhile (a wake for each admission
// found nothing ready, on every member, and read when the next was due),
// and the queue takes them at their ETA, with no poll to find them (the
// poll here is an hour apart).
func TestScheduledJobsWakeTheirQueueAtTheirETA(t *testing.T) {
	s := newStores(t)
	counted := &countedClaims{}
	s.wrap = func(l actors.Ledger) actors.Ledger { counted.Ledger = l; return counted }
	e, err := s.start(t, actors.Config{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// The queue's first claim, as it starts, finds nothing.
	e.eventually("the queue's first claim", 30*time.Second, func() (bool, string) {
		return counted.n.Load() > 0, "no claim"
	})
	before := counted.n.Load()
	eta := time.Now().Add(time.Second).Truncate(time.Millisecond)
	ids := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"}
	for _, id := range ids {
		if _, err := e.engine.Submit(context.Background(), actors.SubmitRequest{JobID: id, Task: "count", ETA: eta}); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.n.Load() - before; n > 0 && time.Now().Before(eta) {
		t.Errorf("%d claims while %d jobs were scheduled for later", n, len(ids))
	}
	e.res.open()
	e.states(repeat(sqljobber.StateSuccess, len(ids)), ids...)
	for _, id := range ids {
		j, err := e.engine.Job(context.Background(), id)
		if err != nil || j.StartedAt.Before(eta) {
			t.Fatalf("job %s: %+v, %v; want it started at its ETA, %v", id, j, err, eta)
		}
	}
}

// TestDrainWaitsForRunningJobsAndStopHandsThemBack: a draining node takes
// no new job and waits for its runs; a run still going when the engine
// stops goes back to the ledger, ready to run again, its attempt not
// counted.
func TestDrainWaitsForRunningJobsAndStopHandsThemBack(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 1}})
	e.submit("running")
	e.writing("running")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if e.engine.Drain(ctx) {
		t.Fatal("drain says every run finished while one was held")
	}
	_, err := e.engine.Submit(context.Background(), actors.SubmitRequest{JobID: "late", Task: "count"})
	if !errors.Is(err, sqljobber.ErrStopping) {
		t.Fatalf("a submission while draining: %v, want ErrStopping", err)
	}
	if err := e.engine.Joined(); !errors.Is(err, sqljobber.ErrStopping) {
		t.Fatalf("a draining node says it takes jobs: %v", err)
	}

	e.engine.Stop()
	j, err := e.ledger.Get(context.Background(), "running")
	if err != nil || j.State != sqljobber.StatePending || j.Attempt != 0 || j.Node != "n1" {
		t.Fatalf("a run the stop cut off: %+v, %v; want it PENDING again, attempt 0", j, err)
	}
	if running, _, _ := e.res.state(); running != 0 {
		t.Fatalf("%d writes still under way after Stop", running)
	}
}

func TestDrainEndsWhenTheRunsFinish(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 1}})
	e.submit("a")
	e.writing("a")
	e.res.release(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !e.engine.Drain(ctx) {
		t.Fatal("drain timed out with its one run released")
	}
	e.states([]sqljobber.State{sqljobber.StateSuccess}, "a")
}

// TestGroupRunsItsMembersInTurn: a group of concurrency 1 runs one member
// at a time, in the order submitted, however many slots the queue has.
func TestGroupRunsItsMembersInTurn(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 3}})
	e.submitGroupOfThree()
	e.res.open()
	e.states(repeat(sqljobber.StateSuccess, 3), "m1", "m2", "m3")
	g, err := e.engine.Group(context.Background(), "g")
	if err != nil || g.State != sqljobber.StateSuccess || len(g.Jobs) != 3 {
		t.Fatalf("group: %+v, %v", g, err)
	}
	if _, peak, began := e.res.state(); peak != 1 || !slices.Equal(began, []string{"results_m1", "results_m2", "results_m3"}) {
		t.Fatalf("members ran %d at once, in the order %v", peak, began)
	}
}

// TestGroupConcurrencyIsBounded: a concurrency beyond
// MaxGroupConcurrency is refused naming it, and nothing is recorded; it
// was truncated to 32 bits (2147483648 became -2147483648).
func TestGroupConcurrencyIsBounded(t *testing.T) {
	e := startEngine(t, actors.Config{})
	for _, c := range []int{0, actors.MaxGroupConcurrency + 1, 1 << 31} {
		_, err := e.engine.SubmitGroup(context.Background(), actors.GroupRequest{GroupID: "g", Concurrency: &c,
			Jobs: []actors.SubmitRequest{{JobID: "m1", Task: "count"}}})
		var invalid *sqljobber.InvalidError
		if !errors.As(err, &invalid) || invalid.Field != "concurrency" {
			t.Errorf("concurrency %d: %v", c, err)
		}
	}
	if _, err := e.engine.Group(context.Background(), "g"); !errors.Is(err, sqljobber.ErrGroupNotFound) {
		t.Fatalf("a refused group was recorded: %v", err)
	}
}

// TestCancelledGroupStartsNothingMoreAndTellsItsMembersWaiters: cancelling a
// group stops its running member and cancels the held ones, which never
// start; a client waiting on a member hears of it at once, not at the end
// of its wait.
func TestCancelledGroupStartsNothingMoreAndTellsItsMembersWaiters(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 3}})
	e.submitGroupOfThree()
	waited := make(chan error, 1)
	go func() { _, err := e.engine.WaitJob(context.Background(), "m2", time.Minute); waited <- err }()
	// The wait has reached m2's grain once the grain holds a waiter.
	e.eventually("a waiter on m2", 30*time.Second, func() (bool, string) {
		return e.engine.ActiveGrains() >= 2, fmt.Sprintf("%d grains", e.engine.ActiveGrains())
	})

	if err := e.engine.CancelGroup(context.Background(), "g", false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("the wait on m2: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the wait on a cancelled member did not end with the cancel")
	}
	e.states(repeat(sqljobber.StateCancelled, 3), "m1", "m2", "m3")
	e.res.open()
	// The queue goes on, and claims none of them.
	e.submit("after")
	e.states([]sqljobber.State{sqljobber.StateSuccess}, "after")
	if _, _, began := e.res.state(); !slices.Equal(began, []string{"results_m1", "results_after"}) {
		t.Fatalf("runs after the cancel: %v", began)
	}
	for _, id := range []string{"m2", "m3"} {
		if j, err := e.engine.Job(context.Background(), id); err != nil || j.Attempt != 0 || j.State != sqljobber.StateCancelled {
			t.Fatalf("held member %s: %+v, %v", id, j, err)
		}
	}
	g, err := e.engine.Group(context.Background(), "g")
	if err != nil || g.State != sqljobber.StateCancelled {
		t.Fatalf("group: %+v, %v", g, err)
	}
	if err := e.engine.CancelGroup(context.Background(), "g", true); err != nil {
		t.Fatalf("purge: %v", err)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		if _, err := e.engine.Job(context.Background(), id); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("%s after the purge: %v", id, err)
		}
	}
	if _, err := e.engine.Group(context.Background(), "g"); !errors.Is(err, sqljobber.ErrGroupNotFound) {
		t.Fatalf("group after the purge: %v", err)
	}
}

// TestResultsOfJobsInEachState: a job's results are read once it succeeded;
// before, the error says why not; after a purge, that they are gone.
func TestResultsOfJobsInEachState(t *testing.T) {
	e := startEngine(t, actors.Config{Queues: map[string]int{"default": 1}})
	ctx := context.Background()
	if _, err := e.engine.Results(ctx, "nope", resultsink.Query{}); !errors.Is(err, sqljobber.ErrJobNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	e.submit("a")
	e.states([]sqljobber.State{sqljobber.StateStarted}, "a")
	var notReady *sqljobber.NotReadyError
	if _, err := e.engine.Results(ctx, "a", resultsink.Query{}); !errors.As(err, &notReady) || notReady.State != sqljobber.StateStarted {
		t.Fatalf("running job: %v", err)
	}
	e.res.open()
	e.states([]sqljobber.State{sqljobber.StateSuccess}, "a")
	p, err := e.engine.Results(ctx, "a", resultsink.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var n any
	if !p.Rows.Next() {
		t.Fatalf("no row: %v", p.Rows.Err())
	}
	n = p.Rows.Values()[0]
	if err := p.Close(); err != nil || n != int64(3) {
		t.Fatalf("count: %v, %v", n, err)
	}
	if err := e.engine.Cancel(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	var gone *sqljobber.GoneError
	if _, err := e.engine.Results(ctx, "a", resultsink.Query{}); !errors.As(err, &gone) || gone.Reason != sqljobber.GonePurged {
		t.Fatalf("purged job: %v", err)
	}
}

// TestClusterAWorkerNameHasOneLiveHolder: a node whose worker name a live node
// holds does not start, and says who holds it; once that node has stopped,
// or when nothing listens at its address any more (it died), the name is
// free.
func TestClusterAWorkerNameHasOneLiveHolder(t *testing.T) {
	s := newStores(t)
	first, err := s.start(t, actors.Config{NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.start(t, actors.Config{NodeName: "n1"})
	if err == nil || !strings.Contains(err.Error(), `worker name "n1" is held by a live node`) || !strings.Contains(err.Error(), first.node.Address()) {
		t.Fatalf("a second node named n1: %v", err)
	}
	n2, err := s.start(t, actors.Config{NodeName: "n2"})
	if err != nil {
		t.Fatalf("a node of another name: %v", err)
	}
	// n2 may be the one to take back the dead node's run.
	n2.res.open()

	// A crash: the run stays STARTED, the name held, but nothing
	// listens at the dead node's address.
	first.submit("j")
	first.states([]sqljobber.State{sqljobber.StateStarted}, "j")
	first.node.Stop()
	again, err := s.start(t, actors.Config{NodeName: "n1"})
	if err != nil {
		t.Fatalf("n1 again after its first run died: %v", err)
	}
	again.res.open()
	again.states([]sqljobber.State{sqljobber.StateSuccess}, "j")
	j, err := again.engine.Job(context.Background(), "j")
	if err != nil || j.LostRuns != 1 || j.Attempt != 1 {
		t.Fatalf("the job its first run lost: %+v, %v", j, err)
	}
	// A graceful stop lets go of the name at once.
	again.engine.Stop()
	if _, err := s.start(t, actors.Config{NodeName: "n1"}); err != nil {
		t.Fatalf("n1 after a graceful stop: %v", err)
	}
}

// TestClusterAMemberFoundGoneLosesItsRuns: when the cluster finds a member gone,
// another node takes back its runs at once, without waiting for their
// lease, and runs them; the job's record says a run was lost, and its
// retries are untouched.
func TestClusterAMemberFoundGoneLosesItsRuns(t *testing.T) {
	s := newStores(t)
	// "dead" dies only as far as the cluster can tell: its engine goes on.
	// One slot, held by the lost run, and leases renewed (and found lost)
	// only every 20 minutes keep it from claiming the job it lost again,
	// which it would never finish (its writes wait), before the other
	// node does.
	dead, err := s.start(t, actors.Config{NodeName: "dead", Lease: time.Hour, NodeLease: time.Hour, Queues: map[string]int{"default": 1}})
	if err != nil {
		t.Fatal(err)
	}
	dead.submit("j")
	dead.states([]sqljobber.State{sqljobber.StateStarted}, "j")
	other, err := s.start(t, actors.Config{NodeName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	other.res.open()
	other.engine.MemberDown(sqljobber.Member{Name: "dead", ID: dead.node.ID()})
	other.states([]sqljobber.State{sqljobber.StateSuccess}, "j")
	j, err := other.engine.Job(context.Background(), "j")
	if err != nil || j.LostRuns != 1 || j.Attempt != 1 || j.Node != "other" {
		t.Fatalf("the job: %+v, %v", j, err)
	}
	// The run that was taken for dead learns it lost its job, and
	// publishes nothing.
	dead.res.open()
	dead.eventually("the lost run to stop", 30*time.Second, func() (bool, string) {
		running, _, _ := dead.res.state()
		return running == 0, fmt.Sprintf("%d writes under way", running)
	})
	if j, _ := other.engine.Job(context.Background(), "j"); j.Node != "other" || j.State != sqljobber.StateSuccess {
		t.Fatalf("the job after the lost run stopped: %+v", j)
	}
}

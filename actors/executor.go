package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/internal/retry"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Why a run's context ended, when it was not the engine stopping.
var (
	errCancelled = errors.New("job cancelled")
	errRunLost   = errors.New("the run lost its job (cancelled elsewhere or its lease expired)")
)

// Retry backoff: the configured base doubles per attempt up to retryMax,
// with jitter.
const (
	retryMax = 10 * time.Minute
	// ledgerRetry is the wait before trying again after the ledger could
	// not be written.
	ledgerRetry = 2 * time.Second
	// releaseTimeout bounds handing a job back while the node stops.
	releaseTimeout = 10 * time.Second
)

// run is a job running on this node.
type run struct {
	job    string // the job's ID
	cancel context.CancelCauseFunc
	done   chan struct{}
	// begin is when the run started; rows counts the rows it has read
	// from the source so far (see withProgress).
	begin time.Time
	rows  atomic.Int64
}

// startRun registers a run of j on this node, so that it can be cancelled
// and drained from now on, and starts it with spawn; it reports false (and
// registers nothing) when the engine is stopping or draining.
func (e *Engine) startRun(j *ledger.Job, then func()) bool {
	if e.draining.Load() {
		return false
	}
	ctx, cancel := context.WithCancelCause(e.ctx)
	r := &run{job: j.ID, cancel: cancel, done: make(chan struct{}), begin: time.Now()}
	e.runsMu.Lock()
	e.runs[j.RunID] = r
	e.runsMu.Unlock()
	started := e.spawn(func() {
		e.execute(ctx, j, r)
		then()
	})
	if !started {
		e.runsMu.Lock()
		delete(e.runs, j.RunID)
		e.runsMu.Unlock()
		cancel(nil)
	}
	return started
}

// runInSlot runs j, claimed or started for it, in a slot of its queue
// taken for it, and tells the queue's actor when the slot is free again:
// when the run ends, or at once if the node is stopping, when nothing runs
// and the job is handed back to the ledger.
func (e *Engine) runInSlot(j *ledger.Job, queue *actor.PID) {
	root := e.node.System().Root
	running := e.metrics.running.WithLabelValues(j.Queue)
	running.Inc()
	started := e.startRun(j, func() {
		running.Dec()
		root.Send(queue, slotFreed{task: j.Task})
		e.capFreed(j)
	})
	if !started {
		running.Dec()
		e.release(j)
		root.Send(queue, slotFreed{task: j.Task})
	}
}

// hold registers work under way that Stop must wait for (release it with
// e.wg.Done), unless the engine is stopping; it reports whether it did.
func (e *Engine) hold() bool {
	e.runsMu.Lock()
	defer e.runsMu.Unlock()
	if !e.running.Load() || e.ctx.Err() != nil {
		return false
	}
	e.wg.Add(1)
	return true
}

// spawn runs fn in a goroutine that Stop waits for, unless the engine is
// stopping; it reports whether fn was started.
func (e *Engine) spawn(fn func()) bool {
	if !e.hold() {
		return false
	}
	go func() {
		defer e.wg.Done()
		fn()
	}()
	return true
}

// cancelRun cancels a run of this node and returns a channel closed when it
// has ended, or nil if no such run is here.
func (e *Engine) cancelRun(runID string, cause error) <-chan struct{} {
	e.runsMu.Lock()
	defer e.runsMu.Unlock()
	r, ok := e.runs[runID]
	if !ok {
		return nil
	}
	r.cancel(cause)
	return r.done
}

// localRuns are the runs on this node.
func (e *Engine) localRuns() []ledger.JobRun {
	e.runsMu.Lock()
	defer e.runsMu.Unlock()
	runs := make([]ledger.JobRun, 0, len(e.runs))
	for id, r := range e.runs {
		runs = append(runs, ledger.JobRun{JobID: r.job, RunID: id})
	}
	return runs
}

// execute runs a claimed job: it streams the query's rows into a staging
// table, publishes it, and records the outcome, or a retry.
//
// It runs in its own goroutine (see queueActor.run), which it must not
// outlive: Stop waits for it.
func (e *Engine) execute(ctx context.Context, j *ledger.Job, r *run) {
	cancel := r.cancel
	defer func() {
		cancel(nil)
		e.runsMu.Lock()
		delete(e.runs, j.RunID)
		e.runsMu.Unlock()
		close(r.done)
	}()

	log := jobLogger(e.logger, slog.String("job_id", j.ID), slog.String("task", j.Task), slog.String("queue", j.Queue))
	begin := time.Now()
	if !j.ReadyAt.IsZero() {
		e.metrics.wait.WithLabelValues(e.metrics.queue(j.Queue)).Observe(max(0, begin.Sub(j.ReadyAt).Seconds()))
	}
	log.Info("job started", slog.Int("attempt", j.Attempt), slog.String("results_backend", j.ResultsBackend))

	var (
		count    int64
		recorded bool      // the publication recorded SUCCESS itself
		at       time.Time // when the outcome was recorded, if known
		err      error
	)
	task, taskOK := e.tasks.Task(j.Task)
	backend, backendOK := e.results[j.ResultsBackend]
	switch {
	case !taskOK:
		err = fmt.Errorf("task %q is not loaded on node %q", j.Task, e.cfg.NodeName)
	case !backendOK:
		err = fmt.Errorf("results backend %q is not configured on node %q", j.ResultsBackend, e.cfg.NodeName)
	default:
		count, at, recorded, err = e.run(ctx, j, task, backend, &r.rows)
	}
	if cause := context.Cause(ctx); err != nil && cause != nil {
		switch {
		case errors.Is(cause, errCancelled), errors.Is(cause, errRunLost):
			log.Info("job run stopped", slog.String("reason", cause.Error()), slog.Duration("duration", time.Since(begin)))
			return
		case e.ctx.Err() != nil:
			e.release(j)
			log.Info("job handed back: the node is stopping", slog.Duration("duration", time.Since(begin)))
			return
		}
	}

	o := ledger.Outcome{State: sqljobber.StateSuccess, Count: count, TTL: j.TTL}
	if err != nil {
		o = ledger.Outcome{State: sqljobber.StateFailure, Error: err.Error(), TTL: j.TTL}
		if j.Attempt <= j.Retries {
			o.State, o.RetryAt = sqljobber.StateRetry, time.Now().Add(e.backoff(j.Attempt))
		}
	}
	if !recorded {
		var ok bool
		if at, ok = e.finish(log, j, o); !ok {
			return
		}
	}
	e.metrics.observeFinish(j, o, time.Since(begin))
	attrs := []any{slog.String("state", string(o.State)), slog.Int64("rows", count), slog.Duration("duration", time.Since(begin)),
		slog.Int("attempt", j.Attempt)}
	if err != nil {
		// The error text can quote argument values; the code cannot.
		attrs = append(attrs, slog.String("error_code", sqlexec.ErrorCode(err)))
	}
	log.Info("job finished", attrs...)
	if o.State == sqljobber.StateRetry {
		e.wakeAt(j.Queue, o.RetryAt)
		return
	}
	e.jobFinished(j, o, at)
	e.settleFlight(j)
	if j.GroupID != "" {
		e.groupChanged(j.GroupID)
	}
}

// run queries the source and writes the results table, counting the rows
// read into progress. A failure on either side cancels the other at once:
// the source stops working on rows nobody will write.
//
// When the publication recorded the job's SUCCESS itself (recorded), at is
// when.
func (e *Engine) run(ctx context.Context, j *ledger.Job, task *sqlexec.Task, backend Results, progress *atomic.Int64) (int64, time.Time, bool, error) {
	db := j.SourceDB
	if db == "" {
		// Admitted by a version that chose at each run.
		var err error
		if db, err = e.tasks.PickDB(task, j.DB); err != nil {
			return 0, time.Time{}, false, err
		}
	}
	args, err := decodeArgs(j.Args)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := e.tasks.Query(qctx, task, db, args)
	if err != nil {
		if ctx.Err() == nil {
			e.metrics.queryErrors.WithLabelValues(db).Inc()
		}
		return 0, time.Time{}, false, fmt.Errorf("query database %q: %w", db, err)
	}
	// The table is published only while this run owns the job, and never
	// over a later run's.
	run := e.ledger.Run(j)
	n, recorded, err := backend.Write(qctx, j.ResultsTable, j.RunID, counted(rows, progress), resultsink.Fence{Token: j.Fence, Owner: run})
	if err != nil {
		// The source's error, or the results database's.
		failed := j.ResultsBackend
		if rows.Err() != nil {
			failed = db
		}
		if ctx.Err() == nil {
			e.metrics.queryErrors.WithLabelValues(failed).Inc()
		}
		cancel() // before Close, which would otherwise read the rest
	}
	rows.Close()
	var at time.Time
	if recorded {
		at = run.SucceededAt()
	}
	return n, at, recorded, err
}

// finish records a run's outcome, trying again while the ledger cannot be
// written. It reports false if the run no longer owns the job or the engine
// stopped first; otherwise it returns when the outcome was recorded, zero
// when it cannot tell (an earlier try's answer was lost).
func (e *Engine) finish(log *slog.Logger, j *ledger.Job, o ledger.Outcome) (time.Time, bool) {
	var at time.Time
	err := retry.Do(e.ctx, retry.Backoff{First: ledgerRetry}, func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, ledgerTimeout)
		defer cancel()
		var err error
		at, err = e.ledger.Finish(ctx, j.ID, j.RunID, o)
		if errors.Is(err, ledger.ErrRunSuperseded) {
			// An earlier try may have been written after all (when,
			// this run does not know).
			if cur, gerr := e.ledger.Get(ctx, j.ID); gerr == nil && cur.RunID == j.RunID && cur.State == o.State {
				err = nil
			}
		}
		if err == nil || errors.Is(err, ledger.ErrRunSuperseded) || e.ctx.Err() != nil {
			return true, err
		}
		log.Error("record job outcome; will try again", slog.String("error_code", sqlexec.ErrorCode(err)))
		return false, err
	})
	if errors.Is(err, ledger.ErrRunSuperseded) {
		log.Warn("job was taken over before its run finished; outcome discarded", slog.String("state", string(o.State)))
	}
	return at, err == nil
}

// release hands a job back to the ledger, ready for any node, when this
// node stops before (or while) running it.
func (e *Engine) release(j *ledger.Job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), releaseTimeout)
	defer cancel()
	err := e.ledger.Release(ctx, j.ID, j.RunID)
	switch {
	case err == nil:
		// Ready again: a free slot anywhere takes it now, not at its
		// next poll.
		e.wake(j.Queue)
		e.capFreed(j)
	case !errors.Is(err, ledger.ErrRunSuperseded):
		// Its lease runs out and it runs again then.
		e.logger.Warn("hand back a job", slog.String("job_id", j.ID), slog.String("error_code", sqlexec.ErrorCode(err)))
	}
}

// wakeAt wakes the queue's actor on this node at t.
func (e *Engine) wakeAt(queue string, t time.Time) {
	if pid := e.queueActor(queue); pid != nil {
		time.AfterFunc(time.Until(t), func() { e.node.System().Root.Send(pid, wake{}) })
	}
}

// pickResults chooses a job's results backend: uniformly among the task's.
func (e *Engine) pickResults(t *sqlexec.Task) (string, Results) {
	if len(t.Results) == 0 {
		return "", nil
	}
	name := t.Results[rand.IntN(len(t.Results))]
	return name, e.results[name]
}

func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.RetryBackoff << min(attempt-1, 20)
	d = min(d, retryMax)
	return d/2 + rand.N(d/2+1)
}

package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Retry backoff: base doubles per attempt up to max, with jitter.
const (
	retryBase = time.Second
	retryMax  = 5 * time.Minute
	// ledgerRetry is the wait before trying again after the ledger could
	// not be written; the job is never dropped for it.
	ledgerRetry = 2 * time.Second
)

// execute runs one attempt of job j: it claims the job in the ledger, streams
// the query's rows into a staging table and publishes it, then records the
// outcome. It returns the job to offer again after delay when it is to be
// retried (a failed attempt with retries left, or a ledger that could not be
// written), or nil.
func (e *Engine) execute(j *resultsink.Job) (*resultsink.Job, time.Duration) {
	ctx := e.ctx
	if ctx.Err() != nil {
		return nil, 0 // stopping: the job stays in the ledger for the next start
	}
	log := e.logger.With(slog.String("job_id", j.ID), slog.String("task", j.Task), slog.String("queue", j.Queue))

	task, taskOK := e.tasks.Task(j.Task)
	backendName, backend := e.pickResults(task)
	table := ""
	if backend != nil {
		table = backend.TableName(j.ID)
	}
	runID := resultsink.NewRunID()
	lctx, cancel := context.WithTimeout(ctx, ledgerTimeout)
	started, err := e.ledger.Start(lctx, j.ID, j.RunID, runID, e.cfg.NodeName, backendName, table)
	cancel()
	switch {
	case errors.Is(err, resultsink.ErrRunSuperseded):
		// Another run, or a cancellation, got there first.
		return nil, 0
	case err != nil:
		if ctx.Err() != nil {
			return nil, 0
		}
		log.Error("record job start; will try again", slog.Any("error", err))
		return j, ledgerRetry
	}
	begin := time.Now()
	log.Info("job started", slog.Int("attempt", started.Attempt), slog.String("results_backend", backendName))

	var count int64
	switch {
	case !taskOK:
		err = fmt.Errorf("task %q is no longer loaded on this node", j.Task)
	case backend == nil:
		err = fmt.Errorf("task %q has no results backend", j.Task)
	default:
		count, err = e.run(ctx, j, task, backend, table, runID)
	}
	if err != nil && ctx.Err() != nil {
		// Shutting down: the run stays STARTED and runs again on the
		// next start. Its staging table is already dropped.
		log.Info("job interrupted by shutdown; it will run again on start", slog.Duration("duration", time.Since(begin)))
		return nil, 0
	}

	state, errText := resultsink.StateSuccess, ""
	var retry *resultsink.Job
	var delay time.Duration
	if err != nil {
		errText = err.Error()
		state = resultsink.StateFailure
		if started.Attempt <= started.Retries {
			state = resultsink.StateRetry
			retry = started
			delay = backoff(started.Attempt)
		}
	}
	if !e.finish(ctx, log, j.ID, runID, state, count, errText) {
		return nil, 0
	}
	attrs := []any{slog.String("state", state), slog.Int64("rows", count), slog.Duration("duration", time.Since(begin)),
		slog.Int("attempt", started.Attempt)}
	if err != nil {
		// The error text can quote argument values; the code cannot.
		attrs = append(attrs, slog.String("error_code", errorCode(err)))
	}
	log.Info("job finished", attrs...)
	return retry, delay
}

// run queries the source and writes the results table.
func (e *Engine) run(ctx context.Context, j *resultsink.Job, task *sqlexec.Task, backend Results, table, runID string) (int64, error) {
	db, err := e.tasks.PickDB(task, j.DB)
	if err != nil {
		return 0, err
	}
	args, err := decodeArgs(j.Args)
	if err != nil {
		return 0, err
	}
	rows, err := e.tasks.Query(ctx, task, db, args)
	if err != nil {
		return 0, fmt.Errorf("query database %q: %w", db, err)
	}
	defer rows.Close()
	return backend.Write(ctx, table, runID, rows)
}

// finish records a run's outcome, trying again while the ledger cannot be
// written. It reports false if the run no longer owns the job or the engine
// stopped first.
func (e *Engine) finish(ctx context.Context, log *slog.Logger, id, runID, state string, count int64, errText string) bool {
	for {
		lctx, cancel := context.WithTimeout(ctx, ledgerTimeout)
		err := e.ledger.Finish(lctx, id, runID, state, count, errText)
		cancel()
		switch {
		case err == nil:
			return true
		case errors.Is(err, resultsink.ErrRunSuperseded):
			log.Warn("job was taken over before its run finished; outcome discarded", slog.String("state", state))
			return false
		}
		log.Error("record job outcome; will try again", slog.Any("error", err))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(ledgerRetry):
		}
	}
}

// pickResults chooses the results backend of a run: uniformly among the
// task's.
func (e *Engine) pickResults(t *sqlexec.Task) (string, Results) {
	if t == nil || len(t.Results) == 0 {
		return "", nil
	}
	name := t.Results[rand.IntN(len(t.Results))]
	return name, e.results[name]
}

func backoff(attempt int) time.Duration {
	d := retryBase << min(attempt-1, 20)
	d = min(d, retryMax)
	return d/2 + rand.N(d/2+1)
}

// errorCode is a loggable class of a job's error: the database's error code
// where there is one.
func errorCode(err error) string {
	var pg *pgconn.PgError
	var my *mysql.MySQLError
	switch {
	case errors.As(err, &pg):
		return "postgres:" + pg.Code
	case errors.As(err, &my):
		return fmt.Sprintf("mysql:%d", my.Number)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "other"
}

package ledger

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// NewRunID returns a random identifier for one run of a job. It names the
// run's staging table and fences the run's ledger updates.
func NewRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Claim takes up to n of the next ready jobs of queue for new runs on node:
// the oldest PENDING or RETRY jobs whose time has come, that no group holds
// back, whose task is not one of except and whose source database is not
// at its cap (Config.MaxRunning), first in, first out. Each gets a fresh
// run ID and a lease. It returns none when none is ready. Concurrent
// claims from any number of nodes never take the same job, nor more of a
// capped database's jobs than its cap allows.
func (l *Ledger) Claim(ctx context.Context, queue string, node Node, n int, lease time.Duration, except ...string) ([]*Job, error) {
	if n < 1 {
		return nil, nil
	}
	var (
		claimed []*Job
		err     error
	)
	if len(l.cfg.MaxRunning) > 0 {
		claimed, err = l.claimCapped(ctx, queue, node, n, lease, except)
	} else {
		t := l.now()
		pickArgs := []any{queue, l.timeArg(t)}
		for _, task := range except {
			pickArgs = append(pickArgs, task)
		}
		claimed, err = l.d.claim(ctx, l, l.claimSet(), []any{node.Name, node.ID, l.timeArg(t), l.timeArg(t.Add(lease)), l.timeArg(t)},
			l.pickSQL(n, len(except)), pickArgs)
	}
	if err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	// The order they start in: the queue's.
	slices.SortFunc(claimed, func(a, b *Job) int {
		if c := a.ReadyAt.Compare(b.ReadyAt); c != 0 {
			return c
		}
		if c := a.EnqueuedAt.Compare(b.EnqueuedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return claimed, nil
}

// claimSet is the UPDATE that starts claimed jobs' runs (arguments: the
// node's name and ID, the time now, the lease's end, the time now).
func (l *Ledger) claimSet() string {
	return fmt.Sprintf(`UPDATE %s SET state = 'STARTED', run_id = %s, node = ?, node_id = ?, attempt = attempt + 1, fence = fence + 1,
	started_at = ?, finished_at = NULL, lease_until = ?, updated_at = ?`, l.table, l.d.runID())
}

// pickSQL selects the IDs of the next n ready jobs of a queue (arguments:
// the queue, the time now, and the except tasks to pass over). Its filter
// repeats the _pending index's predicate word for word, so that the
// planners see it applies.
func (l *Ledger) pickSQL(n, except int) string {
	var passOver string
	if except > 0 {
		passOver = " AND task NOT IN (" + sqlexec.Placeholders(except) + ")"
	}
	return fmt.Sprintf(`SELECT job_id FROM %s WHERE %s AND held = 0 AND ready_at <= ?%s
	ORDER BY ready_at, enqueued_at, job_id LIMIT %d`, l.table, l.d.pending(), passOver, n)
}

// NextReady returns when the earliest job of queue that waits for its
// time (an ETA, a retry's backoff) becomes ready, if one waits. Jobs ready
// already are not its concern: a claim that did not take them passed over
// them (their task or database at its bound, or another claim has them),
// and what frees them wakes the queue.
func (l *Ledger) NextReady(ctx context.Context, queue string) (time.Time, bool, error) {
	var t ledgerTime
	err := l.q.Query(ctx, fmt.Sprintf(`SELECT MIN(ready_at) FROM %s WHERE %s AND held = 0 AND ready_at > ?`, l.table, l.d.pending()),
		func(scan func(...any) error) error { return scan(&t) }, queue, l.timeArg(l.now()))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next ready job: %w", err)
	}
	return t.t, !t.t.IsZero(), nil
}

// JobRun names a run by its job and its run ID.
type JobRun struct{ JobID, RunID string }

// Renew extends the leases of runs that are still STARTED and returns the
// run IDs of those it renewed; a run missing from the answer has lost its
// job. It finds the runs by their jobs' keys: a condition on state alone
// had MySQL lock every running job of every node that its scan passed
// (REPEATABLE READ keeps those locks), and wait for, or deadlock with,
// their own finishing writes.
func (l *Ledger) Renew(ctx context.Context, runs []JobRun, lease time.Duration) (map[string]bool, error) {
	alive := map[string]bool{}
	if len(runs) == 0 {
		return alive, nil
	}
	keys := make([]any, 0, 2*len(runs))
	for _, r := range runs {
		keys = append(keys, r.JobID)
	}
	for _, r := range runs {
		keys = append(keys, r.RunID)
	}
	// A job whose run ID is one of runs' is that run's: run IDs are
	// random, and never reused.
	in := sqlexec.Placeholders(len(runs))
	where := fmt.Sprintf("job_id IN (%s) AND run_id IN (%s) AND state = 'STARTED'", in, in)
	if _, err := l.q.Exec(ctx, fmt.Sprintf("UPDATE %s SET lease_until = ? WHERE %s", l.table, where),
		append([]any{l.timeArg(l.now().Add(lease))}, keys...)...); err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	err := l.q.Query(ctx, fmt.Sprintf("SELECT run_id FROM %s WHERE %s", l.table, where),
		func(scan func(...any) error) error {
			var id string
			if err := scan(&id); err != nil {
				return err
			}
			alive[id] = true
			return nil
		}, keys...)
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	return alive, nil
}

// expiry is when results kept for ttl after t expire; nil for never.
func (l *Ledger) expiry(t time.Time, ttl time.Duration) any {
	if ttl <= 0 {
		return nil
	}
	return l.timeArg(t.Add(ttl))
}

// Finish records the outcome of run runID, and returns when it was
// recorded: the job's finished_at (and the start of its TTL) for a final
// outcome. It returns ErrRunSuperseded if the job is no longer this run's
// (cancelled, purged, or taken over).
//
// Where the driver can, SUCCESSes that arrive while others are being
// written go into the database together (see finishes).
func (l *Ledger) Finish(ctx context.Context, id, runID string, o Outcome) (time.Time, error) {
	if b, ok := l.d.(batchFinisher); ok && o.State == sqljobber.StateSuccess {
		return l.finishing.finish(ctx, l, b, id, runID, o)
	}
	return l.finishAlone(ctx, id, runID, o)
}

// finishAlone is Finish in a statement of its own.
func (l *Ledger) finishAlone(ctx context.Context, id, runID string, o Outcome) (time.Time, error) {
	t := l.now()
	var stmt string
	var args []any
	if o.State == sqljobber.StateRetry {
		stmt = fmt.Sprintf(`UPDATE %s SET state = 'RETRY', count = 0, error = ?, lease_until = NULL, enqueued_at = ?, ready_at = ?,
	updated_at = ? WHERE job_id = ? AND run_id = ? AND state = 'STARTED'`, l.table)
		args = []any{o.Error, l.timeArg(t), l.timeArg(later(o.RetryAt, t)), l.timeArg(t), id, runID}
	} else {
		stmt = fmt.Sprintf(`UPDATE %s SET state = ?, count = ?, error = ?, lease_until = NULL, finished_at = ?, updated_at = ?,
	expires_at = ? WHERE job_id = ? AND run_id = ? AND state = 'STARTED'`, l.table)
		args = []any{string(o.State), o.Count, o.Error, l.timeArg(t), l.timeArg(t), l.expiry(t, o.TTL), id, runID}
	}
	n, err := l.q.Exec(ctx, stmt, args...)
	if err != nil {
		return time.Time{}, fmt.Errorf("finish job: %w", err)
	}
	if n == 0 {
		return time.Time{}, ErrRunSuperseded
	}
	return t, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Release hands back a run's job without counting the attempt, e.g. when
// its node shuts down: the job is ready again at once, for any node, in its
// place in the queue.
func (l *Ledger) Release(ctx context.Context, id, runID string) error {
	t := l.now()
	n, err := l.q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET state = CASE WHEN attempt > 1 THEN 'RETRY' ELSE 'PENDING' END,
	attempt = attempt - 1, lease_until = NULL, started_at = NULL, updated_at = ?
	WHERE job_id = ? AND run_id = ? AND state = 'STARTED'`, l.table), l.timeArg(t), id, runID)
	if err != nil {
		return fmt.Errorf("release job: %w", err)
	}
	if n == 0 {
		return ErrRunSuperseded
	}
	return nil
}

// LostRunsMaxDefault is the default cap on the runs of a job lost with
// their nodes.
const LostRunsMaxDefault = 3

// TakeOverNode takes back the runs of node incarnation nodeID, which is
// gone (the cluster declared it dead): each is lost (see loseRuns). A run
// that is in fact alive can publish nothing from then on: it no longer
// owns its job.
func (l *Ledger) TakeOverNode(ctx context.Context, nodeID string, maxLost int) ([]*Job, error) {
	if nodeID == "" {
		return nil, nil
	}
	return l.loseRuns(ctx, "node_id = ?", []any{nodeID}, maxLost, 0)
}

// TakeOverName takes back the runs of the earlier incarnations of worker
// name, all but except: the caller holds the name's lease, so they are gone.
func (l *Ledger) TakeOverName(ctx context.Context, name, except string, maxLost int) ([]*Job, error) {
	return l.loseRuns(ctx, "node = ? AND node_id <> ?", []any{name, except}, maxLost, 0)
}

// RecoverExpired takes back up to limit runs whose lease ran out: their
// node stopped renewing them (it died, or lost the ledger).
func (l *Ledger) RecoverExpired(ctx context.Context, maxLost, limit int) ([]*Job, error) {
	return l.loseRuns(ctx, "lease_until < ?", []any{l.timeArg(l.now())}, maxLost, limit)
}

// loseRuns finds the STARTED jobs that cond selects (up to limit, if not 0)
// and marks their runs lost with their node. A lost run is not the job's
// failure: the job is ready to run again at once, in its place in the
// queue, its attempt and its retries not counted, unless it has lost
// maxLost runs (a job that takes its node down every time must not loop):
// then it fails. It returns the jobs it changed, with State their new state.
func (l *Ledger) loseRuns(ctx context.Context, cond string, args []any, maxLost, limit int) ([]*Job, error) {
	stmt := fmt.Sprintf("SELECT %s FROM %s WHERE "+runningCond+" AND %s ORDER BY job_id", jobColumns, l.table, cond)
	if limit > 0 {
		stmt += fmt.Sprintf(" LIMIT %d", limit)
	}
	lost, err := l.jobs(ctx, l.q, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("find lost runs: %w", err)
	}
	maxLost = max(1, cmp.Or(maxLost, LostRunsMaxDefault))
	var changed []*Job
	for _, j := range lost {
		t := l.now()
		var n int64
		if j.LostRuns+1 >= maxLost {
			j.State, j.Error = sqljobber.StateFailure, fmt.Sprintf("run %s was lost with node %q: %d runs of this job were lost with their nodes, the most allowed", j.RunID, j.Node, j.LostRuns+1)
			n, err = l.q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET state = 'FAILURE', error = ?, lost_runs = lost_runs + 1, lease_until = NULL,
	finished_at = ?, expires_at = ?, updated_at = ? WHERE job_id = ? AND run_id = ? AND `+runningCond, l.table),
				j.Error, l.timeArg(t), l.expiry(t, j.TTL), l.timeArg(t), j.ID, j.RunID)
		} else {
			j.State, j.Error = sqljobber.StatePending, fmt.Sprintf("run %s was lost with node %q; it runs again", j.RunID, j.Node)
			if j.Attempt > 1 {
				j.State = sqljobber.StateRetry
			}
			n, err = l.q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET state = ?, error = ?, attempt = attempt - 1, lost_runs = lost_runs + 1,
	lease_until = NULL, started_at = NULL, updated_at = ? WHERE job_id = ? AND run_id = ? AND `+runningCond, l.table),
				string(j.State), j.Error, l.timeArg(t), j.ID, j.RunID)
		}
		if err != nil {
			return changed, fmt.Errorf("take back a lost run: %w", err)
		}
		if n > 0 {
			j.LostRuns++
			changed = append(changed, j)
		}
	}
	return changed, nil
}

// Run is one run of a job as its publication must prove it: the run still
// owns its job (resultsink.Owner).
type Run struct {
	l          *Ledger
	job, runID string
	ttl        time.Duration
	// succeededAt is when the last Success statement made records the
	// SUCCESS: once its publication has committed, when it was recorded.
	succeededAt time.Time
}

// Run returns the run of j that it was claimed or started for.
func (l *Ledger) Run(j *Job) *Run {
	return &Run{l: l, job: j.ID, runID: j.RunID, ttl: j.TTL}
}

// DB is the database the run's record is in.
func (r *Run) DB() *sqlexec.DB { return r.l.db }

// Check returns an error wrapping ErrRunSuperseded unless the run still owns
// its job: the job is STARTED by the run and its lease has not run out. q
// reads the record, inside the publication's transaction when the ledger
// shares its database. A run that loses its job after the check is kept
// from replacing a later run's table by the fence token.
func (r *Run) Check(ctx context.Context, q sqlexec.Querier) error {
	j, err := r.l.get(ctx, q, r.job)
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
		return fmt.Errorf("%w: %w", ErrRunSuperseded, err)
	case err != nil:
		return err
	case j.State != sqljobber.StateStarted || j.RunID != r.runID:
		return ErrRunSuperseded
	case !j.LeaseUntil.After(r.l.now()):
		return fmt.Errorf("%w: its lease ran out", ErrRunSuperseded)
	}
	return nil
}

// SucceededAt is when the SUCCESS that the run's publication recorded (see
// Success) was recorded; zero if it made no Success statement.
func (r *Run) SucceededAt() time.Time { return r.succeededAt }

// Owns is a FROM clause (with ? placeholders) and its arguments that yield
// one row if the run still owns its job (as Check says) and none otherwise:
// a statement of a publication where the ledger shares the results
// database can depend on it (INSERT ... SELECT ... FROM), with no read of
// its own.
func (r *Run) Owns() (string, []any) {
	return fmt.Sprintf("FROM %s WHERE job_id = ? AND run_id = ? AND state = 'STARTED' AND lease_until > ?", r.l.table),
		[]any{r.job, r.runID, r.l.timeArg(r.l.now())}
}

// Success is the statement (with ? placeholders) and arguments that record
// the run's SUCCESS with count rows inside its publication's transaction,
// where the ledger shares the results database: it changes one row if the
// run still owns its job, else none.
func (r *Run) Success(count int64) (string, []any) {
	l, t := r.l, r.l.now()
	r.succeededAt = t
	return fmt.Sprintf(`UPDATE %s SET state = 'SUCCESS', count = ?, error = '', lease_until = NULL, finished_at = ?, updated_at = ?,
	expires_at = ? WHERE job_id = ? AND run_id = ? AND state = 'STARTED' AND lease_until > ?`, l.table),
		[]any{count, l.timeArg(t), l.timeArg(t), l.expiry(t, r.ttl), r.job, r.runID, l.timeArg(t)}
}

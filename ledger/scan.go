package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// jobColumns are the jobs table's columns, in the order jobArgs gives
// their values and jobs scans them.
const jobColumns = `job_id, task, queue, state, args, db, group_id, retries, ttl_seconds, eta,
	results_backend, results_table, count, error, attempt, run_id, node, fence, held,
	enqueued_at, ready_at, lease_until, expires_at, created_at, started_at, finished_at, updated_at, node_id, lost_runs, owner,
	reused_from, fingerprint, joined, flight, source_db`

var jobColumnList = strings.Fields(strings.ReplaceAll(jobColumns, ",", " "))

// activeStates is the SQL list of the unfinished states.
const activeStates = `('PENDING', 'STARTED', 'RETRY')`

// timeArg is t as the driver stores ledger times.
func (l *Ledger) timeArg(t time.Time) any { return l.d.timeArg(t.UTC().Truncate(time.Microsecond)) }

// nullTime is timeArg, or NULL for the zero time.
func (l *Ledger) nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return l.timeArg(t)
}

// jobArgs are j's values for jobColumns.
func (l *Ledger) jobArgs(j *Job) []any {
	held := 0
	if j.Held {
		held = 1
	}
	return []any{j.ID, j.Task, j.Queue, string(j.State), string(j.Args), j.DB, j.GroupID, j.Retries, int64(j.TTL / time.Second),
		l.nullTime(j.ETA), j.ResultsBackend, j.ResultsTable, j.Count, j.Error, j.Attempt, j.RunID, j.Node, j.Fence, held,
		l.timeArg(j.EnqueuedAt), l.timeArg(j.ReadyAt), l.nullTime(j.LeaseUntil), l.nullTime(j.ExpiresAt),
		l.timeArg(j.CreatedAt), l.nullTime(j.StartedAt), l.nullTime(j.FinishedAt), l.timeArg(j.UpdatedAt), j.NodeID, j.LostRuns, j.Owner,
		j.ReusedFrom, j.Fingerprint, j.Joined, j.Flight, j.SourceDB}
}

// jobs runs a query of jobColumns and scans its rows.
func (l *Ledger) jobs(ctx context.Context, q sqlexec.Querier, stmt string, args ...any) ([]*Job, error) {
	var jobs []*Job
	err := q.Query(ctx, stmt, func(scan func(...any) error) error {
		j, err := scanJob(scan)
		if err == nil {
			jobs = append(jobs, j)
		}
		return err
	}, args...)
	return jobs, err
}

// scanJob scans a row of jobColumns.
func scanJob(scan func(...any) error) (*Job, error) {
	var (
		j                                   Job
		state, args                         string
		ttl                                 int64
		held                                int
		eta, enq, ready, lease, exp         ledgerTime
		created, started, finished, updated ledgerTime
	)
	if err := scan(&j.ID, &j.Task, &j.Queue, &state, &args, &j.DB, &j.GroupID, &j.Retries, &ttl, &eta,
		&j.ResultsBackend, &j.ResultsTable, &j.Count, &j.Error, &j.Attempt, &j.RunID, &j.Node, &j.Fence, &held,
		&enq, &ready, &lease, &exp, &created, &started, &finished, &updated, &j.NodeID, &j.LostRuns, &j.Owner,
		&j.ReusedFrom, &j.Fingerprint, &j.Joined, &j.Flight, &j.SourceDB); err != nil {
		return nil, err
	}
	j.State, j.Args, j.TTL, j.Held = sqljobber.State(state), json.RawMessage(args), time.Duration(ttl)*time.Second, held != 0
	j.ETA, j.EnqueuedAt, j.ReadyAt, j.LeaseUntil, j.ExpiresAt = eta.t, enq.t, ready.t, lease.t, exp.t
	j.CreatedAt, j.StartedAt, j.FinishedAt, j.UpdatedAt = created.t, started.t, finished.t, updated.t
	return &j, nil
}

// ledgerTime scans a nullable ledger time from any of the drivers'
// representations into UTC.
type ledgerTime struct{ t time.Time }

func (lt *ledgerTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		lt.t = time.Time{}
	case time.Time:
		lt.t = v.UTC()
	case []byte:
		return lt.Scan(string(v))
	case string:
		t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", v, time.UTC)
		if err != nil {
			return fmt.Errorf("ledger time %q: %w", v, err)
		}
		lt.t = t
	default:
		return fmt.Errorf("ledger time: unexpected %T", src)
	}
	return nil
}

package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Admit records a new PENDING job under j.ID, replacing a finished job of
// that ID and owner. If an unfinished job holds the ID it returns
// *sqljobber.ActiveError, if another owner's finished job holds it
// *sqljobber.TakenError, and changes nothing. This conditional write is what
// makes "one active job per ID" hold across nodes and restarts.
//
// Where the driver can, admissions that arrive while others are being
// written go into the database together (see admissions).
func (l *Ledger) Admit(ctx context.Context, j Job) (*Job, error) {
	return l.write(ctx, l.admission(j))
}

// write writes admission j: together with the admissions that arrive while
// others are being written where the driver batches, else alone.
func (l *Ledger) write(ctx context.Context, j Job) (*Job, error) {
	if b, ok := l.d.(batchAdmitter); ok {
		return l.admitting.admit(ctx, l, b, j)
	}
	return l.admitAlone(ctx, j)
}

// admission is j as a new admission records it.
func (l *Ledger) admission(j Job) Job {
	t := l.now()
	j.State, j.CreatedAt, j.UpdatedAt, j.EnqueuedAt = sqljobber.StatePending, t, t, t
	j.ReadyAt = t
	if j.ETA.After(t) {
		j.ReadyAt = j.ETA.UTC().Truncate(time.Microsecond)
	}
	j.Count, j.Error, j.Attempt, j.RunID, j.Node, j.NodeID, j.Fence, j.LostRuns = 0, "", 0, "", "", "", 0, 0
	j.LeaseUntil, j.ExpiresAt, j.StartedAt, j.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(j.Args) == 0 {
		j.Args = json.RawMessage("[]")
	}
	return j
}

// Start records a new job as Admit does, but already STARTED by a run on
// node with a fresh run ID and a lease: the admission and the claim in one
// write, for a job that starts the moment it is admitted because its queue
// has a free slot there and no job waits ahead of it. The job returned
// carries the run's fence token.
//
// A started admission written with its answer lost would hold its ID with
// nobody running it until its lease ran out, so it is not left to the
// caller's context: it is written within admitTimeout whatever that does,
// and after an error the ledger is asked whether it was written after all.
func (l *Ledger) Start(ctx context.Context, j Job, node Node, lease time.Duration) (*Job, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), admitTimeout)
	defer cancel()
	j = l.startedAdmission(l.admission(j), node, lease)
	started, err := l.write(wctx, j)
	return l.readBack(ctx, j, started, err)
}

// startedAdmission is admission j started at once by a run on node.
func (l *Ledger) startedAdmission(j Job, node Node, lease time.Duration) Job {
	j.State, j.RunID, j.Node, j.NodeID, j.Attempt = sqljobber.StateStarted, NewRunID(), node.Name, node.ID, 1
	j.StartedAt, j.LeaseUntil = j.CreatedAt, j.CreatedAt.Add(lease)
	// Added to the fence the ID has had (see driver.admitSQL).
	j.Fence = 1
	return j
}

// readBack returns the outcome of writing started admission j (written,
// err), unless err hides that it was written after all: then the job as
// the ledger holds it.
func (l *Ledger) readBack(ctx context.Context, j Job, written *Job, err error) (*Job, error) {
	if err != nil && !errors.Is(err, sqljobber.ErrJobActive) {
		// On a context of its own: the caller's may be what ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
		defer cancel()
		if cur, gerr := l.Get(rctx, j.ID); gerr == nil && cur.RunID == j.RunID && cur.State == sqljobber.StateStarted && cur.LeaseUntil.After(l.now()) {
			return cur, nil
		}
	}
	return written, err
}

// readBackTimeout bounds Start's look at the ledger after an error.
const readBackTimeout = 10 * time.Second

// startsAt makes a started admission's run start at t, the time it is
// written, so that its lease runs from then rather than from when it was
// made (it may have waited for a batch). Other admissions are left as
// they are.
func startsAt(j *Job, t time.Time) {
	if j.State == sqljobber.StateStarted {
		j.LeaseUntil = t.Add(j.LeaseUntil.Sub(j.StartedAt))
		j.StartedAt = t
	}
}

// admitAlone admits j by itself, bounded by admitTimeout. A batch whose
// answer was lost may have written it after all: the job that holds the ID
// is then this very admission.
func (l *Ledger) admitAlone(ctx context.Context, j Job) (*Job, error) {
	ctx, cancel := context.WithTimeout(ctx, admitTimeout)
	defer cancel()
	admitted, err := l.admitOne(ctx, l.dq, j)
	if errors.Is(err, sqljobber.ErrJobActive) {
		if cur, gerr := l.Get(ctx, j.ID); gerr == nil && sameAdmission(cur, &j) {
			return cur, nil
		}
	}
	return admitted, err
}

// sameAdmission reports whether cur, as the ledger holds it, is the record
// admission j wrote, not yet claimed (or, for Start, the run it started:
// its run ID is random).
func sameAdmission(cur, j *Job) bool {
	return cur.State == j.State && cur.RunID == j.RunID && cur.CreatedAt.Equal(j.CreatedAt) &&
		cur.Task == j.Task && cur.Queue == j.Queue && string(cur.Args) == string(j.Args) &&
		// A reusing job carries its source's run ID (AdmitReused).
		cur.Owner == j.Owner && cur.ReusedFrom == j.ReusedFrom
}

// admitOne writes j, made by admission, alone with q. An admission's fence
// is added to the one the ID already has, which outlives admissions and only
// ever grows: 0 for a job that waits to be claimed, 1 for one that starts at
// once (Start).
func (l *Ledger) admitOne(ctx context.Context, q sqlexec.Querier, j Job) (*Job, error) {
	stmt := l.d.admitSQL(l.table, 1)
	startsAt(&j, l.now())
	for try := 0; ; try++ {
		written, err := l.d.admitOne(ctx, l, q, stmt, l.jobArgs(&j), &j)
		if err != nil {
			return nil, fmt.Errorf("admit job: %w", err)
		}
		if written {
			return &j, nil
		}
		cur, err := l.get(ctx, q, j.ID)
		if err != nil && !errors.Is(err, sqljobber.ErrJobNotFound) {
			return nil, fmt.Errorf("admit job: %w", err)
		}
		if err == nil && !cur.State.Active() && cur.Owner != j.Owner {
			return nil, &sqljobber.TakenError{Kind: "job", ID: j.ID}
		}
		if err == nil && cur.State.Active() || try > 0 {
			if cur == nil {
				return nil, fmt.Errorf("admit job %s: refused, yet no record holds the ID", j.ID)
			}
			return nil, &sqljobber.ActiveError{ID: cur.ID, State: cur.State}
		}
		// The holder finished (or was purged) in between: try again.
	}
}

// groupChunk is how many of a group's members one statement admits (27
// parameters each: far below PostgreSQL's and SQLite's bounds).
const groupChunk = 64

// admitMembers admits a group's members within its transaction q, in
// order. Where the driver returns the rows it wrote (INSERT ... ON CONFLICT
// ... RETURNING), a statement admits many: a group of thousands is tens of
// round trips, not thousands. A member that a chunk did not write (its ID
// held) is admitted alone, which says why.
func (l *Ledger) admitMembers(ctx context.Context, q sqlexec.Querier, jobs []Job) ([]*Job, error) {
	admitted := make([]*Job, 0, len(jobs))
	_, many := l.d.(onConflictDriver)
	for len(jobs) > 0 {
		chunk := jobs[:min(len(jobs), groupChunk)]
		jobs = jobs[len(chunk):]
		if !many || len(chunk) == 1 || hasDuplicateIDs(chunk) {
			for _, j := range chunk {
				a, err := l.admitOne(ctx, q, l.memberAdmission(j))
				if err != nil {
					return nil, err
				}
				admitted = append(admitted, a)
			}
			continue
		}
		members := make([]Job, len(chunk))
		var args []any
		t := l.now()
		for i, j := range chunk {
			members[i] = l.memberAdmission(j)
			startsAt(&members[i], t)
			args = append(args, l.jobArgs(&members[i])...)
		}
		fences := make(map[string]int64, len(members))
		err := q.Query(ctx, l.d.admitSQL(l.table, len(members)), func(scan func(...any) error) error {
			var id string
			var fence int64
			if err := scan(&id, &fence); err != nil {
				return err
			}
			fences[id] = fence
			return nil
		}, args...)
		if err != nil {
			return nil, fmt.Errorf("admit job: %w", err)
		}
		for i := range members {
			m := &members[i]
			fence, ok := fences[m.ID]
			if !ok {
				// Held: admitted alone, it returns the reason.
				a, err := l.admitOne(ctx, q, *m)
				if err != nil {
					return nil, err
				}
				m = a
			} else {
				m.Fence = fence
			}
			admitted = append(admitted, m)
		}
	}
	return admitted, nil
}

// hasDuplicateIDs reports whether an ID is twice in jobs: one statement may
// not write a row twice.
func hasDuplicateIDs(jobs []Job) bool {
	seen := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		if seen[j.ID] {
			return true
		}
		seen[j.ID] = true
	}
	return false
}

// AdmitGroup records a group and all its jobs, or nothing: if an unfinished
// job holds any of the IDs, or an unfinished member of an earlier group of
// this ID remains, it returns *sqljobber.ActiveError; if another owner's
// finished group or job holds an ID, *sqljobber.TakenError.
func (l *Ledger) AdmitGroup(ctx context.Context, g Group, jobs []Job) ([]*Job, error) {
	t := l.now()
	g.CreatedAt, g.UpdatedAt, g.Cancelled = t, t, false
	ids, err := json.Marshal(g.JobIDs)
	if err != nil {
		return nil, err
	}
	var admitted []*Job
	err = l.durable.InTx(ctx, func(q sqlexec.Querier) error {
		active, err := l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ? AND "+groupedCond+" AND state IN %s ORDER BY job_id",
			jobColumns, l.table, activeStates), g.ID)
		if err != nil {
			return err
		}
		if len(active) > 0 {
			return &sqljobber.ActiveError{ID: active[0].ID, State: active[0].State}
		}
		var owners []string
		if err := q.Query(ctx, fmt.Sprintf("SELECT owner FROM %s WHERE group_id = ?", l.groups), func(scan func(...any) error) error {
			var o string
			err := scan(&o)
			owners = append(owners, o)
			return err
		}, g.ID); err != nil {
			return err
		}
		if len(owners) > 0 && owners[0] != g.Owner {
			return &sqljobber.TakenError{Kind: "group", ID: g.ID}
		}
		// A finished group of this ID is replaced: its jobs leave it, and
		// those the new group lists join again as they are admitted, so
		// that the group's status, its jobs' group_id and its purge mean
		// the same jobs. (The check above is a plain read: submissions of
		// one group ID are serialised by its grain.)
		if _, err := q.Exec(ctx, fmt.Sprintf("UPDATE %s SET group_id = '', updated_at = ? WHERE group_id = ? AND "+groupedCond, l.table),
			l.timeArg(t), g.ID); err != nil {
			return fmt.Errorf("replace group %s: %w", g.ID, err)
		}
		upsert := l.d.upsertSQL(l.groups, groupColumnList)
		if _, err := q.Exec(ctx, upsert, g.ID, g.Concurrency, string(ids), 0, l.timeArg(t), l.timeArg(t), g.Owner); err != nil {
			return err
		}
		admitted, err = l.admitMembers(ctx, q, jobs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return admitted, nil
}

package ledger

import (
	"context"
	"fmt"
	"strings"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Cancel cancels an unfinished job and returns it as it was before, so the
// caller can stop its run. A finished job gives *sqljobber.FinishedError.
func (l *Ledger) Cancel(ctx context.Context, id string) (*Job, error) {
	for {
		j, err := l.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if !j.State.Active() {
			return nil, &sqljobber.FinishedError{Kind: "job", ID: j.ID, State: j.State}
		}
		t := l.now()
		// A job that waited on a flight's leader waits no more (joined).
		n, err := l.dq.Exec(ctx, fmt.Sprintf(`UPDATE %s SET state = 'CANCELLED', error = 'cancelled', held = 0, joined = '', lease_until = NULL,
	finished_at = ?, updated_at = ?, expires_at = ? WHERE job_id = ? AND state = ? AND run_id = ?`, l.table),
			l.timeArg(t), l.timeArg(t), l.expiry(t, j.TTL), id, string(j.State), j.RunID)
		if err != nil {
			return nil, fmt.Errorf("cancel job: %w", err)
		}
		if n > 0 {
			return j, nil
		}
		// It changed state meanwhile (e.g. it started): look again.
	}
}

// Delete removes a finished job's record and returns it, so the caller can
// drop its results table. An unfinished job gives *sqljobber.ActiveError.
func (l *Ledger) Delete(ctx context.Context, id string) (*Job, error) {
	j, err := l.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State.Active() {
		return nil, &sqljobber.ActiveError{ID: j.ID, State: j.State}
	}
	ok, err := l.DeleteIfUnchanged(ctx, j)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &sqljobber.ActiveError{ID: j.ID, State: j.State}
	}
	return j, nil
}

// DeleteIfUnchanged removes j's record if nobody has written it since j was
// read, and remembers its ID as gone (see Tombstone).
func (l *Ledger) DeleteIfUnchanged(ctx context.Context, j *Job) (bool, error) {
	deleted := false
	err := l.durable.InTx(ctx, func(q sqlexec.Querier) error {
		n, err := q.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE job_id = ? AND updated_at = ?", l.table), j.ID, l.timeArg(j.UpdatedAt))
		if err != nil || n == 0 {
			return err
		}
		deleted = true
		return l.bury(ctx, q, []*Job{j})
	})
	if err != nil {
		return false, fmt.Errorf("delete job: %w", err)
	}
	return deleted, nil
}

var goneColumnList = strings.Fields(strings.ReplaceAll(goneColumns, ",", " "))

// bury remembers removed jobs' IDs as gone: expired if the job's results
// had outlived their TTL, else purged. It forgets those gone for longer than
// the retention.
func (l *Ledger) bury(ctx context.Context, q sqlexec.Querier, jobs []*Job) error {
	t := l.now()
	upsert := l.d.upsertSQL(l.gone, goneColumnList)
	for _, j := range jobs {
		reason := sqljobber.GonePurged
		if !j.ExpiresAt.IsZero() && !j.ExpiresAt.After(t) {
			reason = sqljobber.GoneExpired
		}
		if _, err := q.Exec(ctx, upsert, j.ID, reason, l.timeArg(t), j.Owner); err != nil {
			return err
		}
	}
	_, err := q.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE gone_at < ?", l.gone), l.timeArg(t.Add(-l.cfg.GoneRetention)))
	return err
}

// Tombstone returns how a job whose record was removed went, if that was
// less than the retention ago; else sqljobber.ErrJobNotFound. A job that
// holds the ID again may still have one: ask Get first.
func (l *Ledger) Tombstone(ctx context.Context, id string) (*Tombstone, error) {
	var found []*Tombstone
	err := l.q.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE job_id = ? AND gone_at >= ?", goneColumns, l.gone),
		func(scan func(...any) error) error {
			var ts Tombstone
			var at ledgerTime
			err := scan(&ts.ID, &ts.Reason, &at, &ts.Owner)
			ts.At = at.t
			found = append(found, &ts)
			return err
		}, id, l.timeArg(l.now().Add(-l.cfg.GoneRetention)))
	switch {
	case err != nil:
		return nil, fmt.Errorf("get tombstone: %w", err)
	case len(found) == 0:
		return nil, fmt.Errorf("%w: %q", sqljobber.ErrJobNotFound, id)
	}
	return found[0], nil
}

// expiredSQL selects up to limit finished jobs whose expiry has passed
// (argument: the time now), reading _expiring.
func (l *Ledger) expiredSQL(limit int) string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE "+expiringCond+" AND expires_at <= ? AND state NOT IN %s ORDER BY expires_at LIMIT %d",
		jobColumns, l.table, activeStates, limit)
}

// Expired returns up to limit finished jobs whose results have outlived
// their TTL.
func (l *Ledger) Expired(ctx context.Context, limit int) ([]*Job, error) {
	jobs, err := l.jobs(ctx, l.q, l.expiredSQL(limit), l.timeArg(l.now()))
	if err != nil {
		return nil, fmt.Errorf("find expired jobs: %w", err)
	}
	return jobs, nil
}

// errGroupNotFound is sqljobber.ErrGroupNotFound with the group's ID.
func errGroupNotFound(id string) error { return fmt.Errorf("%w: %q", sqljobber.ErrGroupNotFound, id) }

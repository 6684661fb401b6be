package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

var groupColumnList = strings.Fields(strings.ReplaceAll(groupColumns, ",", " "))

// groupJobsSQL selects the jobs of a group (argument: its ID), reading
// _grouped.
func (l *Ledger) groupJobsSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ? AND "+groupedCond, jobColumns, l.table)
}

// Group returns a group and its jobs in submission order (jobs purged or
// expired since are left out), or sqljobber.ErrGroupNotFound.
func (l *Ledger) Group(ctx context.Context, id string) (*Group, []*Job, error) {
	g, err := l.groupRow(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := l.jobs(ctx, l.q, l.groupJobsSQL(), id)
	if err != nil {
		return nil, nil, fmt.Errorf("get group jobs: %w", err)
	}
	return g, inSubmissionOrder(g, jobs), nil
}

// groupRow reads a group's own row, or gives sqljobber.ErrGroupNotFound.
func (l *Ledger) groupRow(ctx context.Context, id string) (*Group, error) {
	var (
		g         Group
		ids       string
		cancelled int
		found     bool
		created   ledgerTime
		updated   ledgerTime
	)
	err := l.q.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ?", groupColumns, l.groups),
		func(scan func(...any) error) error {
			found = true
			return scan(&g.ID, &g.Concurrency, &ids, &cancelled, &created, &updated, &g.Owner)
		}, id)
	if err != nil {
		return nil, fmt.Errorf("get group: %w", err)
	}
	if !found {
		return nil, errGroupNotFound(id)
	}
	g.Cancelled, g.CreatedAt, g.UpdatedAt = cancelled != 0, created.t, updated.t
	if err := json.Unmarshal([]byte(ids), &g.JobIDs); err != nil {
		return nil, fmt.Errorf("group %s: job list: %w", id, err)
	}
	return &g, nil
}

// inSubmissionOrder orders jobs of g as g lists them.
func inSubmissionOrder(g *Group, jobs []*Job) []*Job {
	byID := make(map[string]*Job, len(jobs))
	for _, j := range jobs {
		byID[j.ID] = j
	}
	ordered := make([]*Job, 0, len(jobs))
	for _, jid := range g.JobIDs {
		if j, ok := byID[jid]; ok {
			ordered = append(ordered, j)
		}
	}
	return ordered
}

// ReleaseGroup lets held members of a group start, in submission order, until
// as many are unfinished and unheld as the group's concurrency allows. It
// returns the jobs it released, with their ID, queue and state only.
//
// It runs each time a member finishes, so it reads no more than it needs:
// the unfinished members' IDs, queues, states and holds, not whole records
// of every member (a group of thousands made that quadratic).
func (l *Ledger) ReleaseGroup(ctx context.Context, id string) ([]*Job, error) {
	g, err := l.groupRow(ctx, id)
	if err != nil || g.Cancelled {
		return nil, err
	}
	var active []*Job
	err = l.q.Query(ctx, fmt.Sprintf("SELECT job_id, queue, state, held FROM %s WHERE group_id = ? AND "+groupedCond+" AND state IN %s", l.table, activeStates),
		func(scan func(...any) error) error {
			var (
				j     Job
				state string
				held  int
			)
			if err := scan(&j.ID, &j.Queue, &state, &held); err != nil {
				return err
			}
			j.State, j.Held = sqljobber.State(state), held != 0
			active = append(active, &j)
			return nil
		}, id)
	if err != nil {
		return nil, fmt.Errorf("release group: %w", err)
	}
	running := 0
	var held []*Job
	for _, j := range inSubmissionOrder(g, active) {
		switch {
		case j.Held && j.State == sqljobber.StatePending:
			held = append(held, j)
		case !j.Held:
			running++
		}
	}
	var released []*Job
	t := l.now()
	for _, j := range held[:min(len(held), max(0, g.Concurrency-running))] {
		n, err := l.q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET held = 0, enqueued_at = ?, ready_at = %s, updated_at = ?
	WHERE job_id = ? AND held = 1 AND state = 'PENDING'`, l.table, l.d.greatest("ready_at", "?")),
			l.timeArg(t), l.timeArg(t), l.timeArg(t), j.ID)
		if err != nil {
			return released, fmt.Errorf("release group member: %w", err)
		}
		if n > 0 {
			j.Held = false
			released = append(released, j)
		}
	}
	return released, nil
}

// HeldGroups lists, in order, up to limit groups after the group ID after
// ("" for the first) that have members held back.
func (l *Ledger) HeldGroups(ctx context.Context, after string, limit int) ([]string, error) {
	var out []string
	err := l.q.Query(ctx, fmt.Sprintf("SELECT DISTINCT group_id FROM %s WHERE held = 1 AND state = 'PENDING' AND "+groupedCond+" AND group_id > ? ORDER BY group_id LIMIT %d", l.table, limit),
		func(scan func(...any) error) error {
			var s string
			err := scan(&s)
			out = append(out, s)
			return err
		}, after)
	if err != nil {
		return nil, fmt.Errorf("list held groups: %w", err)
	}
	return out, nil
}

// CancelGroup cancels a group and every unfinished member of it in one
// transaction, and returns the members as they were before: the caller
// stops the runs of those that had started. Once it returns, no member
// starts: those waiting are CANCELLED, and held ones are not released from
// a cancelled group. Whatever the group's size, it is one write, so a
// cancel is never left half done.
func (l *Ledger) CancelGroup(ctx context.Context, id string) ([]*Job, error) {
	var cancelled []*Job
	err := l.durable.InTx(ctx, func(q sqlexec.Querier) error {
		t := l.now()
		n, err := q.Exec(ctx, fmt.Sprintf("UPDATE %s SET cancelled = 1, updated_at = ? WHERE group_id = ?", l.groups), l.timeArg(t), id)
		if err != nil {
			return err
		}
		if n == 0 {
			return errGroupNotFound(id)
		}
		// Locked, so that no claim or finish changes them between the
		// read and the write.
		jobs, err := l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ? AND "+groupedCond+" AND state IN %s ORDER BY job_id%s",
			jobColumns, l.table, activeStates, l.d.lockRows()), id)
		if err != nil {
			return err
		}
		// The members' TTLs may differ, and with them their expiry.
		byTTL := map[time.Duration][]any{}
		for _, j := range jobs {
			byTTL[j.TTL] = append(byTTL[j.TTL], j.ID)
		}
		for ttl, ids := range byTTL {
			for chunk := range slices.Chunk(ids, cancelChunk) {
				args := append([]any{l.timeArg(t), l.timeArg(t), l.expiry(t, ttl)}, chunk...)
				if _, err := q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET state = 'CANCELLED', error = 'cancelled', held = 0, lease_until = NULL,
	finished_at = ?, updated_at = ?, expires_at = ? WHERE job_id IN (%s) AND state IN %s`, l.table, sqlexec.Placeholders(len(chunk)), activeStates),
					args...); err != nil {
					return err
				}
			}
		}
		cancelled = jobs
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cancel group: %w", err)
	}
	return cancelled, nil
}

// cancelChunk bounds the IDs one statement of CancelGroup lists, below
// every driver's limit on arguments.
const cancelChunk = 500

// DeleteGroup removes a group whose jobs have all finished, and their
// records (remembering their IDs as gone), and returns those jobs so the
// caller can drop their tables. An unfinished member gives
// *sqljobber.ActiveError.
func (l *Ledger) DeleteGroup(ctx context.Context, id string) ([]*Job, error) {
	var deleted []*Job
	err := l.durable.InTx(ctx, func(q sqlexec.Querier) error {
		jobs, err := l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ? AND "+groupedCond+" ORDER BY job_id", jobColumns, l.table), id)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.State.Active() {
				return &sqljobber.ActiveError{ID: j.ID, State: j.State}
			}
		}
		n, err := q.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE group_id = ?", l.groups), id)
		if err != nil {
			return err
		}
		if n == 0 {
			return errGroupNotFound(id)
		}
		if _, err := q.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE group_id = ? AND "+groupedCond+" AND state NOT IN %s", l.table, activeStates), id); err != nil {
			return err
		}
		deleted = jobs
		return l.bury(ctx, q, jobs)
	})
	if err != nil {
		return nil, err
	}
	return deleted, nil
}

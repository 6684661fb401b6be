package actors

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
)

// jobLister is what listings of jobs and queues read.
type jobLister interface {
	List(ctx context.Context, f sqljobber.JobFilter) ([]*ledger.Job, string, error)
	ListOf(ctx context.Context, f sqljobber.JobFilter, owner string) ([]*ledger.Job, string, error)
	QueueCounts(ctx context.Context, window time.Duration) (map[string]*sqljobber.QueueSummary, error)
	QueueCountsOf(ctx context.Context, window time.Duration, owner string) (map[string]*sqljobber.QueueSummary, error)
}

// queueWindow is how far back a queue's summary counts finished jobs.
const queueWindow = time.Hour

// ListJobs returns a page of the jobs f selects, newest first, those
// running with their progress (see withProgress): of every
// owner for an unrestricted or admin caller, else the caller's alone (as
// if no other job existed). A bad limit or cursor is *InvalidError.
func (e *Engine) ListJobs(ctx context.Context, f sqljobber.JobFilter) (*sqljobber.JobPage, error) {
	var (
		jobs []*ledger.Job
		next string
		err  error
	)
	if c, ok := sqljobber.CallerFrom(ctx); ok && !c.Admin {
		jobs, next, err = e.ledger.ListOf(ctx, f, c.Name)
	} else {
		jobs, next, err = e.ledger.List(ctx, f)
	}
	if err != nil {
		return nil, err
	}
	e.withProgress(ctx, jobs)
	return &sqljobber.JobPage{Jobs: jobsOf(jobs), Next: next}, nil
}

// Queues summarises each queue, by name: those of the tasks, the default
// queue, those this node works, those with jobs waiting, running or
// finished in the last hour, and, for an unrestricted or admin caller,
// those the cluster's members work. Another caller's counts are of its
// own jobs, and it is not shown queues that only other clients' jobs name
// (a request may name any queue) nor the members' (which only admins may
// list).
func (e *Engine) Queues(ctx context.Context) ([]sqljobber.QueueSummary, error) {
	var (
		counts map[string]*sqljobber.QueueSummary
		err    error
	)
	c, restricted := sqljobber.CallerFrom(ctx)
	restricted = restricted && !c.Admin
	if restricted {
		counts, err = e.ledger.QueueCountsOf(ctx, queueWindow, c.Name)
	} else {
		counts, err = e.ledger.QueueCounts(ctx, queueWindow)
	}
	if err != nil {
		return nil, err
	}
	names := knownQueues(e.tasks.Tasks(), e.cfg.DefaultQueue, e.cfg.Queues)
	if !restricted {
		for _, m := range e.Members() {
			for q := range m.Queues {
				names[q] = true
			}
		}
	}
	for q := range counts {
		names[q] = true
	}
	out := make([]sqljobber.QueueSummary, 0, len(names))
	for _, q := range slices.Sorted(maps.Keys(names)) {
		s := cmp.Or(counts[q], &sqljobber.QueueSummary{Queue: q})
		if s.Finished == nil {
			s.Finished = map[sqljobber.State]int64{}
		}
		s.Workers = e.Workers(q)
		out = append(out, *s)
	}
	return out, nil
}

// Databases summarises each source database the tasks run on or a cap
// names, by name: its cap, and its jobs running and ready, of every owner
// for an unrestricted or admin caller, else the caller's own. Whether a
// database is at its cap is the cluster's, whoever asks: a caller's ready
// jobs are held back while it is.
func (e *Engine) Databases(ctx context.Context) ([]sqljobber.DBSummary, error) {
	all, err := e.ledger.DBLoads(ctx, nil)
	if err != nil {
		return nil, err
	}
	shown := all
	if c, ok := sqljobber.CallerFrom(ctx); ok && !c.Admin {
		if shown, err = e.ledger.DBLoads(ctx, &c.Name); err != nil {
			return nil, err
		}
	}
	names := map[string]bool{}
	for _, t := range e.tasks.Tasks() {
		for _, db := range t.DBs {
			names[db] = true
		}
	}
	for db := range e.maxRunning {
		names[db] = true
	}
	out := make([]sqljobber.DBSummary, 0, len(names))
	for _, db := range slices.Sorted(maps.Keys(names)) {
		s := sqljobber.DBSummary{DB: db, MaxRunning: e.maxRunning[db]}
		if l := shown[db]; l != nil {
			s.Running, s.Ready = l.Running, l.Ready
		}
		if l := all[db]; l != nil && s.MaxRunning > 0 && l.Running >= int64(s.MaxRunning) {
			s.HeldBack = s.Ready
		}
		out = append(out, s)
	}
	return out, nil
}

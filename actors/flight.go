package actors

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Single flight: a job that may reuse results, submitted while an identical
// job (the same flight: owner, task, query, arguments, requested database,
// queue, the task's results backends) is unfinished, joins that job instead
// of running: it waits, PENDING with Joined naming the job, holding no slot,
// and is answered by its results when it succeeds, as a reusing job is.
// If that job fails or is cancelled, the oldest job that waited on it runs
// in its place, and the others wait on that one. The ledger decides who
// leads and who waits (ledger.AdmitFlight), in its own transactions, so
// that nothing here rests on which grains or nodes the actors believe
// alive: two nodes admitting identical jobs at once make one leader.
//
// Jobs of groups, jobs waiting for an ETA, and jobs that may not reuse
// results (fresh, max_age 0, no -- cache:) neither lead nor join.

// flightRecords is what the engine asks of the ledger for flights.
type flightRecords interface {
	AdmitFlight(ctx context.Context, j ledger.Job, node *ledger.Node, lease time.Duration) (*ledger.Job, error)
	SettleFlight(ctx context.Context, flight string) (*ledger.Settled, error)
	UnsettledFlights(ctx context.Context, limit int) ([]string, error)
}

// flightOf is the flight of computation c of task t in queue: c with any
// of the task's results backends, since a job's own is a random pick among
// them. The queue is part of it: a job joins only a job that waits for the
// same queue's slots, not one held up in another queue (a slower one, or
// one no node works).
func flightOf(c ledger.Computation, t *sqlexec.Task, queue string) string {
	backends := slices.Sorted(slices.Values(t.Results))
	// Not a backend's name: no fingerprint of a job is a flight. The
	// queue's length keeps it apart from the backends.
	c.ResultsBackend = fmt.Sprintf("flight:%d:%s:%s", len(queue), queue, strings.Join(backends, ","))
	return ledger.Fingerprint(c)
}

// admitFlight admits j in its flight (ledger.AdmitFlight): started in the
// slot taken for it on queue, if one was and j leads; else waiting to be
// claimed, or joining the flight's leader (the slot, if any, goes back).
// It reports whether j waits to be claimed (its queue is to be woken), and
// whether it joined.
func (e *Engine) admitFlight(ctx context.Context, j ledger.Job, queue *actor.PID) (wake, joined bool, err error) {
	var node *ledger.Node
	if queue != nil {
		if !e.hold() {
			e.node.System().Root.Send(queue, slotFreed{task: j.Task})
			return false, false, sqljobber.ErrStopping
		}
		defer e.wg.Done()
		self := e.self
		node = &self
	}
	a, err := e.ledger.AdmitFlight(ctx, j, node, e.cfg.Lease)
	started := err == nil && a.State == sqljobber.StateStarted
	if queue != nil && !started {
		e.node.System().Root.Send(queue, slotFreed{task: j.Task})
	}
	switch {
	case err != nil:
		return false, false, err
	case a.Joined != "":
		e.logger.Info("job joined an identical unfinished job", slog.String("job_id", a.ID), slog.String("task", a.Task),
			slog.String("joined", a.Joined))
		return false, true, nil
	case started:
		e.runInSlot(a, queue)
		return false, false, nil
	}
	return true, false, nil
}

// settleFlight settles, in the background, the flight that j led, now that
// j has finished or is gone: the jobs that waited on it are answered by its
// results or run (see ledger.SettleFlight). Should this fail, or the node
// die first, the housekeeper settles it (settleFlights).
func (e *Engine) settleFlight(j *ledger.Job) {
	if j.Flight == "" || j.Joined != "" {
		return
	}
	e.spawn(func() { e.settle(j.Flight) })
}

func (e *Engine) settle(flight string) {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	s, err := e.ledger.SettleFlight(ctx, flight)
	if err != nil {
		if e.ctx.Err() == nil {
			e.logger.Warn("settle the jobs that waited on a finished job; the housekeeper tries again", slog.String("error_code", sqlexec.ErrorCode(err)))
		}
		return
	}
	for _, j := range s.Answered {
		e.reused(j)
		e.jobChanged(j, sqljobber.StateSuccess)
	}
	if s.Leader != nil {
		e.logger.Info("job runs: the identical job it joined did not succeed", slog.String("job_id", s.Leader.ID),
			slog.String("task", s.Leader.Task))
		e.wake(s.Leader.Queue)
	}
}

// settleFlights settles the flights whose leaders finished unsettled: their
// node died before it settled them, or could not reach the ledger.
func (e *Engine) settleFlights() {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	flights, err := e.ledger.UnsettledFlights(ctx, housekeepingBatch)
	if err != nil {
		e.logger.Warn("find the jobs waiting on finished jobs", slog.String("error_code", sqlexec.ErrorCode(err)))
		return
	}
	for _, f := range flights {
		e.settle(f)
	}
}

package actors

import (
	"context"
	"log/slog"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// maintain is the node's background loop: it wakes the queues now and then
// (a safety net for wake-ups lost to a move or a crash), renews the leases
// of the runs here, takes back runs whose node died, removes expired
// results, and lets groups release held members.
func (e *Engine) maintain() {
	defer e.wg.Done()
	poll := time.NewTicker(e.cfg.PollInterval)
	defer poll.Stop()
	renew := time.NewTicker(max(e.cfg.Lease/3, time.Millisecond))
	defer renew.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-e.ctx.Done():
			return
		case <-poll.C:
			for queue := range e.queues {
				e.wakeLocal(queue)
			}
			e.expire()
			if tick%groupSweepEveryNthPoll == 0 {
				e.sweepGroups(e.ctx)
			}
		case <-renew.C:
			e.renewLeases()
			e.recoverLost()
		}
	}
}

func (e *Engine) renewLeases() {
	ids := e.runIDs()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	alive, err := e.ledger.Renew(ctx, ids, e.cfg.Lease)
	if err != nil {
		e.logger.Warn("renew run leases", slog.String("error_code", sqlexec.ErrorCode(err)))
		return
	}
	for _, id := range ids {
		if !alive[id] {
			e.cancelRun(id, errRunLost)
		}
	}
}

// recoverLost makes the jobs of runs whose lease expired (their node died)
// ready again.
func (e *Engine) recoverLost() {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	jobs, err := e.ledger.RecoverLost(ctx, "")
	if err != nil {
		e.logger.Warn("recover lost runs", slog.String("error_code", sqlexec.ErrorCode(err)))
		return
	}
	for _, j := range jobs {
		e.logger.Info("job's run was lost with its node", slog.String("job_id", j.ID), slog.String("node", j.Node), slog.String("state", string(j.State)))
		e.recovered(j)
	}
}

// expire asks the grains of jobs whose results outlived their TTL to remove
// them.
func (e *Engine) expire() {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	jobs, err := e.ledger.Expired(ctx, expiredBatch)
	if err != nil {
		e.logger.Warn("find expired results", slog.String("error_code", sqlexec.ErrorCode(err)))
		return
	}
	for _, j := range jobs {
		reply, err := e.request(ctx, jobKind, j.ID, &jobpb.ExpireJob{JobId: j.ID, UpdatedAtUnixMicros: j.UpdatedAt.UnixMicro()})
		if err == nil && failure(reply) {
			e.logger.Warn("expire job results", slog.String("job_id", j.ID), slog.String("error", reply.Error))
		}
	}
}

// recovered acts on a job whose run was lost: it runs again, or it failed
// and those waiting for it or its group learn so.
func (e *Engine) recovered(j *ledger.Job) {
	if j.State == sqljobber.StateRetry {
		e.wake(j.Queue)
		return
	}
	e.jobChanged(j, j.State)
	if j.GroupID != "" {
		e.groupChanged(j.GroupID)
	}
}

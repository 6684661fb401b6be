package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// The ledger's leases a node takes: its worker name's, and the role of the
// node that does the cluster's housekeeping.
const (
	nameLeasePrefix  = "node/"
	housekeeperLease = "role/housekeeper"
	// probeTimeout bounds a dial to the address of a node that holds a
	// lease, to see whether anything still listens there.
	probeTimeout = time.Second
)

func nameLease(name string) string { return nameLeasePrefix + name }

// nameDetail is what a node says of itself in its name's lease.
type nameDetail struct {
	Address string    `json:"address"`
	Started time.Time `json:"started"`
}

// holdName takes this node's worker name's lease. The lease of an earlier
// run of this node is taken over when that run is provably gone: it was at
// this very address (two processes cannot listen on one port), or nothing
// listens at its address any more. Else the lease must run out first, and
// the error says who holds it.
func (e *Engine) holdName(ctx context.Context) error {
	me := nameDetail{Address: e.node.Address(), Started: time.Now().UTC()}
	detail, _ := json.Marshal(me)
	_, err := e.ledger.TakeLease(ctx, nameLease(e.self.Name), e.self.ID, string(detail), e.cfg.NodeLease, func(cur *ledger.Lease) bool {
		var was nameDetail
		if json.Unmarshal([]byte(cur.Detail), &was) != nil || was.Address == "" {
			return false
		}
		return was.Address == me.Address || refused(ctx, was.Address)
	})
	var held *ledger.HeldError
	if errors.As(err, &held) {
		var was nameDetail
		_ = json.Unmarshal([]byte(held.Lease.Detail), &was)
		return fmt.Errorf("worker name %q is held by a live node (incarnation %s at %s, started %s); give this node another --worker-name, or, if that node is gone, start this one again after %s",
			e.self.Name, held.Lease.Holder, was.Address, was.Started.Format(time.RFC3339), held.Lease.Until.Format(time.RFC3339))
	}
	return err
}

// refused reports whether a TCP connection to addr is refused: nothing
// listens there, so the process that did is gone.
func refused(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && !op.Timeout() && ctx.Err() == nil
}

// renew renews, on a schedule of its own that nothing else holds up, the
// leases of the runs here and of this node's name.
func (e *Engine) renew() {
	defer e.wg.Done()
	every := max(min(e.cfg.Lease, e.cfg.NodeLease)/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.renewLeases()
		}
	}
}

func (e *Engine) renewLeases() {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	if err := e.ledger.RenewLease(ctx, nameLease(e.self.Name), e.self.ID, e.cfg.NodeLease); err != nil && e.ctx.Err() == nil {
		e.logger.Error("renew this node's hold on its worker name", slog.String("error_code", sqlexec.ErrorCode(err)), slog.Any("error", err))
	}
	runs := e.localRuns()
	if len(runs) == 0 {
		return
	}
	alive, err := e.ledger.Renew(ctx, runs, e.cfg.Lease)
	if err != nil {
		e.logger.Warn("renew run leases", slog.String("error_code", sqlexec.ErrorCode(err)))
		return
	}
	for _, r := range runs {
		if !alive[r.RunID] {
			e.cancelRun(r.RunID, errRunLost)
		}
	}
}

// housekeep is the node's background loop: it wakes the queues now and then
// (a safety net for wake-ups lost to a move or a crash) and, while this node
// is the cluster's housekeeper (one node at a time holds the role's lease),
// removes expired results, takes back runs whose lease ran out, and lets
// groups release held members, a bounded batch of each per pass.
func (e *Engine) housekeep() {
	defer e.wg.Done()
	poll := time.NewTicker(e.cfg.PollInterval)
	defer poll.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-e.ctx.Done():
			return
		case <-poll.C:
		}
		for queue := range e.queues {
			e.wakeLocal(queue)
		}
		if !e.housekeeper() {
			continue
		}
		e.expire()
		e.recoverExpired()
		e.settleFlights()
		if tick%groupSweepEveryNthPoll == 0 {
			e.sweepGroups(e.ctx)
		}
	}
}

// housekeeper takes or renews the housekeeping role for a while, and
// reports whether this node holds it.
func (e *Engine) housekeeper() bool {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	ttl := max(3*e.cfg.PollInterval, 10*time.Second)
	_, err := e.ledger.TakeLease(ctx, housekeeperLease, e.self.ID, e.self.Name, ttl, nil)
	var held *ledger.HeldError
	if err != nil && !errors.As(err, &held) && e.ctx.Err() == nil {
		e.logger.Warn("take the housekeeping role", slog.String("error_code", sqlexec.ErrorCode(err)))
	}
	return err == nil
}

// recoverExpired makes the jobs of runs whose lease ran out (their node
// died unseen) ready again.
func (e *Engine) recoverExpired() {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	jobs, err := e.ledger.RecoverExpired(ctx, e.cfg.LostRunsMax, housekeepingBatch)
	if err != nil {
		e.logger.Warn("take back runs whose lease ran out", slog.String("error_code", sqlexec.ErrorCode(err)))
		return
	}
	for _, j := range jobs {
		e.logger.Info("job's run was lost with its node: its lease ran out", slog.String("job_id", j.ID), slog.String("node", j.Node),
			slog.String("state", string(j.State)))
		e.recovered(j)
	}
}

// MemberDown takes back, in the background, the runs of a member that is
// gone: it was declared dead, left, or nothing listens at its address. A
// member taken for dead that is in fact alive loses its runs, which can
// publish nothing from then on, and they run again.
func (e *Engine) MemberDown(m sqljobber.Member) {
	if !e.running.Load() || m.ID == e.self.ID {
		return
	}
	e.spawn(func() {
		ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
		defer cancel()
		jobs, err := e.ledger.TakeOverNode(ctx, m.ID, e.cfg.LostRunsMax)
		if err != nil {
			e.logger.Warn("take back the runs of a member that is gone", slog.String("member", m.Name), slog.String("error_code", sqlexec.ErrorCode(err)))
			return
		}
		if len(jobs) > 0 {
			e.logger.Info("took back the runs of a member that is gone", slog.String("member", m.Name), slog.Int("jobs", len(jobs)))
		}
		for _, j := range jobs {
			e.recovered(j)
		}
	})
}

// expire asks the grains of jobs whose results outlived their TTL to remove
// them.
func (e *Engine) expire() {
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	jobs, err := e.ledger.Expired(ctx, housekeepingBatch)
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
	e.capFreed(j)
	if j.State.Active() {
		e.wake(j.Queue)
		return
	}
	e.jobChanged(j, j.State)
	e.settleFlight(j)
	if j.GroupID != "" {
		e.groupChanged(j.GroupID)
	}
}

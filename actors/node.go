package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/internal/retry"
	"github.com/sql-jobber/sql-jobber/ledger"
)

// nodeActorName is the actor on every member that takes messages for the
// node as a whole (wake-ups, run cancellations).
const nodeActorName = "sqljobber-node"

// wake tells every member that works queue (this one included) that jobs
// may be ready, so a free slot anywhere takes them at once rather than at
// its next poll.
func (e *Engine) wake(queue string) {
	e.wakeLocal(queue)
	root := e.node.System().Root
	for _, m := range e.node.Members() {
		if _, works := m.Queues[queue]; works && !m.Self && m.State == sqljobber.MemberAlive {
			root.Send(actor.NewPID(m.Address, nodeActorName), &jobpb.WakeQueue{Queue: queue})
		}
	}
}

// capFreed wakes every queue of every member when j, whose run ended or
// was handed back, ran against a capped source database: a place under its
// cap is free, and the jobs that wait for it may be in any queue.
func (e *Engine) capFreed(j *ledger.Job) {
	if _, capped := e.maxRunning[j.SourceDB]; !capped || !e.running.Load() {
		return
	}
	root := e.node.System().Root
	for _, m := range e.node.Members() {
		if m.State != sqljobber.MemberAlive {
			continue
		}
		for q := range m.Queues {
			if m.Self {
				e.wakeLocal(q)
			} else {
				root.Send(actor.NewPID(m.Address, nodeActorName), &jobpb.WakeQueue{Queue: q})
			}
		}
	}
}

// queueActor is this node's actor for queue, or nil if the node does not
// work it or the actor has not started.
func (e *Engine) queueActor(queue string) *actor.PID {
	if ref, ok := e.queues[queue]; ok {
		return ref.pid.Load()
	}
	return nil
}

// wakeBy has this node's actor for queue, if it works that queue, wake by t
// at the latest (it keeps one timer, for the earliest such time).
func (e *Engine) wakeBy(queue string, t time.Time) {
	if pid := e.queueActor(queue); pid != nil {
		e.node.System().Root.Send(pid, wakeBy{at: t})
	}
}

// wakeLocal wakes this node's actor for queue, if it works that queue.
func (e *Engine) wakeLocal(queue string) {
	if pid := e.queueActor(queue); pid != nil {
		e.node.System().Root.Send(pid, wake{})
	}
}

// stopRun stops a cancelled job's run wherever it is: here at once, on
// another member by a message (which also learns of it at its next lease
// renewal, should the message be lost). It returns a channel closed when a
// run here has ended, or nil.
func (e *Engine) stopRun(j *ledger.Job) <-chan struct{} {
	if j.NodeID == e.self.ID {
		return e.cancelRun(j.RunID, errCancelled)
	}
	for _, m := range e.node.Members() {
		if m.ID == j.NodeID && !m.Self {
			e.node.System().Root.Send(actor.NewPID(m.Address, nodeActorName), &jobpb.CancelRun{RunId: j.RunID})
		}
	}
	return nil
}

// nodeActor receives what other members send this node: wake-ups, run
// cancellations, and questions about its runs' progress.
type nodeActor struct{ e *Engine }

func (a *nodeActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *jobpb.WakeQueue:
		a.e.wakeLocal(msg.Queue)
	case *jobpb.CancelRun:
		a.e.cancelRun(msg.RunId, errCancelled)
	case *jobpb.RunProgress:
		// Answered from memory, under a lock held only to copy counters:
		// no run's work waits on it, nor it on a run.
		ctx.Respond(&jobpb.RunProgressReply{Runs: a.e.localProgress(msg.RunIds)})
	}
}

// Workers is how many members of the cluster work queue ("" for the
// default queue), leaving ones aside: 0 says that its jobs wait until a
// node that works it joins.
func (e *Engine) Workers(queue string) int {
	queue = cmp.Or(queue, e.cfg.DefaultQueue)
	n := 0
	for _, m := range e.Members() {
		if _, ok := m.Queues[queue]; ok && m.State != sqljobber.MemberLeaving {
			n++
		}
	}
	return n
}

// Members describes the cluster's members.
func (e *Engine) Members() []sqljobber.Member {
	if !e.running.Load() {
		return nil
	}
	return e.node.Members()
}

func (e *Engine) request(ctx context.Context, kind, id string, msg proto.Message) (*jobpb.Reply, error) {
	if !e.running.Load() || e.ctx.Err() != nil {
		return nil, sqljobber.ErrStopping
	}
	switch msg.(type) {
	case *jobpb.SubmitJob, *jobpb.SubmitGroup:
		if e.draining.Load() {
			return nil, sqljobber.ErrStopping
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.node.RequestTimeout())
		defer cancel()
	}
	// A grain whose node is stopping refuses, having done nothing: ask
	// again until the ID's next owner answers, or the time is up (and
	// then the refusal is the answer).
	var reply *jobpb.Reply
	err := retry.Do(ctx, retry.Backoff{First: 20 * time.Millisecond, Max: 250 * time.Millisecond}, func(ctx context.Context) (bool, error) {
		res, err := e.node.Request(ctx, kind, id, msg)
		if err != nil {
			return true, err
		}
		r, ok := res.(*jobpb.Reply)
		if !ok {
			return true, fmt.Errorf("unexpected reply %T", res)
		}
		reply = r
		return r.Outcome != jobpb.Reply_OUTCOME_UNAVAILABLE, nil
	})
	if err != nil && (reply == nil || reply.Outcome != jobpb.Reply_OUTCOME_UNAVAILABLE) {
		return nil, err
	}
	return reply, nil
}

// replyError maps a grain's reply to the errors callers branch on.
func replyError(r *jobpb.Reply, kind string, notFound error, id string) error {
	switch r.Outcome {
	case jobpb.Reply_OUTCOME_OK:
		return nil
	case jobpb.Reply_OUTCOME_NOT_FOUND:
		return fmt.Errorf("%w: %q", notFound, id)
	case jobpb.Reply_OUTCOME_ACTIVE:
		return &sqljobber.ActiveError{ID: r.JobId, State: sqljobber.State(r.State)}
	case jobpb.Reply_OUTCOME_TAKEN:
		return &sqljobber.TakenError{Kind: r.Kind, ID: r.JobId}
	case jobpb.Reply_OUTCOME_FINISHED:
		return &sqljobber.FinishedError{Kind: kind, ID: r.JobId, State: sqljobber.State(r.State)}
	case jobpb.Reply_OUTCOME_UNAVAILABLE:
		return sqljobber.ErrStopping
	case jobpb.Reply_OUTCOME_TIMED_OUT:
		return fmt.Errorf("%w: %s timed out: %w", sqljobber.ErrUnavailable, kind, context.DeadlineExceeded)
	case jobpb.Reply_OUTCOME_BUSY:
		// The driver's words (which can name hosts) stay in the log.
		return fmt.Errorf("%w: the job ledger cannot be reached or is busy; try again later", sqljobber.ErrUnavailable)
	}
	return errors.New(r.Error)
}

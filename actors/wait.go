package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
)

// waitSlack is how much longer than the wait itself a waiting caller gives
// the grain to answer, so that an answer at the end of the wait is not lost
// to the caller's own timeout.
const waitSlack = 5 * time.Second

// waiter is a caller waiting for a job or group to finish.
type waiter struct {
	to    *actor.PID // the caller's future, on any member
	until time.Time
}

// waiters are the callers a grain answers when its job or group finishes,
// or when their wait ends. The grain is told of the finish by a JobChanged
// or GroupChanged message from whichever node changed it; it reads the
// ledger then, not on a timer.
type waiters struct {
	e *Engine
	// state reads the job's or group's state from the ledger, and whether
	// it is final: gone (NOT_FOUND) or finished (OK). A failed read is not
	// final.
	state func(id string) (*jobpb.Reply, bool)
	list  []waiter
	timer *time.Timer
}

// waitTick tells a grain that a waiter's time may be up.
type waitTick struct{}

// receive handles what every grain with waiters handles alike: its life
// (it passivates when idle, unless callers wait) and the end of waits. It
// reports whether the message was one of those.
func (w *waiters) receive(ctx actor.Context) bool {
	switch ctx.Message().(type) {
	case *actor.Started:
		ctx.SetReceiveTimeout(w.e.cfg.GrainIdle)
	case *actor.ReceiveTimeout:
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		w.stop()
	case waitTick:
		// The caller reads the state itself.
		w.answer(ctx, okReply(), false)
	default:
		return false
	}
	return true
}

// wait answers the sender at once if id is final or cannot be read, else
// when it finishes or after millis.
func (w *waiters) wait(ctx actor.Context, id string, millis int64) {
	reply, final := w.state(id)
	if final || failure(reply) || millis <= 0 || ctx.Sender() == nil {
		ctx.Respond(reply)
		return
	}
	w.list = append(w.list, waiter{to: ctx.Sender(), until: time.Now().Add(time.Duration(millis) * time.Millisecond)})
	w.e.metrics.waiters.Inc()
	// A grain that passivated would leave its waiters unanswered until
	// their timeout.
	ctx.SetReceiveTimeout(0)
	w.schedule(ctx)
}

// changed answers every waiter if id has become final.
func (w *waiters) changed(ctx actor.Context, id string) {
	if len(w.list) == 0 {
		return
	}
	if reply, final := w.state(id); final {
		w.answer(ctx, reply, true)
	}
}

// schedule arms the timer for the earliest waiter's end.
func (w *waiters) schedule(ctx actor.Context) {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.list) == 0 {
		return
	}
	first := slices.MinFunc(w.list, func(a, b waiter) int { return a.until.Compare(b.until) }).until
	self, root := ctx.Self(), w.e.node.System().Root
	w.timer = time.AfterFunc(time.Until(first), func() { root.Send(self, waitTick{}) })
}

// answer sends reply to every waiter (all) or to those whose wait has
// ended, and lets the grain passivate again once none is left.
func (w *waiters) answer(ctx actor.Context, reply *jobpb.Reply, all bool) {
	now := time.Now()
	kept := w.list[:0]
	for _, wt := range w.list {
		if all || !wt.until.After(now) {
			ctx.Send(wt.to, reply)
		} else {
			kept = append(kept, wt)
		}
	}
	w.e.metrics.waiters.Sub(float64(len(w.list) - len(kept)))
	clear(w.list[len(kept):])
	w.list = kept
	w.schedule(ctx)
	if len(w.list) == 0 {
		ctx.SetReceiveTimeout(w.e.cfg.GrainIdle)
	}
}

// stop releases the timer when the grain stops. Its waiters get no answer:
// their requests end at their own deadline and the caller reads the ledger.
func (w *waiters) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.e.metrics.waiters.Sub(float64(len(w.list)))
	w.list = nil
}

// WaitJob waits up to d for a job to reach a final state, and returns early
// when it does. It returns sqljobber.ErrJobNotFound for an unknown job.
// When the wait ends with the job finished and its grain knows the
// finished record, it returns that record, as Job would read it; otherwise
// nil, and the caller reads the job's state itself, whatever ended the
// wait. A wait the grain could not answer (it moved with a membership
// change) ends at its deadline without error.
func (e *Engine) WaitJob(ctx context.Context, id string, d time.Duration) (*sqljobber.Job, error) {
	if _, ok := sqljobber.CallerFrom(ctx); ok && d > 0 {
		// Waiting on a job that is not the caller's would tell it the
		// job exists, and when it ends.
		if _, err := e.visibleJob(ctx, id); err != nil {
			return nil, err
		}
	}
	reply, err := e.wait(ctx, jobKind, id, d, &jobpb.WaitJob{JobId: id, WaitMillis: d.Milliseconds()}, sqljobber.ErrJobNotFound)
	if err != nil || reply == nil || len(reply.FinishedJobJson) == 0 {
		return nil, err
	}
	var j sqljobber.Job
	if json.Unmarshal(reply.FinishedJobJson, &j) != nil || j.ID != id || j.State.Active() || !sqljobber.Sees(ctx, j.Owner) {
		// Not one the caller may be answered with: it reads the job
		// (and is told what it may see).
		return nil, nil
	}
	return &j, nil
}

// WaitGroup is WaitJob for a group: it ends early when the group is
// finished (every member final) or cancelled.
func (e *Engine) WaitGroup(ctx context.Context, id string, d time.Duration) error {
	if _, ok := sqljobber.CallerFrom(ctx); ok && d > 0 {
		// Whether the caller may see it, not its members' progress
		// (which would ask their nodes for nothing).
		if _, _, err := e.visibleGroup(ctx, id); err != nil {
			return err
		}
	}
	_, err := e.wait(ctx, groupKind, id, d, &jobpb.WaitGroup{GroupId: id, WaitMillis: d.Milliseconds()}, sqljobber.ErrGroupNotFound)
	return err
}

// wait sends a wait to the grain of id and returns its answer; nil when the
// wait ended without one.
func (e *Engine) wait(ctx context.Context, kind, id string, d time.Duration, msg proto.Message, notFound error) (*jobpb.Reply, error) {
	if d <= 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d+waitSlack)
	defer cancel()
	reply, err := e.request(ctx, kind, id, msg)
	if err == nil && (failure(reply) || reply.Outcome == jobpb.Reply_OUTCOME_NOT_FOUND) {
		err = replyError(reply, kind, notFound, id)
	}
	switch {
	case errors.Is(err, sqljobber.ErrUnavailable) && errors.Is(err, context.DeadlineExceeded):
		// Out of time, finding the grain or at it: the wait ends.
		return nil, nil
	case errors.Is(err, notFound):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("wait for %s: %w", kind, err)
	}
	return reply, nil
}

// jobChanged tells a job's grain, in the background, that job j, as
// admitted, has finished in state, so that it answers those waiting for it.
func (e *Engine) jobChanged(j *ledger.Job, state sqljobber.State) {
	e.notify(&jobpb.JobChanged{JobId: j.ID, FinalState: string(state), CreatedUnixMicros: j.CreatedAt.UnixMicro()})
}

// jobFinished is jobChanged for run j, which recorded final outcome o at
// (zero: when, it cannot tell). A SUCCESS's notice says what the run wrote,
// so that a grain that read the job STARTED by this run knows the finished
// record. A failure's does not: its error text is stored as the database
// takes it, which the run cannot vouch for.
func (e *Engine) jobFinished(j *ledger.Job, o ledger.Outcome, at time.Time) {
	msg := &jobpb.JobChanged{JobId: j.ID, FinalState: string(o.State), CreatedUnixMicros: j.CreatedAt.UnixMicro()}
	if o.State == sqljobber.StateSuccess && !at.IsZero() {
		msg.RunId, msg.Count, msg.FinishedUnixMicros = j.RunID, o.Count, at.UnixMicro()
	}
	e.notify(msg)
}

// notify sends msg to its job's grain in the background.
func (e *Engine) notify(msg *jobpb.JobChanged) {
	e.spawn(func() {
		ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
		defer cancel()
		// A lost notice delays the waiters to the end of their wait, no more.
		_, _ = e.request(ctx, jobKind, msg.JobId, msg)
	})
}

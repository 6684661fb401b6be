package actors

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sql-jobber/sql-jobber/ledger"
)

// Messages of the queue actor; node-local, so plain structs.
type (
	// wake says jobs of the queue may be ready: a job was admitted, a
	// wait ended, or the periodic poll came round.
	wake struct{}
	// wakeBy says a job of the queue becomes ready at a time: the actor
	// wakes then, if not before.
	wakeBy struct{ at time.Time }
	// claimed is the outcome of one claim on the ledger.
	claimed struct {
		// asked is how many slots were taken for the claim; those
		// it did not fill go back.
		asked int
		jobs  []*ledger.Job
		next  time.Time // when the next waiting job is ready, if one waits
		err   error
	}
	// slotFreed hands back the slot of a job of task: its run ended, or
	// a slot given for its start (takeSlot) was not used.
	slotFreed struct{ task string }
	// takeSlot asks, for a job of task about to be admitted, for a slot
	// to start it in at once; the answer is a slotAnswer.
	takeSlot struct{ task string }
	// slotAnswer says whether a slot was given.
	slotAnswer struct{ ok bool }
)

// queueRef is the engine's handle on this node's actor of one queue; pid is
// set once the actor runs.
type queueRef struct {
	name  string
	slots int
	pid   atomic.Pointer[actor.PID]
}

// queueActor gates one queue on this node. It owns the queue's slots here:
// it alone counts them, and whatever uses one asks it first. While a slot is
// free it claims the queue's next ready jobs from the ledger (first in,
// first out across every node that works the queue) and runs them. Jobs
// waiting for an ETA or a retry hold no slot: the actor wakes when the
// first of them is due.
//
// Once a claim finds no ready job, the queue is idle: it claims nothing
// until something wakes it, and meanwhile gives a job grain that asks
// (takeSlot) a free slot for the job it is admitting, which then starts at
// once with no claim (ledger.Ledger.Start): no job waits that the slot
// would serve first. That saves a one-row job a third of its ledger writes
// and a round trip, and keeps the queue first in, first out.
//
// A task bounded by -- conc: runs no more jobs at once on the node than its
// bound: the actor counts the slots of such tasks, claims pass over their
// jobs while they are at the bound, and a claim that brings more than the
// bound allows hands the extra jobs back to the ledger, in their place.
type queueActor struct {
	e    *Engine
	ref  *queueRef
	used int // slots running a job, or taken for a claim or a start
	// bounded counts the slots of the tasks that have a -- conc: bound.
	bounded map[string]int
	idle    bool // the last claim found nothing ready, and nothing woke the queue since
	// claiming is set while a claim is in flight; woken, when a wake came
	// in since it began.
	claiming bool
	woken    bool
	timer    *time.Timer
	timerAt  time.Time
}

func newQueueActor(e *Engine, ref *queueRef) *queueActor {
	return &queueActor{e: e, ref: ref, bounded: map[string]int{}}
}

func (q *queueActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		q.fill(ctx)
	case wake:
		q.idle, q.woken = false, true
		q.fill(ctx)
	case wakeBy:
		q.wakeAt(ctx, msg.at)
	case takeSlot:
		ok := q.idle && q.used < q.ref.slots && !q.e.draining.Load() && !q.atBound(msg.task)
		if ok {
			q.take(msg.task)
		}
		ctx.Respond(slotAnswer{ok: ok})
	case *claimed:
		q.claiming = false
		q.used -= msg.asked
		var extra []*ledger.Job
		for _, j := range msg.jobs {
			if q.atBound(j.Task) {
				extra = append(extra, j)
				continue
			}
			q.take(j.Task)
			q.e.runInSlot(j, ctx.Self())
		}
		if len(extra) > 0 {
			q.handBack(extra)
		}
		switch {
		case msg.err != nil:
			if q.e.ctx.Err() == nil {
				q.e.logger.Error("claim a job; the next poll tries again", slog.String("queue", q.ref.name), slog.Any("error", msg.err))
			}
		case len(msg.jobs) > 0 || q.woken:
			q.fill(ctx)
		default:
			// Nothing is ready, and nothing was admitted since the claim
			// began: until a wake, nothing waits for a free slot.
			q.idle = true
			if !msg.next.IsZero() {
				q.wakeAt(ctx, msg.next)
			}
		}
	case slotFreed:
		q.used--
		if bound := q.bound(msg.task); bound > 0 {
			q.bounded[msg.task]--
			if q.bounded[msg.task] == bound-1 {
				// Its jobs, passed over while it was at its bound, may
				// be all that waits.
				q.idle = false
			}
		}
		if !q.idle {
			q.fill(ctx)
		}
	case *actor.Stopping:
		if q.timer != nil {
			q.timer.Stop()
		}
	}
}

// bound is task's -- conc: bound, 0 for none.
func (q *queueActor) bound(task string) int {
	if t, ok := q.e.tasks.Task(task); ok {
		return t.Conc
	}
	return 0
}

// atBound reports whether task runs as many jobs here as its bound allows.
func (q *queueActor) atBound(task string) bool {
	bound := q.bound(task)
	return bound > 0 && q.bounded[task] >= bound
}

// take counts a slot taken for a job of task.
func (q *queueActor) take(task string) {
	q.used++
	if q.bound(task) > 0 {
		q.bounded[task]++
	}
}

// handBack returns claimed jobs that their tasks' bounds leave no room for
// to the ledger, in the background; their place in the queue is kept.
func (q *queueActor) handBack(jobs []*ledger.Job) {
	q.e.spawn(func() {
		for _, j := range jobs {
			q.e.release(j)
		}
	})
}

// fill claims as many jobs as slots are free, in one claim at a time,
// passing over the tasks at their bounds.
func (q *queueActor) fill(ctx actor.Context) {
	free := q.ref.slots - q.used
	if q.claiming || free <= 0 || q.e.draining.Load() {
		return
	}
	var except []string
	for task := range q.bounded {
		if q.atBound(task) {
			except = append(except, task)
		}
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	q.woken = false
	if q.e.spawn(func() {
		c := q.claim(free, except)
		c.asked = free
		root.Send(self, c)
	}) {
		q.claiming = true
		q.used += free
	}
}

func (q *queueActor) claim(n int, except []string) *claimed {
	e := q.e
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	jobs, err := e.ledger.Claim(ctx, q.ref.name, e.self, n, e.cfg.Lease, except...)
	if err != nil {
		return &claimed{err: err}
	}
	if len(jobs) > 0 {
		if e.ctx.Err() != nil {
			// Claimed as the node stops: hand them straight back.
			for _, j := range jobs {
				e.release(j)
			}
			return &claimed{}
		}
		return &claimed{jobs: jobs}
	}
	next, _, err := e.ledger.NextReady(ctx, q.ref.name)
	return &claimed{next: next, err: err}
}

// wakeAt makes sure the actor wakes by t.
func (q *queueActor) wakeAt(ctx actor.Context, t time.Time) {
	if q.timer != nil && !q.timerAt.After(t) && q.timerAt.After(time.Now()) {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	q.timerAt = t
	q.timer = time.AfterFunc(time.Until(t), func() { root.Send(self, wake{}) })
}

// takeSlotTimeout bounds a grain's wait for its queue actor's answer,
// which takes microseconds unless the node is stopping.
const takeSlotTimeout = 5 * time.Second

// idleSlot asks j's queue actor on this node for a slot to start j in the
// moment it is admitted, if j may: it is ready now, in no group, and its
// queue here is idle with a slot free. It returns the actor, to hand the
// slot back to (slotFreed), or nil. A job of a capped source database
// never starts so: only a claim may count it under its cap.
func (e *Engine) idleSlot(j *ledger.Job) *actor.PID {
	ref, ok := e.queues[j.Queue]
	_, capped := e.maxRunning[j.SourceDB]
	if !ok || capped || j.GroupID != "" || j.Held || j.ETA.After(time.Now()) || e.draining.Load() {
		return nil
	}
	pid := ref.pid.Load()
	if pid == nil {
		return nil
	}
	// An answer lost to the timeout would keep its slot: the node is
	// stopping then, and its slots go with it.
	res, err := e.node.System().Root.RequestFuture(pid, takeSlot{task: j.Task}, takeSlotTimeout).Result()
	if a, ok := res.(slotAnswer); err == nil && ok && a.ok {
		return pid
	}
	return nil
}

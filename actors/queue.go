package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sql-jobber/sql-jobber/resultsink"
)

// Messages of the queue actor; node-local, so plain structs.
type (
	// wake says jobs of the queue may be ready: a job was admitted, a
	// wait ended, or the periodic poll came round.
	wake struct{}
	// claimed is the outcome of one claim on the ledger.
	claimed struct {
		// asked is how many slots were taken for the claim; those
		// it did not fill go back.
		asked int
		jobs  []*resultsink.Job
		next  time.Time // when the next waiting job is ready, if one waits
		err   error
	}
	// slotFreed says a slot was handed back to the gate: a run ended, or a
	// slot taken for a start was not used.
	slotFreed struct{}
)

// queueActor gates one queue on this node: it holds a fixed number of slots
// (its slotGate) and, while one is free, claims the queue's next ready job
// from the ledger (first in, first out across every node that works the
// queue) and runs it. Jobs waiting for an ETA or a retry hold no slot: the
// actor wakes when the first of them is due. Once a claim finds no ready
// job, the queue is idle and claims nothing until something wakes it; job
// grains meanwhile start the jobs they admit in its free slots themselves.
type queueActor struct {
	e        *Engine
	name     string
	gate     *slotGate
	claiming bool // a claim is in flight
	woken    bool // a wake came in since the claim in flight began
	timer    *time.Timer
	timerAt  time.Time
}

func newQueueActor(e *Engine, name string, gate *slotGate) *queueActor {
	return &queueActor{e: e, name: name, gate: gate}
}

func (q *queueActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		q.gate.setActor(ctx.Self())
		q.fill(ctx)
	case wake:
		q.gate.setIdle(false)
		q.woken = true
		q.fill(ctx)
	case *claimed:
		q.claiming = false
		q.gate.free(msg.asked - len(msg.jobs))
		for _, j := range msg.jobs {
			q.e.runInSlot(j, ctx.Self())
		}
		switch {
		case msg.err != nil:
			if q.e.ctx.Err() == nil {
				q.e.logger.Error("claim a job; the next poll tries again", slog.String("queue", q.name), slog.Any("error", msg.err))
			}
		case len(msg.jobs) > 0 || q.woken:
			q.fill(ctx)
		default:
			// Nothing is ready, and nothing was admitted since the claim
			// began: until a wake, nothing waits for a free slot.
			q.gate.setIdle(true)
			if !msg.next.IsZero() {
				q.wakeAt(ctx, msg.next)
			}
		}
	case slotFreed:
		q.gate.free(1)
		if !q.gate.isIdle() {
			q.fill(ctx)
		}
	case *actor.Stopping:
		if q.timer != nil {
			q.timer.Stop()
		}
	}
}

// fill claims as many jobs as slots are free, in one claim at a time.
func (q *queueActor) fill(ctx actor.Context) {
	if q.claiming || q.e.draining.Load() {
		return
	}
	free := q.gate.takeAll()
	if free == 0 {
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	q.woken = false
	if q.e.spawn(func() {
		c := q.claim(free)
		c.asked = free
		root.Send(self, c)
	}) {
		q.claiming = true
	} else {
		q.gate.free(free)
	}
}

func (q *queueActor) claim(n int) *claimed {
	e := q.e
	ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
	defer cancel()
	jobs, err := e.ledger.Claim(ctx, q.name, e.cfg.NodeName, n, e.cfg.Lease)
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
	next, _, err := e.ledger.NextReady(ctx, q.name)
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

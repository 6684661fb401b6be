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
		jobs []*resultsink.Job
		next time.Time // when the next waiting job is ready, if one waits
		err  error
	}
	// runDone frees a slot.
	runDone struct{}
)

// queueActor gates one queue on this node: it holds a fixed number of slots
// and, while one is free, claims the queue's next ready job from the ledger
// (first in, first out across every node that works the queue) and runs it.
// Jobs waiting for an ETA or a retry hold no slot: the actor wakes when the
// first of them is due.
type queueActor struct {
	e        *Engine
	name     string
	slots    int
	running  int
	claiming bool
	again    bool // a wake came in while claiming
	timer    *time.Timer
	timerAt  time.Time
}

func newQueueActor(e *Engine, name string, slots int) *queueActor {
	return &queueActor{e: e, name: name, slots: slots}
}

func (q *queueActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		q.e.metrics.slots.WithLabelValues(q.name).Set(float64(q.slots))
		q.e.metrics.running.WithLabelValues(q.name).Set(0)
		q.fill(ctx)
	case wake:
		q.fill(ctx)
	case *claimed:
		q.claiming = false
		switch {
		case msg.err != nil:
			if q.e.ctx.Err() == nil {
				q.e.logger.Error("claim a job; the next poll tries again", slog.String("queue", q.name), slog.Any("error", msg.err))
			}
		case len(msg.jobs) > 0:
			for _, j := range msg.jobs {
				q.run(ctx, j)
			}
			q.fill(ctx)
		default:
			if !msg.next.IsZero() {
				q.wakeAt(ctx, msg.next)
			}
			if q.again {
				q.again = false
				q.fill(ctx)
			}
		}
	case *runDone:
		q.running--
		q.e.metrics.running.WithLabelValues(q.name).Set(float64(q.running))
		q.fill(ctx)
	case *actor.Stopping:
		if q.timer != nil {
			q.timer.Stop()
		}
	}
}

// fill claims as many jobs as slots are free, in one claim at a time.
func (q *queueActor) fill(ctx actor.Context) {
	free := q.slots - q.running
	if free <= 0 || q.e.draining.Load() {
		return
	}
	if q.claiming {
		q.again = true
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	q.claiming = q.e.spawn(func() {
		root.Send(self, q.claim(free))
	})
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

func (q *queueActor) run(ctx actor.Context, j *resultsink.Job) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	started := q.e.startRun(j, func() { root.Send(self, &runDone{}) })
	if started {
		q.running++
		q.e.metrics.running.WithLabelValues(q.name).Set(float64(q.running))
	} else {
		q.e.release(j)
	}
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

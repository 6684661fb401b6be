package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sql-jobber/sql-jobber/resultsink"
)

// Messages of the queue actor; node-local, so plain structs.
type (
	// enqueue offers a job to its queue; a job with a future ETA waits
	// for it first, without holding a slot.
	enqueue struct{ job *resultsink.Job }
	// ready is a job whose wait (ETA or retry backoff) is over.
	ready struct {
		job   *resultsink.Job
		timer *waitTimer
	}
	// runDone frees a slot; a run to be retried comes back after delay.
	runDone struct {
		retry *resultsink.Job
		delay time.Duration
	}
)

// queueActor gates one queue on this node: at most slots jobs run at once,
// the rest wait first in, first out.
type queueActor struct {
	e       *Engine
	name    string
	slots   int
	running int
	waiting []*resultsink.Job
	timers  map[*waitTimer]struct{}
}

// waitTimer is a job's pending wait, stopped if the queue stops first.
type waitTimer struct{ t *time.Timer }

func newQueueActor(e *Engine, name string, slots int) *queueActor {
	return &queueActor{e: e, name: name, slots: slots, timers: map[*waitTimer]struct{}{}}
}

func (q *queueActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *enqueue:
		if wait := time.Until(msg.job.ETA); !msg.job.ETA.IsZero() && wait > 0 {
			q.after(ctx, wait, msg.job)
			return
		}
		q.push(msg.job)
		q.dispatch(ctx)
	case *ready:
		delete(q.timers, msg.timer)
		q.push(msg.job)
		q.dispatch(ctx)
	case *runDone:
		q.running--
		if msg.retry != nil {
			q.after(ctx, msg.delay, msg.retry)
		}
		q.dispatch(ctx)
	case *actor.Stopping:
		for w := range q.timers {
			w.t.Stop()
		}
	}
}

// push appends a job unless it is already waiting (recovery and a fresh
// submission can both offer the same admitted job).
func (q *queueActor) push(j *resultsink.Job) {
	for _, w := range q.waiting {
		if w.ID == j.ID && w.CreatedAt.Equal(j.CreatedAt) {
			return
		}
	}
	q.waiting = append(q.waiting, j)
}

func (q *queueActor) after(ctx actor.Context, d time.Duration, j *resultsink.Job) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	w := &waitTimer{}
	w.t = time.AfterFunc(d, func() { root.Send(self, &ready{job: j, timer: w}) })
	q.timers[w] = struct{}{}
}

func (q *queueActor) dispatch(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	for q.running < q.slots && len(q.waiting) > 0 {
		j := q.waiting[0]
		q.waiting[0] = nil
		q.waiting = q.waiting[1:]
		q.running++
		q.e.runs.Add(1)
		go func() {
			defer q.e.runs.Done()
			retry, delay := q.e.execute(j)
			root.Send(self, &runDone{retry: retry, delay: delay})
		}()
	}
}

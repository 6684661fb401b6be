package ledger

import (
	"context"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/batch"
)

// Batches of finishes. Where a publication cannot record its job's SUCCESS
// itself (MySQL, whose DDL commits on its own), each job's SUCCESS is one
// more commit, after its table's: the database's slowest step for a small
// job after the table itself. The SUCCESSes that arrive while one batch is
// being written go into the next, in one statement and one commit, as
// admissions do (batch.go). Each is still written only after its own
// table was published (its caller has published it before it asks), so a
// job is never SUCCESS without its table; a batch that fails hands its
// jobs back to be finished one by one. Nothing waits to fill a batch: a
// SUCCESS alone is written at once.
const (
	// finishBatchMax bounds a batch (four arguments a job).
	finishBatchMax = 64
	// finishTimeout bounds a batch's statement whatever its callers'
	// deadlines, which each caller's own wait still honours.
	finishTimeout = 30 * time.Second
)

// batchFinisher is a driver that records many runs' SUCCESS in one
// statement.
type batchFinisher interface {
	// finishBatch records the SUCCESS of runs (distinct job IDs, in ID
	// order) at t, each only if it still owns its job (as Finish), and
	// returns the job IDs it recorded. After an error, its runs are
	// finished alone: one it recorded after all then says
	// ErrRunSuperseded, as a lost answer would (Finish's callers read the
	// job then).
	finishBatch(ctx context.Context, l *Ledger, t time.Time, runs []*pendingFinish) (map[string]bool, error)
}

// finishes queues the SUCCESSes waiting to be written.
type finishes struct {
	q batch.Queue[*pendingFinish]
}

type pendingFinish struct {
	ctx       context.Context
	id, runID string
	o         Outcome
	done      chan finishResult // buffered: the writer never blocks on it
}

func (p *pendingFinish) BatchKey() string { return p.id }

type finishResult struct {
	written bool
	at      time.Time // when it was recorded, if written
	err     error
	alone   bool // not written by the batch: the caller finishes it alone
}

// finish queues a run's SUCCESS and returns once it is written, with
// ErrRunSuperseded if the run no longer owns its job. A caller whose ctx
// ends first gets ctx's error; its SUCCESS may have been written (Finish's
// callers ask the ledger then, as after any lost answer). A caller that
// found no batch in flight writes its own, and returns once it is written,
// bounded by finishTimeout. It returns the time the SUCCESS was recorded
// at.
func (f *finishes) finish(ctx context.Context, l *Ledger, b batchFinisher, id, runID string, o Outcome) (time.Time, error) {
	p := &pendingFinish{ctx: ctx, id: id, runID: runID, o: o, done: make(chan finishResult, 1)}
	f.q.Add(p, batch.Limits{Max: finishBatchMax}, func(ps []*pendingFinish) { l.finishBatch(b, ps) })
	var r finishResult
	select {
	case r = <-p.done:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	switch {
	case r.alone:
		return l.finishAlone(ctx, id, runID, o)
	case r.err != nil:
		return time.Time{}, r.err
	case !r.written:
		return time.Time{}, ErrRunSuperseded
	}
	return r.at, nil
}

// finishBatch writes batch with b: a batch of one as Finish writes it, a
// larger one in one statement. Should that fail, its runs are handed back
// to their callers to finish alone.
func (l *Ledger) finishBatch(b batchFinisher, pending []*pendingFinish) {
	live, ctx, cancel := batch.Live(pending, func(p *pendingFinish) context.Context { return p.ctx },
		func(p *pendingFinish, err error) { p.done <- finishResult{err: err} }, finishTimeout)
	defer cancel()
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		p := live[0]
		at, err := l.finishAlone(ctx, p.id, p.runID, p.o)
		p.done <- finishResult{written: err == nil, at: at, err: err}
		return
	}
	t := l.now()
	written, err := b.finishBatch(ctx, l, t, live)
	for _, p := range live {
		if err != nil {
			p.done <- finishResult{alone: true}
			continue
		}
		p.done <- finishResult{written: written[p.id], at: t}
	}
}

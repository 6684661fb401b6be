package ledger

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
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
	mu      sync.Mutex
	waiting []*pendingFinish
	writing bool
	done    sync.WaitGroup // the writer, for Close
}

type pendingFinish struct {
	ctx       context.Context
	id, runID string
	o         Outcome
	done      chan finishResult // buffered: the writer never blocks on it
}

type finishResult struct {
	written bool
	err     error
	alone   bool // not written by the batch: the caller finishes it alone
}

// finish queues a run's SUCCESS and returns once it is written, with
// ErrRunSuperseded if the run no longer owns its job. A caller whose ctx
// ends first gets ctx's error; its SUCCESS may have been written (Finish's
// callers ask the ledger then, as after any lost answer).
func (f *finishes) finish(ctx context.Context, l *Ledger, b batchFinisher, id, runID string, o Outcome) error {
	p := &pendingFinish{ctx: ctx, id: id, runID: runID, o: o, done: make(chan finishResult, 1)}
	f.mu.Lock()
	f.waiting = append(f.waiting, p)
	start := !f.writing
	if start {
		f.writing = true
		f.done.Add(1)
	}
	f.mu.Unlock()
	if start {
		go f.write(l, b)
	}
	var r finishResult
	select {
	case r = <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	switch {
	case r.alone:
		return l.finishAlone(ctx, id, runID, o)
	case r.err != nil:
		return r.err
	case !r.written:
		return ErrRunSuperseded
	}
	return nil
}

// write writes batches until none waits.
func (f *finishes) write(l *Ledger, b batchFinisher) {
	defer f.done.Done()
	for {
		batch := f.next()
		if batch == nil {
			return
		}
		l.finishBatch(b, batch)
	}
}

// next takes the next batch off the queue, or, when none waits, retires
// the writer. A batch holds each job ID once, in ID order, so that two
// batches in flight (on two nodes) lock the rows they share in the same
// order.
func (f *finishes) next() []*pendingFinish {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiting) == 0 {
		f.writing = false
		return nil
	}
	var batch, rest []*pendingFinish
	ids := make(map[string]bool, min(len(f.waiting), finishBatchMax))
	for _, p := range f.waiting {
		if len(batch) == finishBatchMax || ids[p.id] {
			rest = append(rest, p)
			continue
		}
		ids[p.id] = true
		batch = append(batch, p)
	}
	f.waiting = rest
	slices.SortFunc(batch, func(x, y *pendingFinish) int { return strings.Compare(x.id, y.id) })
	return batch
}

// finishBatch writes batch with b: a batch of one as Finish writes it, a
// larger one in one statement. Should that fail, its runs are handed back
// to their callers to finish alone.
func (l *Ledger) finishBatch(b batchFinisher, batch []*pendingFinish) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- finishResult{err: err}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), finishTimeout)
	defer cancel()
	if len(live) == 1 {
		p := live[0]
		err := l.finishAlone(ctx, p.id, p.runID, p.o)
		p.done <- finishResult{written: err == nil, err: err}
		return
	}
	written, err := b.finishBatch(ctx, l, l.now(), live)
	for _, p := range live {
		if err != nil {
			p.done <- finishResult{alone: true}
			continue
		}
		p.done <- finishResult{written: written[p.id]}
	}
}

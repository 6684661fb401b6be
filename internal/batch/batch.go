// Package batch gathers what arrives while a batch is being written into
// the next batch: group commit for the ledger's admissions and finishes and
// for the results databases' fence records and small publications. It owns
// only the queue and its writers; what a batch is written with, and what
// its callers wait on, are its users'.
package batch

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Item is something queued for a batch. A batch holds each key once: one
// statement cannot write a row twice, so a repeated key waits for the next
// batch.
type Item interface {
	BatchKey() string
}

// Limits bound a queue's batches and the writers that write them.
type Limits struct {
	// Max is the most items a batch holds.
	Max int
	// Writers is how many batches may be written at once; 0 means 1.
	Writers int
}

// Queue holds the items waiting to be written. Its zero value is ready to
// use. Nothing waits to fill a batch: an item that finds a writer free is
// written at once, alone.
type Queue[T Item] struct {
	mu      sync.Mutex
	waiting []T
	writers int
	done    sync.WaitGroup
}

// Add queues item and, when fewer than lim.Writers write, becomes a writer:
// it calls write with the next batch itself (one that holds item, unless
// another writer took item first), then leaves whatever queued meanwhile
// to a writer goroutine that writes batches until none waits. A batch
// holds at most lim.Max items of distinct keys, in key order, so that two
// batches in flight (here or on other nodes) lock the rows they share in
// the same order and cannot deadlock.
//
// Writing the first batch in the caller's goroutine is what keeps a lone
// item cheap: no goroutine is started and no goroutine woken to hand it
// over and hand its outcome back (on a machine whose cores are mostly
// idle, each hand-off wakes a thread). So Add may return only once write
// has: callers that wait for their item's outcome lose nothing by it.
func (q *Queue[T]) Add(item T, lim Limits, write func(batch []T)) {
	q.mu.Lock()
	q.waiting = append(q.waiting, item)
	start := q.writers < max(lim.Writers, 1)
	if start {
		q.writers++
		q.done.Add(1)
	}
	q.mu.Unlock()
	if !start {
		return
	}
	// A nil batch: another writer took item, and this one has retired.
	if batch := q.next(lim.Max); batch != nil {
		write(batch)
		if q.more() {
			// The goroutine takes over this writer's place.
			go q.write(lim.Max, write)
			return
		}
	}
	q.done.Done()
}

// more reports whether items wait; when none does, it retires the writer
// that asks.
func (q *Queue[T]) more() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) == 0 {
		q.writers--
		return false
	}
	return true
}

// Wait returns once no writer is left.
func (q *Queue[T]) Wait() { q.done.Wait() }

func (q *Queue[T]) write(limit int, write func([]T)) {
	defer q.done.Done()
	for {
		batch := q.next(limit)
		if batch == nil {
			return
		}
		write(batch)
	}
}

// next takes the next batch off the queue or, when none waits, retires the
// writer.
func (q *Queue[T]) next(limit int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) == 0 {
		q.writers--
		return nil
	}
	var batch, rest []T
	keys := make(map[string]bool, min(len(q.waiting), limit))
	for _, it := range q.waiting {
		if k := it.BatchKey(); len(batch) == limit || keys[k] {
			rest = append(rest, it)
		} else {
			keys[k] = true
			batch = append(batch, it)
		}
	}
	q.waiting = rest
	slices.SortFunc(batch, func(x, y T) int { return strings.Compare(x.BatchKey(), y.BatchKey()) })
	return batch
}

// Live returns the items of a batch whose callers still wait (ctx of each
// has not ended), telling the others their context's error through gone,
// and a context to write them with: free of the callers' cancellation, so
// that a batch is written whole or not at all, and bounded by timeout. The
// caller calls cancel when done, even when no item is left.
func Live[T any](batch []T, ctx func(T) context.Context, gone func(T, error), timeout time.Duration) (live []T, wctx context.Context, cancel context.CancelFunc) {
	live = batch[:0]
	for _, it := range batch {
		if err := ctx(it).Err(); err != nil {
			gone(it, err)
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return nil, context.Background(), func() {}
	}
	wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx(live[0])), timeout)
	return live, wctx, cancel
}

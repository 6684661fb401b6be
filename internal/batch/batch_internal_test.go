package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

type key string

func (k key) BatchKey() string { return string(k) }

// batches drains q as one writer would, limit items a batch.
func batches(q *Queue[key], limit int) [][]key {
	var got [][]key
	for {
		b := q.next(limit)
		if b == nil {
			return got
		}
		got = append(got, b)
	}
}

// TestBatchesLockInKeyOrder: batches take each key once and list their
// items in key order, whatever the order they arrived in, so that two
// batches in flight that share keys lock them in the same order (arrivals
// A, B, B, A would otherwise give batches {A, B} and {B, A}, which
// deadlock); the writer retires once none waits.
func TestBatchesLockInKeyOrder(t *testing.T) {
	var q Queue[key]
	q.waiting = []key{"b", "a", "c", "a", "b"}
	q.writers = 1
	got := batches(&q, 64)
	if want := [][]key{{"a", "b", "c"}, {"a", "b"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
	if q.writers != 0 {
		t.Fatalf("%d writers left, want the last retired", q.writers)
	}
}

// TestBatchesHoldAtMostMax: a batch holds at most Max items; the rest wait
// for the next, in the order they came.
func TestBatchesHoldAtMostMax(t *testing.T) {
	var q Queue[key]
	q.waiting = []key{"e", "d", "c", "b", "a"}
	q.writers = 1
	if got, want := batches(&q, 2), [][]key{{"d", "e"}, {"b", "c"}, {"a"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
}

// TestQueueWritesEveryItemOnce: items added from many goroutines at once
// are each written once, by no more writers at a time than the limit, and
// Wait returns once the writers are done.
func TestQueueWritesEveryItemOnce(t *testing.T) {
	for _, writers := range []int{0, 1, 3} {
		t.Run(fmt.Sprint(writers), func(t *testing.T) {
			var (
				q               Queue[key]
				mu              sync.Mutex
				written         []key
				running, mostAt int
				wg              sync.WaitGroup
			)
			write := func(b []key) {
				mu.Lock()
				running++
				mostAt = max(mostAt, running)
				written = append(written, b...)
				mu.Unlock()
				mu.Lock()
				running--
				mu.Unlock()
			}
			var want []key
			for i := range 500 {
				k := key(fmt.Sprintf("%03d", i%250)) // each key twice
				want = append(want, k)
				wg.Add(1)
				go func() {
					defer wg.Done()
					q.Add(k, Limits{Max: 16, Writers: writers}, write)
				}()
			}
			wg.Wait()
			q.Wait()
			slices.Sort(written)
			slices.Sort(want)
			if !slices.Equal(written, want) {
				t.Fatalf("wrote %d items, want each of %d once", len(written), len(want))
			}
			if limit := max(writers, 1); mostAt > limit {
				t.Fatalf("%d writers at once, want at most %d", mostAt, limit)
			}
		})
	}
}

// TestALoneItemIsWrittenBeforeAddReturns: an item that finds the queue
// idle is written by Add itself, so Add returns with it written; items
// that arrive while it is being written are left to a writer of their own
// and do not hold up the caller that wrote first.
func TestALoneItemIsWrittenBeforeAddReturns(t *testing.T) {
	var (
		q       Queue[key]
		mu      sync.Mutex
		written []key
	)
	lim := Limits{Max: 16}
	writing, release := make(chan struct{}), make(chan struct{})
	write := func(b []key) {
		if slices.Contains(b, "slow") {
			close(writing)
			<-release
		}
		mu.Lock()
		written = append(written, b...)
		mu.Unlock()
	}
	q.Add("a", lim, write)
	mu.Lock()
	got := slices.Clone(written)
	mu.Unlock()
	if !slices.Equal(got, []key{"a"}) {
		t.Fatalf("written when Add returned: %v, want [a]", got)
	}

	// "slow" is written by its caller, which blocks in write; "b" comes
	// meanwhile and waits, then goes to a writer goroutine once "slow" is
	// written, while "slow"'s Add returns.
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		q.Add("slow", lim, write)
	}()
	<-writing
	q.Add("b", lim, write) // a writer is busy: b waits
	mu.Lock()
	got = slices.Clone(written)
	mu.Unlock()
	if slices.Contains(got, "b") {
		t.Fatalf("b written while the only writer was busy: %v", got)
	}
	close(release)
	<-slowDone
	q.Wait()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(written, []key{"a", "slow", "b"}) {
		t.Fatalf("written %v, want [a slow b]", written)
	}
}

type waiting struct {
	ctx  context.Context
	gone error
}

func TestLiveTellsTheCallersThatLeftAndDetachesTheRest(t *testing.T) {
	left, leave := context.WithCancel(context.Background())
	leave()
	stays, stop := context.WithCancel(context.WithValue(context.Background(), key("k"), "v"))
	a, b, c := &waiting{ctx: left}, &waiting{ctx: stays}, &waiting{ctx: left}
	live, ctx, cancel := Live([]*waiting{a, b, c}, func(w *waiting) context.Context { return w.ctx },
		func(w *waiting, err error) { w.gone = err }, time.Minute)
	defer cancel()
	if len(live) != 1 || live[0] != b || !errors.Is(a.gone, context.Canceled) || !errors.Is(c.gone, context.Canceled) || b.gone != nil {
		t.Fatalf("live %v; told %v, %v, %v", live, a.gone, b.gone, c.gone)
	}
	// The batch's context outlives its callers' and keeps their values.
	stop()
	if _, ok := ctx.Deadline(); !ok || ctx.Err() != nil || ctx.Value(key("k")) != "v" {
		t.Fatalf("the batch's context: %v, %v", ctx.Err(), ctx.Value(key("k")))
	}
	none, _, cancelNone := Live([]*waiting{{ctx: left}}, func(w *waiting) context.Context { return w.ctx }, func(*waiting, error) {}, time.Minute)
	cancelNone()
	if len(none) != 0 {
		t.Fatalf("live %v, want none", none)
	}
}

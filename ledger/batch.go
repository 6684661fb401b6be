package ledger

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
)

// Batches of admissions. Each admission is one durable commit, which waits
// for the database's log to reach the disk; concurrent submissions are
// common (a burst of report requests), and writing the ones that arrive
// while a batch is in flight as one multi-row statement and one commit
// costs the database a fraction of the separate ones. Nothing waits to
// fill a batch: an admission alone is written at once.
const (
	// admitWriters is how many batches may be in flight at once. One
	// makes the batches largest (the database's CPU per admission was 6%
	// lower than with two, in make bench's one-row jobs), and a batch of
	// up to admitBatchMax a commit still admits tens of thousands a
	// second.
	admitWriters = 1
	// admitBatchMax bounds a batch (27 parameters a job, well below
	// PostgreSQL's 65,535).
	admitBatchMax = 64
	// admitTimeout bounds a batch's statement whatever its callers'
	// deadlines, which each caller's own wait still honours.
	admitTimeout = 30 * time.Second
	// admitLockTimeout bounds a batch's wait for a row lock.
	admitLockTimeout = "1s"
)

// batchAdmitter is a driver that writes many admissions in one commit (and,
// on PostgreSQL, one round trip).
type batchAdmitter interface {
	// admitBatch writes jobs (distinct IDs, in ID order) in one
	// transaction and returns the IDs it wrote with their fence tokens;
	// an ID that an unfinished job holds is not written. A driver may
	// write none of them and leave them to be admitted alone.
	admitBatch(ctx context.Context, l *Ledger, jobs []*Job) (map[string]int64, error)
}

// admissions queues the admissions waiting to be written.
type admissions struct {
	mu      sync.Mutex
	waiting []*pendingAdmission
	writers int
	done    sync.WaitGroup // the writers, for Close
}

type pendingAdmission struct {
	ctx  context.Context
	job  Job
	done chan admitResult // buffered: the writer never blocks on it
}

type admitResult struct {
	job   *Job
	err   error
	alone bool // not written by the batch: the caller admits it alone
}

// admit queues j and returns its outcome once written. A caller whose ctx
// ends first gets ctx's error; its admission may have been written. A
// started admission (Start) waits for its batch's outcome regardless: a
// batch it joined is bounded by admitTimeout, and one it did not join
// never writes it.
func (a *admissions) admit(ctx context.Context, l *Ledger, b batchAdmitter, j Job) (*Job, error) {
	p := &pendingAdmission{ctx: ctx, job: j, done: make(chan admitResult, 1)}
	a.mu.Lock()
	a.waiting = append(a.waiting, p)
	start := a.writers < admitWriters
	if start {
		a.writers++
		a.done.Add(1)
	}
	a.mu.Unlock()
	if start {
		go a.write(l, b)
	}
	var r admitResult
	if j.State == sqljobber.StateStarted {
		r = <-p.done
	} else {
		select {
		case r = <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r.alone {
		return l.admitAlone(ctx, j)
	}
	return r.job, r.err
}

// write writes batches until none waits.
func (a *admissions) write(l *Ledger, b batchAdmitter) {
	defer a.done.Done()
	for {
		batch := a.next()
		if batch == nil {
			return
		}
		l.admitBatch(b, batch)
	}
}

// next takes the next batch off the queue, or, when none waits, retires
// the writer. A batch holds each job ID once: one statement cannot write a
// row twice, so a repeated ID waits for the next batch. It is in the order
// of the IDs, so that two batches in flight (here or on other nodes) lock
// the rows they share in the same order and cannot deadlock.
func (a *admissions) next() []*pendingAdmission {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.waiting) == 0 {
		a.writers--
		return nil
	}
	var batch, rest []*pendingAdmission
	ids := make(map[string]bool, min(len(a.waiting), admitBatchMax))
	for _, p := range a.waiting {
		if len(batch) == admitBatchMax || ids[p.job.ID] {
			rest = append(rest, p)
			continue
		}
		ids[p.job.ID] = true
		batch = append(batch, p)
	}
	a.waiting = rest
	slices.SortFunc(batch, func(x, y *pendingAdmission) int { return strings.Compare(x.job.ID, y.job.ID) })
	return batch
}

// admitBatch writes batch with b. The jobs it did not write (an unfinished
// job holds the ID, or the holder finished in between) and, should the
// transaction fail, all of them, are handed back to their callers to admit
// alone (admitAlone), so that a job that waits for a lock holds up no other
// admission.
func (l *Ledger) admitBatch(b batchAdmitter, batch []*pendingAdmission) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- admitResult{err: err}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), admitTimeout)
	t := l.now()
	jobs := make([]*Job, len(live))
	for i, p := range live {
		startsAt(&p.job, t)
		jobs[i] = &p.job
	}
	written, err := b.admitBatch(ctx, l, jobs)
	cancel()
	for _, p := range live {
		if fence, ok := written[p.job.ID]; ok && err == nil {
			p.job.Fence = fence
			p.done <- admitResult{job: &p.job}
			continue
		}
		p.done <- admitResult{alone: true}
	}
}

package resultsink

import (
	"context"
	"sync"
	"time"
)

// Batches of admissions. Each admission is one durable commit, which waits
// for the database's log to reach the disk; concurrent submissions are
// common (a burst of report requests), and writing the ones that arrive
// while a batch is in flight as one multi-row statement and one commit
// costs the database a fraction of the separate ones. Nothing waits to
// fill a batch: an admission alone is written at once.
const (
	// admitWriters is how many batches may be in flight at once.
	admitWriters = 2
	// admitBatchMax bounds a batch (27 parameters a job, well below
	// PostgreSQL's 65,535).
	admitBatchMax = 64
	// admitTimeout bounds a batch's statement whatever its callers'
	// deadlines, which each caller's own wait still honours.
	admitTimeout = 30 * time.Second
)

// admissions queues the admissions waiting to be written.
type admissions struct {
	mu      sync.Mutex
	waiting []*pendingAdmission
	writers int
}

type pendingAdmission struct {
	ctx  context.Context
	job  Job
	done chan admitResult // buffered: the writer never blocks on it
}

type admitResult struct {
	job *Job
	err error
}

// admit queues j and returns its outcome once written. A caller whose ctx
// ends first gets ctx's error; its admission may have been written.
func (a *admissions) admit(ctx context.Context, l *Ledger, j Job) (*Job, error) {
	p := &pendingAdmission{ctx: ctx, job: j, done: make(chan admitResult, 1)}
	a.mu.Lock()
	a.waiting = append(a.waiting, p)
	start := a.writers < admitWriters
	if start {
		a.writers++
	}
	a.mu.Unlock()
	if start {
		go a.write(l)
	}
	select {
	case r := <-p.done:
		return r.job, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// write writes batches until none waits.
func (a *admissions) write(l *Ledger) {
	for {
		batch := a.next()
		if batch == nil {
			return
		}
		l.admitBatch(batch)
	}
}

// next takes the next batch off the queue, or, when none waits, retires
// the writer. A batch holds each job ID once: one statement cannot write a
// row twice, so a repeated ID waits for the next batch.
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
	return batch
}

// admitBatch writes batch in one statement. The jobs it did not write (an
// unfinished job holds the ID, or the holder finished in between) and,
// should the statement fail, all of them, go through admit one by one,
// which settles each.
func (l *Ledger) admitBatch(batch []*pendingAdmission) {
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
	written := map[string]bool{}
	if len(live) > 1 {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), admitTimeout)
		var args []any
		for _, p := range live {
			args = append(args, l.jobArgs(&p.job)...)
		}
		err := l.dq.query(ctx, l.admitSQL(len(live)), func(scan func(...any) error) error {
			var id string
			err := scan(&id)
			written[id] = true
			return err
		}, args...)
		cancel()
		if err != nil {
			clear(written)
		}
	}
	for _, p := range live {
		if written[p.job.ID] {
			p.done <- admitResult{job: &p.job}
			continue
		}
		j, err := l.admit(p.ctx, l.dq, p.job)
		p.done <- admitResult{job: j, err: err}
	}
}

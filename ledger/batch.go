package ledger

import (
	"context"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/internal/batch"
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
	admitBatch(ctx context.Context, l *Ledger, jobs []*Job) (map[string]admitted, error)
}

// admitted is what a batch learned of an admission it wrote: its fence
// token and, where the driver reports it, the job it replaced.
type admitted struct {
	fence    int64
	replaced *Replaced
}

// admissions queues the admissions waiting to be written.
type admissions struct {
	q batch.Queue[*pendingAdmission]
}

type pendingAdmission struct {
	ctx  context.Context
	job  Job
	done chan admitResult // buffered: the writer never blocks on it
}

func (p *pendingAdmission) BatchKey() string { return p.job.ID }

type admitResult struct {
	job   *Job
	err   error
	alone bool // not written by the batch: the caller admits it alone
}

// admit queues j and returns its outcome once written. A caller whose ctx
// ends first gets ctx's error; its admission may have been written (a
// caller that found no batch in flight writes its own, and returns once it
// is written, bounded by admitTimeout). A started admission (Start) waits
// for its batch's outcome regardless: a batch it joined is bounded by
// admitTimeout, and one it did not join never writes it.
func (a *admissions) admit(ctx context.Context, l *Ledger, b batchAdmitter, j Job) (*Job, error) {
	p := &pendingAdmission{ctx: ctx, job: j, done: make(chan admitResult, 1)}
	a.q.Add(p, batch.Limits{Max: admitBatchMax, Writers: admitWriters}, func(ps []*pendingAdmission) { l.admitBatch(b, ps) })
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

// admitBatch writes batch with b. The jobs it did not write (an unfinished
// job holds the ID, or the holder finished in between) and, should the
// transaction fail, all of them, are handed back to their callers to admit
// alone (admitAlone), so that a job that waits for a lock holds up no other
// admission.
func (l *Ledger) admitBatch(b batchAdmitter, pending []*pendingAdmission) {
	live, ctx, cancel := batch.Live(pending, func(p *pendingAdmission) context.Context { return p.ctx },
		func(p *pendingAdmission, err error) { p.done <- admitResult{err: err} }, admitTimeout)
	if len(live) == 0 {
		cancel()
		return
	}
	t := l.now()
	jobs := make([]*Job, len(live))
	for i, p := range live {
		startsAt(&p.job, t)
		jobs[i] = &p.job
	}
	written, err := b.admitBatch(ctx, l, jobs)
	cancel()
	for _, p := range live {
		if a, ok := written[p.job.ID]; ok && err == nil {
			p.job.Fence, p.job.Replaced = a.fence, a.replaced
			p.done <- admitResult{job: &p.job}
			continue
		}
		p.done <- admitResult{alone: true}
	}
}

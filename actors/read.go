package actors

import (
	"context"
	"errors"
	"fmt"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Job returns a job as the ledger records it, with its progress while it
// runs (see withProgress); a job the caller (sqljobber.Sees) may not see is
// not found.
//
// A job whose results expired is *sqljobber.GoneError, as its results are,
// for as long as the ledger remembers its ID: not a job never known.
func (e *Engine) Job(ctx context.Context, id string) (*sqljobber.Job, error) {
	j, err := e.visibleJob(ctx, id)
	if errors.Is(err, sqljobber.ErrJobNotFound) {
		if ts, terr := e.ledger.Tombstone(ctx, id); terr == nil && ts.Reason == sqljobber.GoneExpired && sqljobber.Sees(ctx, ts.Owner) {
			return nil, &sqljobber.GoneError{ID: id, Reason: ts.Reason, At: ts.At}
		}
	}
	if err != nil {
		return nil, err
	}
	if ended := e.withProgress(ctx, []*ledger.Job{j}); len(ended) > 0 {
		// Its run ended between the two reads, and had recorded its
		// outcome by then: read that, rather than answer STARTED with
		// no rows after answers that counted some.
		if cur, err := e.visibleJob(ctx, id); err == nil {
			j = cur
		}
	}
	return &j.Job, nil
}

// visibleJob reads a job the caller may see.
func (e *Engine) visibleJob(ctx context.Context, id string) (*ledger.Job, error) {
	j, err := e.ledger.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !sqljobber.Sees(ctx, j.Owner) {
		return nil, errJobNotFound(id)
	}
	return j, nil
}

// errJobNotFound is sqljobber.ErrJobNotFound for id.
func errJobNotFound(id string) error { return fmt.Errorf("%w: %q", sqljobber.ErrJobNotFound, id) }

// Results opens a page of job id's results. It returns
// sqljobber.ErrJobNotFound for a job it never knew, *sqljobber.GoneError
// for one whose results were removed, *sqljobber.NotReadyError for one that
// has not succeeded, and the errors of resultsink.Reader.Read for a query
// that does not fit the table.
func (e *Engine) Results(ctx context.Context, id string, q resultsink.Query) (*resultsink.Page, error) {
	j, err := e.ledger.Get(ctx, id)
	if errors.Is(err, sqljobber.ErrJobNotFound) {
		ts, terr := e.ledger.Tombstone(ctx, id)
		if terr != nil {
			return nil, terr
		}
		if !sqljobber.Sees(ctx, ts.Owner) {
			return nil, errJobNotFound(id)
		}
		return nil, &sqljobber.GoneError{ID: id, Reason: ts.Reason, At: ts.At}
	}
	if err == nil && !sqljobber.Sees(ctx, j.Owner) {
		return nil, errJobNotFound(id)
	}
	if err != nil {
		return nil, err
	}
	if j.State != sqljobber.StateSuccess {
		return nil, &sqljobber.NotReadyError{ID: id, State: j.State}
	}
	p, err := e.reader.Read(ctx, resultsink.Table{Backend: j.ResultsBackend, Name: j.ResultsTable, Version: j.RunID}, q)
	if err == nil && j.ReusedFrom != "" {
		if serr := e.sourceHolds(ctx, j); serr != nil {
			p.Close()
			return nil, serr
		}
	}
	switch {
	case errors.Is(err, resultsink.ErrNoTable):
		return nil, &sqljobber.GoneError{ID: id, Source: j.ReusedFrom}
	case errors.Is(err, resultsink.ErrNoRowColumn):
		return nil, &sqljobber.NotReadyError{ID: id, State: j.State, Why: err.Error()}
	}
	return p, err
}

// Cancel cancels an unfinished job: a waiting job leaves its queue, a
// running one has its query cancelled at the database. With purge, the
// job's record and results table are then deleted too, finished or not. A
// finished job without purge gives *FinishedError.
func (e *Engine) Cancel(ctx context.Context, id string, purge bool) error {
	reply, err := e.request(ctx, jobKind, id, &jobpb.CancelJob{JobId: id, Purge: purge, Caller: callerOf(ctx)})
	if err != nil {
		return fmt.Errorf("cancel job: %w", err)
	}
	return replyError(reply, "job", sqljobber.ErrJobNotFound, id)
}

// Queue lists the jobs of a queue that have not started, in the order they
// will start (at most maxQueueListing): all of them for an unrestricted or
// admin caller, else the caller's.
func (e *Engine) Queue(ctx context.Context, queue string) ([]*sqljobber.Job, error) {
	if !sqlexec.ValidName(queue) {
		return nil, sqljobber.Invalid("queue", "must be 1 to 128 letters, digits, '_', '-' or '.'")
	}
	var (
		pending []*ledger.Job
		err     error
	)
	if c, ok := sqljobber.CallerFrom(ctx); ok && !c.Admin {
		pending, err = e.ledger.PendingOf(ctx, queue, c.Name, maxQueueListing)
	} else {
		pending, err = e.ledger.Pending(ctx, queue, maxQueueListing)
	}
	if err != nil {
		return nil, err
	}
	return jobsOf(pending), nil
}

// jobsOf is the jobs of records.
func jobsOf(records []*ledger.Job) []*sqljobber.Job {
	out := make([]*sqljobber.Job, len(records))
	for i, r := range records {
		out[i] = &r.Job
	}
	return out
}

// Tasks lists the registered tasks.
func (e *Engine) Tasks() []*sqlexec.Task { return e.tasks.Tasks() }

package actors

import (
	"context"
	"errors"
	"log/slog"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Result reuse: a job whose computation (ledger.Fingerprint: owner, task,
// query, arguments, requested database, results backend) equals that of a
// job that succeeded by running within the request's max_age (or the
// task's -- cache:) is answered from that job's results table at once,
// without a query on the source. The reusing job is recorded SUCCESS with
// reused_from naming the source job, which alone owns the table: the
// reusing job never drops it (dropResults), expires no later than it
// (ledger.AdmitReused), and reads it only while the source's record still
// names the very run that published it (sourceHolds).

// reuseRecords is what a job's grain asks of the ledger to answer a job
// from another's results.
type reuseRecords interface {
	Reusable(ctx context.Context, owner, task, newID string, fingerprints []string, maxAge time.Duration) (*ledger.Job, error)
	AdmitReused(ctx context.Context, j ledger.Job, src *ledger.Job) (*ledger.Job, error)
}

// maxReuseAge bounds max_age: far beyond any TTL anyone keeps results for,
// and within the microseconds a spec carries.
const maxReuseAge = 100 * 365 * 24 * time.Hour

// reuseAge is how old the results that may answer req, a request for a job
// of task t, may be: none if it asks to be fresh, else its max_age, else
// the task's -- cache:.
func reuseAge(prefix string, t *sqlexec.Task, req SubmitRequest) (time.Duration, error) {
	switch {
	case req.Fresh && req.MaxAge != nil:
		return 0, sqljobber.Invalid(prefix+"fresh", "and max_age ask for opposite things; give one")
	case req.Fresh:
		return 0, nil
	case req.MaxAge == nil:
		return t.Cache, nil
	case *req.MaxAge < 0 || *req.MaxAge > maxReuseAge:
		return 0, sqljobber.Invalid(prefix+"max_age", "must be between 0 and %s", maxReuseAge)
	}
	return *req.MaxAge, nil
}

// fingerprint records in spec what the job computes and for whom
// (spec.Owner must be set), and, when it may reuse results, the
// fingerprints it would have with each of the task's results backends that
// this node knows: any of their results answer it, since its own backend
// was a random pick among them.
func (e *Engine) fingerprint(spec *jobpb.JobSpec) {
	t, ok := e.tasks.Task(spec.Task)
	if !ok {
		return
	}
	c := ledger.Computation{Owner: spec.Owner, Task: t.Name, SQL: t.SQL, Args: spec.ArgsJson, DB: spec.Db, ResultsBackend: spec.ResultsBackend}
	spec.Fingerprint = ledger.Fingerprint(c)
	spec.ReuseFingerprints, spec.Flight = nil, ""
	if spec.ReuseMaxAgeMicros <= 0 {
		return
	}
	if spec.GroupId == "" && spec.EtaUnixMicros <= time.Now().UnixMicro() {
		spec.Flight = flightOf(c, t, spec.Queue)
	}
	for _, b := range t.Results {
		if _, ok := e.results[b]; ok {
			c.ResultsBackend = b
			spec.ReuseFingerprints = append(spec.ReuseFingerprints, ledger.Fingerprint(c))
		}
	}
}

// reuse answers spec from an earlier job's results if it may, and reports
// whether it did (then reply is the submission's answer). A failed look-up
// is logged and the job runs: it costs a query, not the job.
func (g *jobGrain) reuse(ctx context.Context, spec *jobpb.JobSpec) (reply *jobpb.Reply, done bool) {
	if spec.ReuseMaxAgeMicros <= 0 {
		return nil, false
	}
	e := g.e
	src, err := e.ledger.Reusable(ctx, spec.Owner, spec.Task, spec.JobId, spec.ReuseFingerprints,
		time.Duration(spec.ReuseMaxAgeMicros)*time.Microsecond)
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
		return nil, false
	case err != nil:
		e.logger.Warn("look for results to reuse; the job runs", slog.String("job_id", spec.JobId),
			slog.String("error_code", sqlexec.ErrorCode(err)))
		return nil, false
	}
	// The ID's earlier job, whose own table nothing will refer to once
	// this admission replaces it (a run would have replaced the table).
	var earlier []*ledger.Job
	if prev, err := e.ledger.Get(ctx, spec.JobId); err == nil && !prev.State.Active() && prev.ReusedFrom == "" && prev.ResultsTable != "" {
		earlier = append(earlier, prev)
	}
	j, err := e.ledger.AdmitReused(ctx, e.jobFromSpec(spec), src)
	if reply, ok := admissionReply(err); ok {
		return reply, true
	}
	if err != nil {
		e.logger.Error("admit job", slog.String("job_id", spec.JobId), slog.String("error_code", sqlexec.ErrorCode(err)))
		return failed(err), true
	}
	e.metrics.submitted.WithLabelValues(e.metrics.queue(spec.Queue), spec.Task).Inc()
	e.reused(j)
	e.dropEarlierTables(ctx, earlier)
	return okReply(), true
}

// reused logs and counts a job answered from j.ReuseOf's or
// j.ReusedFrom's results.
func (e *Engine) reused(j *ledger.Job) {
	from := j.ReusedFrom
	if j.ReuseOf != nil {
		from = j.ReuseOf.ID
	}
	// SUCCESS as it was admitted.
	e.metrics.finishedJob(j, sqljobber.StateSuccess, 0)
	e.logger.Info("job answered from earlier results", slog.String("job_id", j.ID), slog.String("task", j.Task),
		slog.String("reused_from", from))
}

// reuseInGroup finds, for each member of group msg (jobs, in order) that
// may reuse results, an earlier job whose results answer it (ReuseOf), and
// holds back the other members anew: the first msg.Concurrency of those
// that run start, the rest wait. It returns the ID's earlier jobs of the
// members that reuse, whose own tables nothing refers to once the group is
// admitted. A failed look-up is logged and the member runs.
func (e *Engine) reuseInGroup(ctx context.Context, msg *jobpb.SubmitGroup, jobs []ledger.Job) ([]*ledger.Job, error) {
	var reusing []string
	for i, spec := range msg.Jobs {
		if spec.ReuseMaxAgeMicros <= 0 {
			continue
		}
		src, err := e.ledger.Reusable(ctx, spec.Owner, spec.Task, spec.JobId, spec.ReuseFingerprints,
			time.Duration(spec.ReuseMaxAgeMicros)*time.Microsecond)
		switch {
		case errors.Is(err, sqljobber.ErrJobNotFound):
		case err != nil:
			e.logger.Warn("look for results to reuse; the job runs", slog.String("job_id", spec.JobId),
				slog.String("error_code", sqlexec.ErrorCode(err)))
		default:
			jobs[i].ReuseOf = src
			reusing = append(reusing, spec.JobId)
		}
	}
	if len(reusing) == 0 {
		return nil, nil
	}
	running := 0
	for i := range jobs {
		if jobs[i].ReuseOf == nil {
			jobs[i].Held = running >= int(msg.Concurrency)
			running++
		}
	}
	prev, err := e.ledger.GetMany(ctx, reusing)
	if err != nil {
		return nil, err
	}
	var earlier []*ledger.Job
	for _, p := range prev {
		if !p.State.Active() && p.ReusedFrom == "" && p.ResultsTable != "" {
			earlier = append(earlier, p)
		}
	}
	return earlier, nil
}

// sourceHolds checks, once a page of reusing job j's results is open, that
// the table it read is still the publication of j's source: the source's
// record is there, SUCCESS, and names the same run. A source purged,
// expired, or admitted again (whose next run would replace the table) is
// *sqljobber.GoneError. Checked after the page's snapshot is taken, since
// a source is admitted again before its next run publishes.
func (e *Engine) sourceHolds(ctx context.Context, j *ledger.Job) error {
	src, err := e.ledger.Get(ctx, j.ReusedFrom)
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
	case err != nil:
		return err
	case src.State == sqljobber.StateSuccess && src.RunID == j.RunID && src.ReusedFrom == "" &&
		src.ResultsBackend == j.ResultsBackend && src.ResultsTable == j.ResultsTable:
		return nil
	}
	return &sqljobber.GoneError{ID: j.ID, Source: j.ReusedFrom}
}

package actors

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// jobGrain is the virtual actor of one job ID. Its mailbox orders the
// operations on the ID that go through it (submissions, cancellations, its
// group's cancellations and purges, expiry), so that, say, a purge and a new
// submission of the same ID on this activation cannot interleave. Claims,
// runs and their outcomes do not go through it: the ledger's conditional
// writes make the rules hold across them, across nodes and restarts, and
// while two activations of the ID exist for a moment (see package cluster).
// Besides its waiters it holds nothing the ledger does not have, so it may
// passivate or move at any time; while callers wait for the job it stays.
type jobGrain struct {
	e       *Engine
	waiters waiters
	// waitedOn is the admission time of the unfinished job the grain last
	// read, which its waiters wait on.
	waitedOn time.Time
	// started is that job's record if it was STARTED then (its CreatedAt
	// is waitedOn): with what its run says it wrote when it finishes, the
	// finished record (see finishedRecord).
	started *ledger.Job
}

func newJobGrain(e *Engine) *jobGrain {
	g := &jobGrain{e: e}
	g.waiters = waiters{e: e, state: g.state}
	return g
}

func (g *jobGrain) Receive(ctx actor.Context) {
	if g.waiters.receive(ctx) || g.e.refuseIfStopped(ctx) {
		return
	}
	switch msg := ctx.Message().(type) {
	case *jobpb.SubmitJob:
		ctx.Respond(g.submit(msg.Spec, msg.DeadlineUnixMicros))
	case *jobpb.CancelJob:
		ctx.Respond(g.cancel(msg))
		g.waiters.changed(ctx, msg.JobId)
	case *jobpb.PurgeJob:
		ctx.Respond(g.purge(msg.JobId))
		g.waiters.changed(ctx, msg.JobId)
	case *jobpb.ExpireJob:
		ctx.Respond(g.expire(msg))
		g.waiters.changed(ctx, msg.JobId)
	case *jobpb.WaitJob:
		g.waiters.wait(ctx, msg.JobId, msg.WaitMillis)
	case *jobpb.JobChanged:
		ctx.Respond(okReply())
		switch {
		case len(g.waiters.list) == 0:
		case g.finishedAsWaitedOn(msg):
			reply := &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_OK, JobId: msg.JobId, State: msg.FinalState}
			if j := g.finishedRecord(msg); j != nil {
				reply.FinishedJobJson = finishedJSON(j)
			}
			g.waiters.answer(ctx, reply, true)
		default:
			g.waiters.changed(ctx, msg.JobId)
		}
	}
}

// state reads the job's state; it is final once the job has finished or is
// gone.
func (g *jobGrain) state(id string) (*jobpb.Reply, bool) {
	ctx, cancel := g.ioContext()
	defer cancel()
	j, err := g.e.ledger.Get(ctx, id)
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}, true
	case err != nil:
		return failed(err), false
	}
	g.started = nil
	if j.State.Active() {
		g.waitedOn = j.CreatedAt
		if j.State == sqljobber.StateStarted {
			g.started = j
		}
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_OK, JobId: j.ID, State: string(j.State)}, false
	}
	return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_OK, JobId: j.ID, State: string(j.State), FinishedJobJson: finishedJSON(&j.Job)}, true
}

// finishedRecord is the record of the job the waiters wait on (msg is of
// that admission: finishedAsWaitedOn) as msg's run finished it, if it
// succeeded, the grain read the job STARTED by that run, and the run says
// when it recorded its SUCCESS; else nil. A SUCCESS changes nothing else a
// client sees (ledger.Ledger.Finish, ledger.Run.Success), and nothing but
// its lease changes a STARTED job while its run owns it.
func (g *jobGrain) finishedRecord(msg *jobpb.JobChanged) *sqljobber.Job {
	s := g.started
	if s == nil || msg.FinalState != string(sqljobber.StateSuccess) || msg.RunId != s.RunID || msg.FinishedUnixMicros == 0 {
		return nil
	}
	j := s.Job
	j.State, j.Count, j.Error, j.Progress = sqljobber.State(msg.FinalState), msg.Count, "", nil
	j.FinishedAt = time.UnixMicro(msg.FinishedUnixMicros).UTC()
	j.ExpiresAt = time.Time{}
	if j.TTL > 0 {
		j.ExpiresAt = j.FinishedAt.Add(j.TTL)
	}
	return &j
}

// finishedJSON encodes a finished job for a waiter's answer; nil if it
// cannot (the waiter then reads the job).
func finishedJSON(j *sqljobber.Job) []byte {
	b, err := json.Marshal(j)
	if err != nil {
		return nil
	}
	return b
}

// finishedAsWaitedOn reports whether msg says that the very job the
// waiters wait on has finished: then its final state needs no reading. A
// notice of an earlier job of the ID (resubmitted since) does not match.
func (g *jobGrain) finishedAsWaitedOn(msg *jobpb.JobChanged) bool {
	return msg.FinalState != "" && !sqljobber.State(msg.FinalState).Active() && !g.waitedOn.IsZero() &&
		msg.CreatedUnixMicros == g.waitedOn.UnixMicro()
}

func (g *jobGrain) ioContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(g.e.ctx, ledgerTimeout)
}

// callerContext bounds I/O by the caller's deadline too (0: none).
func (e *Engine) callerContext(deadlineUnixMicros int64) (context.Context, context.CancelFunc) {
	dl := time.Now().Add(ledgerTimeout)
	if deadlineUnixMicros != 0 {
		if d := time.UnixMicro(deadlineUnixMicros); d.Before(dl) {
			dl = d
		}
	}
	return context.WithDeadline(e.ctx, dl)
}

func failed(err error) *jobpb.Reply {
	if errors.Is(err, sqljobber.ErrStopping) {
		// Refused before anything was done: the caller asks again,
		// and the ID's next owner answers.
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_UNAVAILABLE, Error: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// Out of time (most often a request that spent it finding the
		// grain while its owner died), or cut off by this node's stop
		// (the engine's context ends only then): done or not, the
		// caller's answer is 503, not 500.
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_TIMED_OUT, Error: err.Error()}
	}
	if sqlexec.Transient(err) {
		// The ledger's database could not be reached, or refused for a
		// moment: the caller's answer is 503, and it may ask again.
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_BUSY, Error: err.Error()}
	}
	return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_FAILED, Error: err.Error()}
}

// refuseIfStopped answers a request that reaches a grain before its node's
// engine started or after it stopped: unavailable, nothing done, so that
// the caller asks again (see Engine.request).
func (e *Engine) refuseIfStopped(ctx actor.Context) bool {
	if e.running.Load() && e.ctx.Err() == nil || ctx.Sender() == nil {
		return false
	}
	if _, ok := ctx.Message().(proto.Message); !ok {
		return false
	}
	ctx.Respond(failed(sqljobber.ErrStopping))
	return true
}

// failure says whether a reply says the request failed, whatever the
// reason.
func failure(r *jobpb.Reply) bool {
	switch r.Outcome {
	case jobpb.Reply_OUTCOME_FAILED, jobpb.Reply_OUTCOME_UNAVAILABLE, jobpb.Reply_OUTCOME_TIMED_OUT, jobpb.Reply_OUTCOME_BUSY:
		return true
	}
	return false
}

func okReply() *jobpb.Reply { return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_OK} }

func (g *jobGrain) submit(spec *jobpb.JobSpec, deadline int64) *jobpb.Reply {
	ctx, cancel := g.e.callerContext(deadline)
	defer cancel()
	if reply, done := g.reuse(ctx, spec); done {
		return reply
	}
	j := g.e.jobFromSpec(spec)
	// Where the ledger says what an admission replaced, nothing needs
	// reading first (a flight's joiners keep the reading: theirs is
	// another admission).
	replacedKnown := j.Flight == "" && g.e.ledger.ReportsReplaced()
	var elsewhere []*ledger.Job
	var err error
	if !replacedKnown {
		if elsewhere, err = g.e.tablesElsewhere(ctx, []*jobpb.JobSpec{spec}); err != nil {
			return failed(err)
		}
	}
	// A job that joins a flight never publishes under its ID: the ID's
	// earlier table, wherever it is, is nobody's once it is admitted.
	var earlier []*ledger.Job
	if j.Flight != "" && !slices.ContainsFunc(elsewhere, func(p *ledger.Job) bool { return p.ID == j.ID }) {
		if prev, err := g.e.ledger.Get(ctx, j.ID); err == nil && !prev.State.Active() && prev.ReusedFrom == "" && prev.ResultsTable != "" {
			earlier = append(earlier, prev)
		}
	}
	queue := g.e.idleSlot(&j)
	wake := queue == nil
	var admitted *ledger.Job
	switch {
	case j.Flight != "":
		var joined bool
		wake, joined, err = g.e.admitFlight(ctx, j, queue)
		if err == nil && joined {
			elsewhere = append(elsewhere, earlier...)
		}
	case queue != nil:
		admitted, err = g.e.admitStarted(ctx, j, queue)
	default:
		admitted, err = g.e.ledger.Admit(ctx, j)
	}
	if err == nil && replacedKnown && admitted.Replaced.OwnTableOtherThan(j.ResultsBackend, j.ResultsTable) {
		r := admitted.Replaced
		elsewhere = append(elsewhere, &ledger.Job{Job: sqljobber.Job{ID: j.ID, ResultsBackend: r.ResultsBackend, ResultsTable: r.ResultsTable,
			ReusedFrom: r.ReusedFrom}})
	}
	if reply, ok := admissionReply(err); ok {
		return reply
	}
	if err != nil {
		g.e.logger.Error("admit job", slog.String("job_id", spec.JobId), slog.String("error_code", sqlexec.ErrorCode(err)))
		return failed(err)
	}
	g.e.metrics.submitted.WithLabelValues(g.e.metrics.queue(spec.Queue), spec.Task).Inc()
	switch {
	case wake && j.ETA.After(time.Now()) && g.e.queueActor(spec.Queue) != nil:
		// Nothing is ready before its ETA: a wake now would only have
		// every member's queue claim nothing (and read when its next
		// job is due), batch after batch of a burst of scheduled jobs.
		// This node's queue wakes at the ETA; the others' polls find it
		// (PollInterval) should this one be busy then.
		g.e.wakeBy(spec.Queue, j.ETA)
	case wake:
		g.e.wake(spec.Queue)
	}
	g.e.dropEarlierTables(ctx, elsewhere)
	return okReply()
}

// tablesElsewhere returns the finished jobs that the admission of specs
// will replace whose results tables are not where the new runs will
// publish theirs (another backend, or another name): once the admission is
// written, nothing else refers to those tables. With one results backend,
// and its pattern for names unchanged, a new run replaces its ID's table
// itself, and nothing needs reading.
func (e *Engine) tablesElsewhere(ctx context.Context, specs []*jobpb.JobSpec) ([]*ledger.Job, error) {
	if len(e.results) < 2 {
		return nil, nil
	}
	byID := make(map[string]*jobpb.JobSpec, len(specs))
	ids := make([]string, len(specs))
	for i, s := range specs {
		byID[s.JobId], ids[i] = s, s.JobId
	}
	cur, err := e.ledger.GetMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []*ledger.Job
	for _, j := range cur {
		s := byID[j.ID]
		if !j.State.Active() && j.ResultsTable != "" && (j.ResultsBackend != s.ResultsBackend || j.ResultsTable != s.ResultsTable) {
			out = append(out, j)
		}
	}
	return out, nil
}

// dropEarlierTables drops the tables that tablesElsewhere found, after the
// admission that replaced their jobs was written (before it, a refused
// admission would leave a finished job without its table). A table that
// cannot be dropped is logged, by name, to be dropped by hand.
func (e *Engine) dropEarlierTables(ctx context.Context, jobs []*ledger.Job) {
	for _, j := range jobs {
		if err := e.dropResults(ctx, j); err != nil {
			e.logger.Error("drop the results table of an earlier run of a job ID", slog.String("job_id", j.ID),
				slog.String("results_backend", j.ResultsBackend), slog.String("results_table", j.ResultsTable),
				slog.String("error_code", sqlexec.ErrorCode(err)))
		}
	}
}

// admitStarted admits j already started, in the slot taken for it on
// queue, and runs it; on error the slot is handed back. Stop waits for it:
// a job it writes is run, or handed back while the ledger is still open.
func (e *Engine) admitStarted(ctx context.Context, j ledger.Job, queue *actor.PID) (*ledger.Job, error) {
	if !e.hold() {
		e.node.System().Root.Send(queue, slotFreed{task: j.Task})
		return nil, sqljobber.ErrStopping
	}
	defer e.wg.Done()
	started, err := e.ledger.Start(ctx, j, e.self, e.cfg.Lease)
	if err != nil {
		e.node.System().Root.Send(queue, slotFreed{task: j.Task})
		return nil, err
	}
	e.runInSlot(started, queue)
	return started, nil
}

// jobFromSpec is the ledger's record of the job spec asks for, with the
// source database it will run against chosen: the one the request named,
// else one of its task's at random. It is chosen now, not when it runs, so
// that a database's cap (ledger.Config.MaxRunning) knows which jobs it
// holds back.
func (e *Engine) jobFromSpec(spec *jobpb.JobSpec) ledger.Job {
	j := ledger.Job{Job: sqljobber.Job{
		ID: spec.JobId, Task: spec.Task, Queue: spec.Queue, DB: spec.Db, Args: []byte(spec.ArgsJson),
		Retries: int(spec.Retries), TTL: time.Duration(spec.TtlSeconds) * time.Second, GroupID: spec.GroupId,
		ResultsBackend: spec.ResultsBackend, ResultsTable: spec.ResultsTable, Owner: spec.Owner,
	}, Held: spec.Held, Fingerprint: spec.Fingerprint, Flight: spec.Flight}
	if spec.EtaUnixMicros != 0 {
		j.ETA = time.UnixMicro(spec.EtaUnixMicros).UTC()
	}
	// A task this node does not know (configurations differ) leaves the
	// choice to the run.
	if t, ok := e.tasks.Task(spec.Task); ok {
		j.SourceDB, _ = e.tasks.PickDB(t, spec.Db)
	}
	return j
}

// cancel cancels the job and, with msg.Purge, purges it. Its group, if
// any, learns of it unless it asked. A job the caller may not see is not
// found: its owner is read here, where no submission of the ID can change
// it meanwhile.
func (g *jobGrain) cancel(msg *jobpb.CancelJob) *jobpb.Reply {
	id, purge := msg.JobId, msg.Purge
	ctx, cancel := g.ioContext()
	defer cancel()
	if msg.Caller != nil {
		cur, err := g.e.ledger.Get(ctx, id)
		switch {
		case errors.Is(err, sqljobber.ErrJobNotFound) || err == nil && !sees(msg.Caller, cur.Owner):
			return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}
		case err != nil:
			return failed(err)
		}
	}
	prev, err := g.e.ledger.Cancel(ctx, id)
	var finished *sqljobber.FinishedError
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}
	case errors.As(err, &finished):
		if purge {
			return g.purge(id)
		}
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_FINISHED, JobId: id, State: string(finished.State)}
	case err != nil:
		return failed(err)
	}
	g.e.cancelled(prev)
	g.e.settleFlight(prev)
	if prev.State == sqljobber.StateStarted {
		if done := g.e.stopRun(prev); done != nil && purge {
			// Its table must not be published after the purge.
			select {
			case <-done:
			case <-ctx.Done():
			}
		}
	}
	if prev.GroupID != "" && !msg.ByGroup {
		g.e.groupChanged(prev.GroupID)
	}
	if purge {
		return g.purge(id)
	}
	return okReply()
}

// cancelled logs and counts a cancelled job.
func (e *Engine) cancelled(prev *ledger.Job) {
	e.logger.Info("job cancelled", slog.String("job_id", prev.ID), slog.String("task", prev.Task),
		slog.String("queue", prev.Queue), slog.String("was", string(prev.State)))
	e.metrics.cancelled.WithLabelValues(e.metrics.queue(prev.Queue), prev.Task).Inc()
	e.metrics.finishedJob(prev, sqljobber.StateCancelled, sinceAdmission(prev))
}

// purge deletes a finished job's results table and then its record, so that
// a failure leaves the record to try again, never an orphan table.
func (g *jobGrain) purge(id string) *jobpb.Reply {
	ctx, cancel := g.ioContext()
	defer cancel()
	j, err := g.e.ledger.Get(ctx, id)
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}
	case err != nil:
		return failed(err)
	case j.State.Active():
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_ACTIVE, JobId: j.ID, State: string(j.State)}
	}
	if err := g.e.dropResults(ctx, j); err != nil {
		return failed(err)
	}
	deleted, err := g.e.ledger.DeleteIfUnchanged(ctx, j)
	if err != nil {
		return failed(err)
	}
	if !deleted {
		return failed(errors.New("the job changed while it was being purged; try again"))
	}
	g.e.logger.Info("job purged", slog.String("job_id", id), slog.String("task", j.Task))
	return okReply()
}

// expire removes a job whose results outlived their TTL, unless it changed
// since the maintenance loop saw it.
func (g *jobGrain) expire(msg *jobpb.ExpireJob) *jobpb.Reply {
	ctx, cancel := g.ioContext()
	defer cancel()
	j, err := g.e.ledger.Get(ctx, msg.JobId)
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
		return okReply()
	case err != nil:
		return failed(err)
	case j.State.Active() || j.UpdatedAt.UnixMicro() != msg.UpdatedAtUnixMicros:
		return okReply()
	}
	if err := g.e.dropResults(ctx, j); err != nil {
		return failed(err)
	}
	if _, err := g.e.ledger.DeleteIfUnchanged(ctx, j); err != nil {
		return failed(err)
	}
	g.e.logger.Info("job results expired", slog.String("job_id", j.ID), slog.String("task", j.Task))
	return okReply()
}

// dropResults drops a job's results table, if it has one of its own: a job
// that reused another's results leaves that job's table to it.
func (e *Engine) dropResults(ctx context.Context, j *ledger.Job) error {
	if j.ResultsTable == "" || j.ReusedFrom != "" {
		return nil
	}
	b, found := e.results[j.ResultsBackend]
	if !found {
		return errors.New("results backend " + j.ResultsBackend + " is not configured on this node")
	}
	return b.Drop(ctx, j.ResultsTable)
}

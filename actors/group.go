package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// GroupRequest is a request for a group of jobs.
type GroupRequest struct {
	GroupID string // "" to generate one
	// Concurrency is how many members may run at once; nil for the
	// configured default.
	Concurrency *int
	Jobs        []SubmitRequest
}

// MaxGroupConcurrency is the largest concurrency a group may ask for: far
// beyond any group's size, and within the 32 bits it is stored in.
const MaxGroupConcurrency = 1_000_000

// GroupReceipt is what a client learns about an accepted group.
type GroupReceipt struct {
	GroupID string
	Jobs    []Receipt
}

// SubmitGroup validates a group, records it and its jobs, and lets the
// first Concurrency members start; the rest wait, held, until members
// finish. Nothing is recorded if anything is wrong.
func (e *Engine) SubmitGroup(ctx context.Context, req GroupRequest) (*GroupReceipt, error) {
	if req.GroupID == "" {
		req.GroupID = NewID()
	} else if err := e.ValidateID("group_id", req.GroupID); err != nil {
		return nil, err
	}
	concurrency := e.cfg.GroupConcurrency
	if req.Concurrency != nil {
		// The ledger and the grain's messages hold it in 32 bits: a
		// larger one must be refused, not truncated.
		if *req.Concurrency < 1 || *req.Concurrency > MaxGroupConcurrency {
			return nil, sqljobber.Invalid("concurrency", "must be between 1 and %d", MaxGroupConcurrency)
		}
		concurrency = *req.Concurrency
	}
	if len(req.Jobs) == 0 {
		return nil, sqljobber.Invalid("jobs", "must list at least one job")
	}
	owner := sqljobber.Owner(ctx)
	msg := &jobpb.SubmitGroup{GroupId: req.GroupID, Concurrency: int32(concurrency), DeadlineUnixMicros: deadlineOf(ctx, e.node.RequestTimeout()), Owner: owner}
	seen := map[string]int{}
	for i, jr := range req.Jobs {
		prefix := fmt.Sprintf("jobs[%d].", i)
		if jr.Task == "" {
			return nil, sqljobber.Invalid(prefix+"task", "required")
		}
		spec, err := e.spec(prefix, jr)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[spec.JobId]; dup {
			return nil, sqljobber.Invalid(prefix+"job_id", "%q is also jobs[%d]'s ID", spec.JobId, first)
		}
		seen[spec.JobId] = i
		spec.GroupId, spec.Owner = req.GroupID, owner
		e.fingerprint(spec)
		spec.Held = i >= concurrency
		msg.Jobs = append(msg.Jobs, spec)
	}
	reply, err := e.request(ctx, groupKind, req.GroupID, msg)
	if err != nil {
		return nil, fmt.Errorf("submit group: %w", err)
	}
	if err := replyError(reply, "group", sqljobber.ErrGroupNotFound, req.GroupID); err != nil {
		return nil, err
	}
	out := &GroupReceipt{GroupID: req.GroupID}
	// Once a queue: a group may hold thousands of jobs of a few queues.
	workers := map[string]int{}
	for _, spec := range msg.Jobs {
		r := receipt(spec)
		n, ok := workers[r.Queue]
		if !ok {
			n = e.Workers(r.Queue)
			workers[r.Queue] = n
		}
		r.Workers = n
		out.Jobs = append(out.Jobs, *r)
	}
	return out, nil
}

// Group returns a group's state and its members (those running with their
// progress, see withProgress); a group the caller
// (sqljobber.Sees) may not see is not found.
func (e *Engine) Group(ctx context.Context, id string) (*sqljobber.Group, error) {
	g, jobs, err := e.visibleGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	e.withProgress(ctx, jobs)
	members := jobsOf(jobs)
	return &sqljobber.Group{ID: g.ID, State: sqljobber.GroupState(g.Cancelled, members), Owner: g.Owner, Concurrency: g.Concurrency, Jobs: members}, nil
}

// visibleGroup reads a group the caller may see, and its members as the
// ledger has them (without asking their nodes for progress).
func (e *Engine) visibleGroup(ctx context.Context, id string) (*ledger.Group, []*ledger.Job, error) {
	g, jobs, err := e.ledger.Group(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !sqljobber.Sees(ctx, g.Owner) {
		return nil, nil, errGroupNotFound(id)
	}
	return g, jobs, nil
}

// errGroupNotFound is sqljobber.ErrGroupNotFound for id.
func errGroupNotFound(id string) error { return fmt.Errorf("%w: %q", sqljobber.ErrGroupNotFound, id) }

// CancelGroup cancels every unfinished member of a group at once (no member
// starts after it returns); with purge it then deletes the group, its
// members' records and their results tables.
func (e *Engine) CancelGroup(ctx context.Context, id string, purge bool) error {
	reply, err := e.request(ctx, groupKind, id, &jobpb.CancelGroup{GroupId: id, Purge: purge, Caller: callerOf(ctx)})
	if err != nil {
		return fmt.Errorf("cancel group: %w", err)
	}
	return replyError(reply, "group", sqljobber.ErrGroupNotFound, id)
}

// groupChanged tells a group's grain, in the background, that a member
// finished, so it can let held members start.
func (e *Engine) groupChanged(id string) {
	e.spawn(func() {
		ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
		defer cancel()
		if _, err := e.request(ctx, groupKind, id, &jobpb.GroupChanged{GroupId: id}); err != nil && e.ctx.Err() == nil {
			// The periodic sweep releases the group's members later.
			e.logger.Warn("notify group", slog.String("group_id", id), slog.Any("error", err))
		}
	})
}

// sweepGroups lets every group with held members release what it may: a
// safety net for notifications lost to a crash or a move.
func (e *Engine) sweepGroups(ctx context.Context) {
	// A bounded batch a pass, taking up where the last one ended.
	ids, err := e.ledger.HeldGroups(ctx, e.sweptTo, housekeepingBatch)
	if err != nil {
		e.logger.Warn("list groups with held jobs", slog.Any("error", err))
		return
	}
	e.sweptTo = ""
	if len(ids) == housekeepingBatch {
		e.sweptTo = ids[len(ids)-1]
	}
	for _, id := range ids {
		rctx, cancel := context.WithTimeout(ctx, sweepTimeout)
		_, err := e.request(rctx, groupKind, id, &jobpb.GroupChanged{GroupId: id})
		cancel()
		if err != nil {
			e.logger.Warn("release group", slog.String("group_id", id), slog.Any("error", err))
		}
	}
}

// sweepTimeout bounds a sweep's request to one group's grain: a group whose
// grain does not answer is swept again at a later pass.
const sweepTimeout = 5 * time.Second

// groupGrain is the virtual actor of one group ID: it admits the group and
// releases held members as others finish, one change at a time.
type groupGrain struct {
	e       *Engine
	waiters waiters
	// releasing says a releaseTick is in the mailbox: notices that arrive
	// meanwhile need no release of their own.
	releasing bool
}

// releaseTick tells a group's grain to release what its group may. Every
// member that finishes sends a notice; a large group's notices would
// otherwise each read the group, one after the other, and a cancel or a
// submission would wait behind all of them.
type releaseTick struct{ groupID string }

func newGroupGrain(e *Engine) *groupGrain {
	g := &groupGrain{e: e}
	g.waiters = waiters{e: e, state: g.state}
	return g
}

func (g *groupGrain) Receive(ctx actor.Context) {
	if g.waiters.receive(ctx) || g.e.refuseIfStopped(ctx) {
		return
	}
	switch msg := ctx.Message().(type) {
	case *jobpb.SubmitGroup:
		ctx.Respond(g.submit(msg))
	case *jobpb.GroupChanged:
		// Answered at once: the release behind it is the grain's to retry
		// (the sweep does), not the member's.
		ctx.Respond(okReply())
		if !g.releasing {
			g.releasing = true
			ctx.Send(ctx.Self(), releaseTick{groupID: msg.GroupId})
		}
	case releaseTick:
		g.releasing = false
		if r := g.release(msg.groupID); failure(r) && g.e.ctx.Err() == nil {
			// The periodic sweep releases the group's members later.
			g.e.logger.Warn("release group", slog.String("group_id", msg.groupID), slog.String("error", r.Error))
		}
		g.waiters.changed(ctx, msg.groupID)
	case *jobpb.CancelGroup:
		ctx.Respond(g.cancel(msg))
		g.waiters.changed(ctx, msg.GroupId)
	case *jobpb.PurgeGroup:
		ctx.Respond(g.purge(msg.GroupId))
		g.waiters.changed(ctx, msg.GroupId)
	case *jobpb.WaitGroup:
		g.waiters.wait(ctx, msg.GroupId, msg.WaitMillis)
	}
}

// state reads the group's state; it is final once every member has
// finished, the group is cancelled, or it is gone.
func (g *groupGrain) state(id string) (*jobpb.Reply, bool) {
	ctx, cancel := g.ioContext()
	defer cancel()
	grp, jobs, err := g.e.ledger.Group(ctx, id)
	switch {
	case errors.Is(err, sqljobber.ErrGroupNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}, true
	case err != nil:
		return failed(err), false
	}
	st := sqljobber.GroupState(grp.Cancelled, jobsOf(jobs))
	return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_OK, JobId: id, State: string(st)}, st.Final()
}

func (g *groupGrain) ioContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(g.e.ctx, ledgerTimeout)
}

func (g *groupGrain) submit(msg *jobpb.SubmitGroup) *jobpb.Reply {
	ctx, cancel := g.e.callerContext(msg.DeadlineUnixMicros)
	defer cancel()
	jobs := make([]ledger.Job, len(msg.Jobs))
	ids := make([]string, len(msg.Jobs))
	for i, spec := range msg.Jobs {
		jobs[i], ids[i] = g.e.jobFromSpec(spec), spec.JobId
	}
	elsewhere, err := g.e.tablesElsewhere(ctx, msg.Jobs)
	if err != nil {
		return failed(err)
	}
	earlier, err := g.e.reuseInGroup(ctx, msg, jobs)
	if err != nil {
		return failed(err)
	}
	elsewhere = append(elsewhere, earlier...)
	_, err = g.e.ledger.AdmitGroup(ctx, ledger.Group{ID: msg.GroupId, Owner: msg.Owner, Concurrency: int(msg.Concurrency), JobIDs: ids}, jobs)
	if reply, ok := admissionReply(err); ok {
		return reply
	}
	if err != nil {
		g.e.logger.Error("admit group", slog.String("group_id", msg.GroupId), slog.String("error_code", sqlexec.ErrorCode(err)))
		return failed(err)
	}
	for i, spec := range msg.Jobs {
		g.e.metrics.submitted.WithLabelValues(g.e.metrics.queue(spec.Queue), spec.Task).Inc()
		switch {
		case jobs[i].ReuseOf != nil:
			g.e.reused(&jobs[i])
		case !jobs[i].Held:
			g.e.wake(spec.Queue)
		}
	}
	g.e.dropEarlierTables(ctx, elsewhere)
	return okReply()
}

func (g *groupGrain) release(id string) *jobpb.Reply {
	ctx, cancel := g.ioContext()
	defer cancel()
	released, err := g.e.ledger.ReleaseGroup(ctx, id)
	if err != nil && !errors.Is(err, sqljobber.ErrGroupNotFound) {
		return failed(err)
	}
	for _, j := range released {
		g.e.wake(j.Queue)
	}
	return okReply()
}

// cancel cancels the group and every unfinished member in one ledger
// transaction, so that none starts afterwards however many there are, then
// stops the runs of those that had started and tells the members' grains
// (in the background) so that they answer those waiting; with purge, it
// then purges the group. A group the caller may not see is not found: its
// owner is read here, where no submission of the group can change it
// meanwhile.
func (g *groupGrain) cancel(msg *jobpb.CancelGroup) *jobpb.Reply {
	id, purge := msg.GroupId, msg.Purge
	ctx, cancel := g.ioContext()
	defer cancel()
	grp, jobs, err := g.e.ledger.Group(ctx, id)
	switch {
	case errors.Is(err, sqljobber.ErrGroupNotFound) || err == nil && !sees(msg.Caller, grp.Owner):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}
	case err != nil:
		return failed(err)
	}
	if !slices.ContainsFunc(jobs, func(j *ledger.Job) bool { return j.State.Active() }) {
		if purge {
			return g.purge(id)
		}
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_FINISHED, JobId: id, State: string(sqljobber.GroupState(grp.Cancelled, jobsOf(jobs)))}
	}
	cancelled, err := g.e.ledger.CancelGroup(ctx, id)
	if err != nil {
		return failed(err)
	}
	var stopping []<-chan struct{}
	for _, prev := range cancelled {
		g.e.metrics.cancelled.WithLabelValues(g.e.metrics.queue(prev.Queue), prev.Task).Inc()
		g.e.metrics.finishedJob(prev, sqljobber.StateCancelled, sinceAdmission(prev))
		if prev.State == sqljobber.StateStarted {
			if done := g.e.stopRun(prev); done != nil {
				stopping = append(stopping, done)
			}
		}
	}
	g.e.membersChanged(cancelled, sqljobber.StateCancelled)
	g.e.logger.Info("group cancelled", slog.String("group_id", id), slog.Int("jobs", len(cancelled)))
	if !purge {
		return okReply()
	}
	// Their tables must not be published after the purge.
	for _, done := range stopping {
		select {
		case <-done:
		case <-ctx.Done():
			return failed(ctx.Err())
		}
	}
	return g.purge(id)
}

// membersChanged tells the grains of jobs, in the background and
// memberRequests at a time, that they finished in state, so that they
// answer those waiting for them.
func (e *Engine) membersChanged(jobs []*ledger.Job, state sqljobber.State) {
	if len(jobs) == 0 {
		return
	}
	e.spawn(func() {
		ctx, cancel := context.WithTimeout(e.ctx, ledgerTimeout)
		defer cancel()
		// A lost notice delays the waiters to the end of their wait, no
		// more.
		created := make(map[string]int64, len(jobs))
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i], created[j.ID] = j.ID, j.CreatedAt.UnixMicro()
		}
		// Every member is told, whatever the others answer.
		e.eachMember(ctx, ids, func(id string) proto.Message {
			return &jobpb.JobChanged{JobId: id, FinalState: string(state), CreatedUnixMicros: created[id]}
		}, jobpb.Reply_OUTCOME_FAILED, jobpb.Reply_OUTCOME_UNAVAILABLE, jobpb.Reply_OUTCOME_TIMED_OUT, jobpb.Reply_OUTCOME_BUSY, jobpb.Reply_OUTCOME_NOT_FOUND)
	})
}

// purge purges every member through its job's grain (its results table,
// then its record), and then deletes the group. An unfinished member
// refuses it.
func (g *groupGrain) purge(id string) *jobpb.Reply {
	ctx, cancel := g.ioContext()
	defer cancel()
	_, jobs, err := g.e.ledger.Group(ctx, id)
	switch {
	case errors.Is(err, sqljobber.ErrGroupNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}
	case err != nil:
		return failed(err)
	}
	ids := make([]string, 0, len(jobs))
	for _, j := range jobs {
		if j.State.Active() {
			return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_ACTIVE, JobId: j.ID, State: string(j.State)}
		}
		ids = append(ids, j.ID)
	}
	if r := g.e.eachMember(ctx, ids, func(jobID string) proto.Message {
		return &jobpb.PurgeJob{JobId: jobID}
	}, jobpb.Reply_OUTCOME_NOT_FOUND); r != nil {
		return r
	}
	_, err = g.e.ledger.DeleteGroup(ctx, id)
	var active *sqljobber.ActiveError
	switch {
	case errors.As(err, &active):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_ACTIVE, JobId: active.ID, State: string(active.State)}
	case err != nil:
		return failed(err)
	}
	g.e.logger.Info("group purged", slog.String("group_id", id), slog.Int("jobs", len(jobs)))
	return okReply()
}

// memberRequests bounds the requests a group's grain has in flight to its
// members' grains.
const memberRequests = 16

// eachMember sends the message that msg makes for each job ID to that job's
// grain, memberRequests at a time, and returns nil once every reply is OK
// or one of the outcomes passed over; else the first other reply, having
// sent no further requests.
func (e *Engine) eachMember(ctx context.Context, ids []string, msg func(jobID string) proto.Message, pass ...jobpb.Reply_Outcome) *jobpb.Reply {
	var (
		mu    sync.Mutex
		first *jobpb.Reply
		wg    sync.WaitGroup
		slots = make(chan struct{}, memberRequests)
	)
	for _, id := range ids {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			reply, err := e.request(ctx, jobKind, id, msg(id))
			if err != nil {
				reply = failed(err)
			}
			if reply.Outcome == jobpb.Reply_OUTCOME_OK || slices.Contains(pass, reply.Outcome) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if first == nil {
				first = reply
			}
		}()
	}
	wg.Wait()
	return first
}

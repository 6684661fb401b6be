package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Group states, derived from the members' states.
const (
	GroupPending   = "PENDING"
	GroupStarted   = "STARTED"
	GroupSuccess   = "SUCCESS"
	GroupFailure   = "FAILURE"
	GroupCancelled = "CANCELLED"
)

// GroupRequest is a request for a group of jobs.
type GroupRequest struct {
	GroupID string // "" to generate one
	// Concurrency is how many members may run at once; nil for the
	// configured default.
	Concurrency *int
	Jobs        []SubmitRequest
}

// GroupReceipt is what a client learns about an accepted group.
type GroupReceipt struct {
	GroupID string
	Jobs    []Receipt
}

// GroupStatus is a group and its members, in submission order.
type GroupStatus struct {
	ID          string
	State       string
	Concurrency int
	Jobs        []*resultsink.Job
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
		if *req.Concurrency < 1 {
			return nil, invalid("concurrency", "must be at least 1")
		}
		concurrency = *req.Concurrency
	}
	if len(req.Jobs) == 0 {
		return nil, invalid("jobs", "must list at least one job")
	}
	msg := &jobpb.SubmitGroup{GroupId: req.GroupID, Concurrency: int32(concurrency), DeadlineUnixMicros: deadlineOf(ctx, e.node.RequestTimeout())}
	seen := map[string]int{}
	for i, jr := range req.Jobs {
		prefix := fmt.Sprintf("jobs[%d].", i)
		if jr.Task == "" {
			return nil, invalid(prefix+"task", "required")
		}
		spec, err := e.spec(prefix, jr)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[spec.JobId]; dup {
			return nil, invalid(prefix+"job_id", "%q is also jobs[%d]'s ID", spec.JobId, first)
		}
		seen[spec.JobId] = i
		spec.GroupId = req.GroupID
		spec.Held = i >= concurrency
		msg.Jobs = append(msg.Jobs, spec)
	}
	reply, err := e.request(ctx, groupKind, req.GroupID, msg)
	if err != nil {
		return nil, fmt.Errorf("submit group: %w", err)
	}
	if err := replyError(reply, "group", ErrGroupNotFound, req.GroupID); err != nil {
		return nil, err
	}
	out := &GroupReceipt{GroupID: req.GroupID}
	for _, spec := range msg.Jobs {
		out.Jobs = append(out.Jobs, *receipt(spec))
	}
	return out, nil
}

// Group returns a group's state and its members.
func (e *Engine) Group(ctx context.Context, id string) (*GroupStatus, error) {
	g, jobs, err := e.ledger.Group(ctx, id)
	if errors.Is(err, resultsink.ErrGroupNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrGroupNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return &GroupStatus{ID: g.ID, State: groupState(g, jobs), Concurrency: g.Concurrency, Jobs: jobs}, nil
}

// groupState derives a group's state: PENDING before any member starts,
// STARTED while any is unfinished, and once all have finished SUCCESS if all
// succeeded, FAILURE if any failed, else CANCELLED; CANCELLED as soon as the
// group is cancelled.
func groupState(g *resultsink.Group, jobs []*resultsink.Job) string {
	if g.Cancelled {
		return GroupCancelled
	}
	var unfinished, begun, failed, cancelled int
	for _, j := range jobs {
		switch {
		case j.State == resultsink.StatePending && j.Attempt == 0:
			unfinished++
		case resultsink.Active(j.State):
			unfinished++
			begun++
		default:
			begun++
			switch j.State {
			case resultsink.StateFailure:
				failed++
			case resultsink.StateCancelled:
				cancelled++
			}
		}
	}
	switch {
	case unfinished > 0 && begun == 0:
		return GroupPending
	case unfinished > 0:
		return GroupStarted
	case failed > 0:
		return GroupFailure
	case cancelled > 0:
		return GroupCancelled
	}
	return GroupSuccess
}

// CancelGroup cancels every unfinished member of a group; with purge it then
// deletes the group, its members' records and their results tables.
func (e *Engine) CancelGroup(ctx context.Context, id string, purge bool) error {
	reply, err := e.request(ctx, groupKind, id, &jobpb.CancelGroup{GroupId: id, Purge: purge})
	if err != nil {
		return fmt.Errorf("cancel group: %w", err)
	}
	return replyError(reply, "group", ErrGroupNotFound, id)
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
	ids, err := e.ledger.HeldGroups(ctx)
	if err != nil {
		e.logger.Warn("list groups with held jobs", slog.Any("error", err))
		return
	}
	for _, id := range ids {
		rctx, cancel := context.WithTimeout(ctx, ledgerTimeout)
		_, err := e.request(rctx, groupKind, id, &jobpb.GroupChanged{GroupId: id})
		cancel()
		if err != nil {
			e.logger.Warn("release group", slog.String("group_id", id), slog.Any("error", err))
		}
	}
}

// groupGrain is the virtual actor of one group ID: it admits the group and
// releases held members as others finish, one change at a time.
type groupGrain struct {
	e       *Engine
	waiters waiters
}

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
		ctx.Respond(g.release(msg.GroupId))
		g.waiters.changed(ctx, msg.GroupId)
	case *jobpb.CancelGroup:
		ctx.Respond(g.cancel(msg.GroupId, msg.Purge))
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
	case errors.Is(err, resultsink.ErrGroupNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}, true
	case err != nil:
		return failed(err), false
	}
	st := groupState(grp, jobs)
	return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_OK, JobId: id, State: st},
		st == GroupSuccess || st == GroupFailure || st == GroupCancelled
}

func (g *groupGrain) ioContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(g.e.ctx, ledgerTimeout)
}

func (g *groupGrain) submit(msg *jobpb.SubmitGroup) *jobpb.Reply {
	ctx, cancel := g.e.callerContext(msg.DeadlineUnixMicros)
	defer cancel()
	jobs := make([]resultsink.Job, len(msg.Jobs))
	ids := make([]string, len(msg.Jobs))
	for i, spec := range msg.Jobs {
		jobs[i], ids[i] = jobFromSpec(spec), spec.JobId
	}
	_, err := g.e.ledger.AdmitGroup(ctx, resultsink.Group{ID: msg.GroupId, Concurrency: int(msg.Concurrency), JobIDs: ids}, jobs)
	var active *resultsink.ActiveError
	switch {
	case errors.As(err, &active):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_ACTIVE, JobId: active.Job.ID, State: active.Job.State}
	case err != nil:
		g.e.logger.Error("admit group", slog.String("group_id", msg.GroupId), slog.String("error_code", sqlexec.ErrorCode(err)))
		return failed(err)
	}
	for _, spec := range msg.Jobs {
		g.e.metrics.submitted.WithLabelValues(spec.Queue, spec.Task).Inc()
		if !spec.Held {
			g.e.wake(spec.Queue)
		}
	}
	return okReply()
}

func (g *groupGrain) release(id string) *jobpb.Reply {
	ctx, cancel := g.ioContext()
	defer cancel()
	released, err := g.e.ledger.ReleaseGroup(ctx, id)
	if err != nil && !errors.Is(err, resultsink.ErrGroupNotFound) {
		return failed(err)
	}
	for _, j := range released {
		g.e.wake(j.Queue)
	}
	return okReply()
}

func (g *groupGrain) cancel(id string, purge bool) *jobpb.Reply {
	ctx, cancel := g.ioContext()
	defer cancel()
	grp, jobs, err := g.e.ledger.Group(ctx, id)
	switch {
	case errors.Is(err, resultsink.ErrGroupNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}
	case err != nil:
		return failed(err)
	}
	unfinished := false
	for _, j := range jobs {
		unfinished = unfinished || resultsink.Active(j.State)
	}
	if !unfinished {
		if purge {
			return g.purge(id)
		}
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_FINISHED, JobId: id, State: groupState(grp, jobs)}
	}
	if err := g.e.ledger.MarkGroupCancelled(ctx, id); err != nil {
		return failed(err)
	}
	var runs []<-chan struct{}
	for _, j := range jobs {
		if !resultsink.Active(j.State) {
			continue
		}
		prev, err := g.e.ledger.Cancel(ctx, j.ID)
		var finished *resultsink.FinishedError
		switch {
		case errors.As(err, &finished), errors.Is(err, resultsink.ErrJobNotFound):
			continue
		case err != nil:
			return failed(err)
		}
		g.e.cancelled(prev)
		if prev.State == resultsink.StateStarted {
			if done := g.e.stopRun(prev); done != nil {
				runs = append(runs, done)
			}
		}
	}
	g.e.logger.Info("group cancelled", slog.String("group_id", id))
	if !purge {
		return okReply()
	}
	for _, done := range runs {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return g.purge(id)
}

// purge drops every member's results table and then deletes the group and
// its members' records.
func (g *groupGrain) purge(id string) *jobpb.Reply {
	ctx, cancel := g.ioContext()
	defer cancel()
	_, jobs, err := g.e.ledger.Group(ctx, id)
	switch {
	case errors.Is(err, resultsink.ErrGroupNotFound):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_NOT_FOUND}
	case err != nil:
		return failed(err)
	}
	for _, j := range jobs {
		if resultsink.Active(j.State) {
			return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_ACTIVE, JobId: j.ID, State: j.State}
		}
	}
	for _, j := range jobs {
		if err := g.e.dropResults(ctx, j); err != nil {
			return failed(err)
		}
	}
	_, err = g.e.ledger.DeleteGroup(ctx, id)
	var active *resultsink.ActiveError
	switch {
	case errors.As(err, &active):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_ACTIVE, JobId: active.Job.ID, State: active.Job.State}
	case err != nil:
		return failed(err)
	}
	g.e.logger.Info("group purged", slog.String("group_id", id), slog.Int("jobs", len(jobs)))
	return okReply()
}

package actors

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/resultsink"
)

// jobGrain is the virtual actor of one job ID. Its mailbox serialises every
// submission for the ID on this node; the ledger's conditional admit makes
// the rule hold across nodes and restarts. It holds no state the ledger does
// not have, so it may passivate or move at any time.
type jobGrain struct {
	e  *Engine
	id string
}

func (g *jobGrain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		ctx.SetReceiveTimeout(g.e.cfg.GrainIdle)
	case *cluster.ClusterInit:
		g.id = msg.Identity.Identity
	case *actor.ReceiveTimeout:
		ctx.Stop(ctx.Self())
	case *jobpb.SubmitJob:
		ctx.Respond(g.submit(msg.Spec))
	}
}

func (g *jobGrain) submit(spec *jobpb.JobSpec) *jobpb.SubmitJobReply {
	j := resultsink.Job{
		ID: spec.JobId, Task: spec.Task, Queue: spec.Queue, DB: spec.Db, Args: []byte(spec.ArgsJson),
		Retries: int(spec.Retries), TTL: time.Duration(spec.TtlSeconds) * time.Second, GroupID: spec.GroupId,
	}
	if spec.EtaUnixMicros != 0 {
		j.ETA = time.UnixMicro(spec.EtaUnixMicros).UTC()
	}
	ctx, cancel := context.WithTimeout(g.e.ctx, ledgerTimeout)
	defer cancel()
	admitted, err := g.e.ledger.Admit(ctx, j)
	var active *resultsink.ActiveError
	switch {
	case errors.As(err, &active):
		return &jobpb.SubmitJobReply{Outcome: jobpb.SubmitJobReply_OUTCOME_ACTIVE, State: active.Job.State}
	case err != nil:
		g.e.logger.Error("admit job", slog.String("job_id", spec.JobId), slog.Any("error", err))
		return &jobpb.SubmitJobReply{Outcome: jobpb.SubmitJobReply_OUTCOME_FAILED, Error: err.Error()}
	}
	g.e.dispatch(admitted)
	return &jobpb.SubmitJobReply{Outcome: jobpb.SubmitJobReply_OUTCOME_ACCEPTED}
}

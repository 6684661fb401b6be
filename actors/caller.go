package actors

import (
	"context"
	"errors"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
)

// callerOf is the caller ctx carries, for a grain: nil for an unrestricted
// request.
func callerOf(ctx context.Context) *jobpb.Caller {
	c, ok := sqljobber.CallerFrom(ctx)
	if !ok {
		return nil
	}
	return &jobpb.Caller{Name: c.Name, Admin: c.Admin}
}

// sees reports whether caller c (nil: unrestricted) may see a job or group
// of owner. A grain answers a job that c may not see as it answers one that
// does not exist.
func sees(c *jobpb.Caller, owner string) bool {
	return c == nil || c.Admin || c.Name == owner
}

// admissionReply answers a submission that err refused, if it says why:
// an unfinished job holds the ID, or another client's finished job or
// group does.
func admissionReply(err error) (*jobpb.Reply, bool) {
	var (
		active *sqljobber.ActiveError
		taken  *sqljobber.TakenError
	)
	switch {
	case errors.As(err, &taken):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_TAKEN, JobId: taken.ID, Kind: taken.Kind}, true
	case errors.As(err, &active):
		return &jobpb.Reply{Outcome: jobpb.Reply_OUTCOME_ACTIVE, JobId: active.ID, State: string(active.State)}, true
	}
	return nil, false
}

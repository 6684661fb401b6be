package sqljobber_test

import (
	"testing"

	sqljobber "github.com/sql-jobber/sql-jobber"
)

func TestGroupState(t *testing.T) {
	job := func(state sqljobber.State, attempt int) *sqljobber.Job {
		return &sqljobber.Job{State: state, Attempt: attempt}
	}
	for _, tc := range []struct {
		name      string
		cancelled bool
		jobs      []*sqljobber.Job
		want      sqljobber.State
	}{
		{"none started", false, []*sqljobber.Job{job("PENDING", 0), job("PENDING", 0)}, sqljobber.StatePending},
		{"one running", false, []*sqljobber.Job{job("STARTED", 1), job("PENDING", 0)}, sqljobber.StateStarted},
		{"one done, one waiting", false, []*sqljobber.Job{job("SUCCESS", 1), job("PENDING", 0)}, sqljobber.StateStarted},
		{"one to retry", false, []*sqljobber.Job{job("RETRY", 1), job("SUCCESS", 1)}, sqljobber.StateStarted},
		{"handed back after a run", false, []*sqljobber.Job{job("PENDING", 1)}, sqljobber.StateStarted},
		{"all succeeded", false, []*sqljobber.Job{job("SUCCESS", 1), job("SUCCESS", 2)}, sqljobber.StateSuccess},
		{"one failed", false, []*sqljobber.Job{job("SUCCESS", 1), job("FAILURE", 1), job("CANCELLED", 0)}, sqljobber.StateFailure},
		{"one cancelled", false, []*sqljobber.Job{job("SUCCESS", 1), job("CANCELLED", 1)}, sqljobber.StateCancelled},
		{"the group cancelled", true, []*sqljobber.Job{job("STARTED", 1)}, sqljobber.StateCancelled},
		{"no members left", false, nil, sqljobber.StateSuccess},
	} {
		if got := sqljobber.GroupState(tc.cancelled, tc.jobs); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestStates(t *testing.T) {
	for _, s := range []sqljobber.State{sqljobber.StatePending, sqljobber.StateStarted, sqljobber.StateRetry} {
		if !s.Active() || s.Final() {
			t.Errorf("%s: active %t, final %t", s, s.Active(), s.Final())
		}
	}
	for _, s := range []sqljobber.State{sqljobber.StateSuccess, sqljobber.StateFailure, sqljobber.StateCancelled} {
		if s.Active() || !s.Final() {
			t.Errorf("%s: active %t, final %t", s, s.Active(), s.Final())
		}
	}
}

package client

import (
	"context"
	"testing"
	"time"
)

// A long-poll answers before the caller's deadline, and near it waits a
// share of the time left rather than not at all, so WaitJob never spins.
func TestPollWaitEndsBeforeTheDeadlineAndNeverSpins(t *testing.T) {
	if got := pollWait(context.Background()); got != "30s" {
		t.Errorf("no deadline: wait=%s, want 30s", got)
	}
	for _, tc := range []struct {
		left     time.Duration
		min, max time.Duration
	}{
		{10 * time.Second, 8 * time.Second, 9 * time.Second},
		{1500 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond},
		{10 * time.Millisecond, time.Millisecond, 5 * time.Millisecond},
		{-time.Second, time.Millisecond, time.Millisecond},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), tc.left)
		got, err := time.ParseDuration(pollWait(ctx))
		cancel()
		if err != nil || got < tc.min || got > tc.max {
			t.Errorf("%v left: wait=%v (%v), want %v to %v", tc.left, got, err, tc.min, tc.max)
		}
	}
}

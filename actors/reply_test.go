package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestAStoppingNodesRepliesSayTryAgain: a grain whose node stops while it
// works (its context cancelled) answers "unavailable", which the caller's
// node turns into ErrStopping (503, try again), not an error of its own
// (500). Other failures stay failures.
func TestAStoppingNodesRepliesSayTryAgain(t *testing.T) {
	for _, tc := range []struct {
		err      error
		stopping bool
	}{
		{fmt.Errorf("admit job: %w", context.Canceled), true},
		{ErrStopping, true},
		{fmt.Errorf("admit job: %w", context.DeadlineExceeded), false},
		{errors.New("connection refused"), false},
	} {
		err := replyError(failed(tc.err), "job", ErrJobNotFound, "j")
		if got := errors.Is(err, ErrStopping); got != tc.stopping {
			t.Errorf("a grain's %q reaches its caller as %v; stopping %v, want %v", tc.err, err, got, tc.stopping)
		}
		if err == nil {
			t.Errorf("a grain's %q reaches its caller as no error", tc.err)
		}
	}
}

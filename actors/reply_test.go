package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"

	sqljobber "github.com/sql-jobber/sql-jobber"
)

// TestAStoppingNodesRepliesSayTryAgain: a grain whose node is stopping
// refuses with "unavailable", which the caller's node, once it stops
// asking again, turns into sqljobber.ErrStopping (503); one whose time ran out, or
// whose node stopped while it worked, answers "timed out", which becomes
// sqljobber.ErrUnavailable (503 too), not an error of its own (500). Other
// failures stay failures.
func TestAStoppingNodesRepliesSayTryAgain(t *testing.T) {
	for _, tc := range []struct {
		err                   error
		stopping, unavailable bool
	}{
		{fmt.Errorf("admit job: %w", context.Canceled), false, true},
		{sqljobber.ErrStopping, true, false},
		{fmt.Errorf("admit job: %w", context.DeadlineExceeded), false, true},
		{errors.New("connection refused"), false, false},
	} {
		err := replyError(failed(tc.err), "job", sqljobber.ErrJobNotFound, "j")
		if err == nil {
			t.Fatalf("a grain's %q reaches its caller as no error", tc.err)
		}
		if got := errors.Is(err, sqljobber.ErrStopping); got != tc.stopping {
			t.Errorf("a grain's %q reaches its caller as %v; stopping %v, want %v", tc.err, err, got, tc.stopping)
		}
		if got := errors.Is(err, sqljobber.ErrUnavailable); got != tc.unavailable {
			t.Errorf("a grain's %q reaches its caller as %v; unavailable %v, want %v", tc.err, err, got, tc.unavailable)
		}
	}
}

package actors

import (
	"testing"
	"time"
)

// TestRetryBackoffDoublesWithJitterUpToItsMax: the wait before retry n is
// between half and all of the base doubled n-1 times, never over retryMax.
func TestRetryBackoffDoublesWithJitterUpToItsMax(t *testing.T) {
	e := &Engine{cfg: Config{RetryBackoff: time.Second}}
	for attempt := 1; attempt <= 40; attempt++ {
		full := min(time.Second<<min(attempt-1, 20), retryMax)
		lo, hi := full, time.Duration(0)
		for range 200 {
			d := e.backoff(attempt)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < full/2 || hi > full {
			t.Fatalf("attempt %d waits between %v and %v, want between %v and %v", attempt, lo, hi, full/2, full)
		}
		if attempt <= 3 && hi-lo < full/8 {
			t.Fatalf("attempt %d: no jitter (%v to %v)", attempt, lo, hi)
		}
	}
}

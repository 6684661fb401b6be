package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/retry"
)

func TestDoTriesUntilDone(t *testing.T) {
	tries := 0
	boom := errors.New("boom")
	err := retry.Do(context.Background(), retry.Backoff{First: time.Microsecond, Max: time.Millisecond}, func(context.Context) (bool, error) {
		tries++
		return tries == 4, boom
	})
	if !errors.Is(err, boom) || tries != 4 {
		t.Fatalf("after %d tries: %v; want 4 tries and the last try's error", tries, err)
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tries := 0
	err := retry.Do(ctx, retry.Backoff{First: time.Hour}, func(context.Context) (bool, error) {
		tries++
		cancel()
		return false, nil
	})
	if !errors.Is(err, context.Canceled) || tries != 1 {
		t.Fatalf("after %d tries: %v; want 1 try and the context's error", tries, err)
	}
}

func TestDoDoesNotTryAgainAfterTheContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tries := 0
	err := retry.Do(ctx, retry.Backoff{First: time.Microsecond}, func(context.Context) (bool, error) {
		tries++
		return false, nil
	})
	if !errors.Is(err, context.Canceled) || tries != 1 {
		t.Fatalf("after %d tries: %v; want the one try made before the wait", tries, err)
	}
}

func TestBackoffDoublesUpToItsMax(t *testing.T) {
	var waits []time.Duration
	last := time.Now()
	tries := 0
	_ = retry.Do(context.Background(), retry.Backoff{First: 2 * time.Millisecond, Max: 8 * time.Millisecond}, func(context.Context) (bool, error) {
		now := time.Now()
		if tries > 0 {
			waits = append(waits, now.Sub(last))
		}
		last = now
		tries++
		return tries == 5, nil
	})
	// At least the backoff each time (a busy machine may wait longer).
	for i, min := range []time.Duration{2, 4, 8, 8} {
		if waits[i] < min*time.Millisecond {
			t.Fatalf("wait %d was %v, want at least %v (waits %v)", i+1, waits[i], min*time.Millisecond, waits)
		}
	}
}

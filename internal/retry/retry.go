// Package retry tries an operation again, with backoff, until it is done or
// its context ends: the one loop behind every retry in sql-jobber (grain
// requests while the cluster changes, ledger writes while the database is
// away, locks another node holds).
package retry

import (
	"context"
	"time"
)

// Backoff is how long to wait between tries: First after the first try,
// doubled after each further one, up to Max. A zero Max means First every
// time.
type Backoff struct {
	First time.Duration
	Max   time.Duration
}

// next is the wait after wait.
func (b Backoff) next(wait time.Duration) time.Duration {
	return min(2*wait, max(b.Max, b.First))
}

// Do calls try until it reports done, waiting between tries as b says. It
// returns try's error once done, or ctx's error when ctx ends first
// (without calling try again after that).
func Do(ctx context.Context, b Backoff, try func(ctx context.Context) (done bool, err error)) error {
	wait := b.First
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		done, err := try(ctx)
		if done {
			return err
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			// A select picks at random among ready cases: a context
			// that ended while the timer fired ends the loop too.
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		wait = b.next(wait)
	}
}

// Package testwait is bounded polling for tests. A test that waits for
// something to happen (a job to finish, a member to join, a query to leave
// the server) asks again and again, with a short pause that grows between
// asks, until the answer is yes or a time limit passes; it never sleeps for
// a while and hopes, since no sleep is long enough on a busy machine and
// every sleep is too long on an idle one.
//
// The limit only bounds how long a failing test hangs: it is not a claim
// about speed, so make it generous (the tests must pass on a busy two-core
// machine). When it passes, the failure names what was awaited and the
// state last observed.
//
// It knows nothing of sql-jobber, and is for tests only.
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// The pause between two asks starts at firstPause and doubles up to
// maxPause: a quick answer is seen at once, a slow one is not asked for
// hundreds of times a second.
const (
	firstPause = 2 * time.Millisecond
	maxPause   = 50 * time.Millisecond
)

// For asks cond until it answers ok. If within passes first, it fails tb
// (tb.Fatal) with what was awaited and the state cond last reported. Call
// it from the test's goroutine, as tb.Fatal must be; cond may fail tb too.
func For(tb testing.TB, within time.Duration, what string, cond func() (ok bool, state string)) {
	tb.Helper()
	if err := Until(within, what, cond); err != nil {
		tb.Fatal(err)
	}
}

// Until is For for code that has no testing.TB or must not stop its
// goroutine (an Example, TestMain, a goroutine a test started): it returns
// nil once cond answers ok, or, once within has passed, an error naming
// what was awaited and the state cond last reported.
func Until(within time.Duration, what string, cond func() (ok bool, state string)) error {
	deadline := time.Now().Add(within)
	pause := firstPause
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			if state == "" {
				return fmt.Errorf("waited %v for %s", within, what)
			}
			return fmt.Errorf("waited %v for %s; last seen: %s", within, what, state)
		}
		// The last ask is made at the deadline, not a pause after it.
		time.Sleep(min(pause, left))
		pause = min(2*pause, maxPause)
	}
}

package testwait_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// fakeTB records what For fails a test with.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	tb := &fakeTB{TB: t}
	asks := 0
	testwait.For(tb, time.Minute, "the fifth ask", func() (bool, string) {
		asks++
		return asks == 5, fmt.Sprintf("ask %d", asks)
	})
	if tb.fatal != "" || asks != 5 {
		t.Fatalf("asked %d times, failed with %q; want 5 asks and no failure", asks, tb.fatal)
	}
}

func TestForFailsNamingWhatAndTheLastState(t *testing.T) {
	tb := &fakeTB{TB: t}
	asks := 0
	begin := time.Now()
	var last time.Time
	testwait.For(tb, 300*time.Millisecond, "the answer", func() (bool, string) {
		asks++
		last = time.Now()
		return false, fmt.Sprintf("ask %d", asks)
	})
	want := fmt.Sprintf("waited 300ms for the answer; last seen: ask %d", asks)
	if tb.fatal != want {
		t.Fatalf("failed with %q, want %q", tb.fatal, want)
	}
	// The last ask is at the limit, and the pause grows: a poll every
	// millisecond would have asked some 300 times.
	if last.Before(begin.Add(300*time.Millisecond)) || asks < 2 || asks > 30 {
		t.Fatalf("%d asks, the last %v after the start", asks, last.Sub(begin))
	}
}

func TestUntilAsksOnceEvenWithNoTimeLeft(t *testing.T) {
	if err := testwait.Until(0, "a condition that holds", func() (bool, string) { return true, "" }); err != nil {
		t.Fatal(err)
	}
	err := testwait.Until(0, "a condition that never holds", func() (bool, string) { return false, "" })
	if err == nil || err.Error() != "waited 0s for a condition that never holds" {
		t.Fatalf("err %v", err)
	}
}

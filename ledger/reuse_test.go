package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
)

func TestFingerprintTellsComputationsApart(t *testing.T) {
	base := ledger.Computation{Owner: "alice", Task: "t", SQL: "SELECT ?", Args: `["1"]`, DB: "", ResultsBackend: "r"}
	fp := ledger.Fingerprint(base)
	if len(fp) != 64 || fp != ledger.Fingerprint(base) {
		t.Fatalf("fingerprint %q is not a stable SHA-256", fp)
	}
	for name, c := range map[string]ledger.Computation{
		"owner":   {Owner: "bob", Task: "t", SQL: "SELECT ?", Args: `["1"]`, ResultsBackend: "r"},
		"task":    {Owner: "alice", Task: "u", SQL: "SELECT ?", Args: `["1"]`, ResultsBackend: "r"},
		"sql":     {Owner: "alice", Task: "t", SQL: "SELECT ? ", Args: `["1"]`, ResultsBackend: "r"},
		"args":    {Owner: "alice", Task: "t", SQL: "SELECT ?", Args: `[1]`, ResultsBackend: "r"},
		"db":      {Owner: "alice", Task: "t", SQL: "SELECT ?", Args: `["1"]`, DB: "db0", ResultsBackend: "r"},
		"backend": {Owner: "alice", Task: "t", SQL: "SELECT ?", Args: `["1"]`, ResultsBackend: "s"},
		// Fields that run together into the same bytes.
		"shifted": {Owner: "alicet", Task: "", SQL: "SELECT ?", Args: `["1"]`, ResultsBackend: "r"},
	} {
		if ledger.Fingerprint(c) == fp {
			t.Errorf("another %s, the same fingerprint", name)
		}
	}
}

// succeed runs a job of owner and fingerprint fp to success, with count
// rows and ttl.
func succeed(t *testing.T, l *env, id, owner, fp string, ttl time.Duration) *ledger.Job {
	t.Helper()
	ctx := context.Background()
	mustAdmit(t, l, ledger.Job{Job: sqljobber.Job{ID: id, Task: "t", Queue: "q", Owner: owner, TTL: ttl,
		ResultsBackend: "r", ResultsTable: "results_" + id}, Fingerprint: fp})
	j := mustClaim(t, l)
	if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateSuccess, Count: 42, TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	j, err := l.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestLedgerFindsResultsToReuse: only a job of the same owner, task and
// fingerprint that succeeded by running within the age, and whose results
// have not expired, is found; the newest of them.
func TestLedgerFindsResultsToReuse(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		reusable := func(owner string, age time.Duration, fps ...string) string {
			t.Helper()
			j, err := l.Reusable(ctx, owner, "t", "x", fps, age)
			if errors.Is(err, sqljobber.ErrJobNotFound) {
				return ""
			}
			if err != nil {
				t.Fatal(err)
			}
			return j.ID
		}
		if got := reusable("alice", time.Hour, "fp"); got != "" {
			t.Fatalf("an empty ledger gave %q", got)
		}
		succeed(t, l, "old", "alice", "fp", 0)
		l.clock.Advance(time.Minute)
		src := succeed(t, l, "new", "alice", "fp", 10*time.Minute)
		succeed(t, l, "bobs", "bob", "fp", 0)
		// A job that failed, and one that is still running, answer nothing.
		mustAdmit(t, l, ledger.Job{Job: sqljobber.Job{ID: "failed", Task: "t", Queue: "q", Owner: "carol"}, Fingerprint: "fp"})
		j := mustClaim(t, l)
		if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateFailure, Error: "boom"}); err != nil {
			t.Fatal(err)
		}
		mustAdmit(t, l, ledger.Job{Job: sqljobber.Job{ID: "running", Task: "t", Queue: "q", Owner: "dave"}, Fingerprint: "fp"})
		mustClaim(t, l)

		for _, tc := range []struct {
			owner string
			age   time.Duration
			fps   []string
			want  string
		}{
			{"alice", time.Hour, []string{"fp"}, "new"},
			{"alice", time.Hour, []string{"other", "fp"}, "new"},
			{"alice", time.Hour, []string{"other"}, ""},
			{"alice", time.Hour, nil, ""},
			{"alice", 0, []string{"fp"}, ""},
			{"bob", time.Hour, []string{"fp"}, "bobs"},
			{"carol", time.Hour, []string{"fp"}, ""},
			{"dave", time.Hour, []string{"fp"}, ""},
			{"", time.Hour, []string{"fp"}, ""},
		} {
			if got := reusable(tc.owner, tc.age, tc.fps...); got != tc.want {
				t.Errorf("%s, %v, %v: found %q, want %q", tc.owner, tc.age, tc.fps, got, tc.want)
			}
		}
		if j, err := l.Reusable(ctx, "alice", "t", "new", []string{"fp"}, time.Hour); err != nil || j.ID != "old" {
			t.Fatalf("the new job's own ID: %+v, %v; want the older job", j, err)
		}
		if _, err := l.Reusable(ctx, "alice", "another task", "x", []string{"fp"}, time.Hour); !errors.Is(err, sqljobber.ErrJobNotFound) {
			t.Fatalf("another task: %v", err)
		}

		// A reusing job is recorded finished, with its source's results,
		// and expires no later than they do.
		reused, err := l.AdmitReused(ctx, ledger.Job{Job: sqljobber.Job{ID: "copy", Task: "t", Queue: "q", Owner: "alice",
			TTL: time.Hour, ResultsBackend: "r", ResultsTable: "results_copy"}, Fingerprint: "fp"}, src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Get(ctx, "copy")
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range []*ledger.Job{reused, got} {
			if j.State != sqljobber.StateSuccess || j.ReusedFrom != "new" || j.Count != 42 || j.ResultsTable != "results_new" ||
				j.RunID != src.RunID || !j.ExpiresAt.Equal(src.ExpiresAt) || j.FinishedAt.IsZero() || j.Attempt != 0 {
				t.Fatalf("reusing job %+v; source %+v", j, src)
			}
		}
		// Not a source itself: its table is its source's.
		l.clock.Advance(time.Minute)
		mustDelete(t, l, src)
		if got := reusable("alice", time.Hour, "fp"); got != "old" {
			t.Fatalf("with the source purged, found %q, want the older job", got)
		}
		// Older than the age asks.
		if got := reusable("alice", time.Minute, "fp"); got != "" {
			t.Fatalf("found %q older than the age", got)
		}
		// A job that outlived its TTL answers nothing, even before expiry
		// removes it.
		short := succeed(t, l, "short", "erin", "fp", time.Minute)
		if got := reusable("erin", time.Hour, "fp"); got != "short" {
			t.Fatalf("found %q", got)
		}
		l.clock.Advance(time.Minute)
		if got := reusable("erin", time.Hour, "fp"); got != "" {
			t.Fatalf("found %q, whose results expired at %v", got, short.ExpiresAt)
		}
	})
}

// TestLedgerReusingJobHoldsItsID: a reusing job is admitted as any other: an
// unfinished job of its ID refuses it, another owner's finished one too.
func TestLedgerReusingJobHoldsItsID(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		src := succeed(t, l, "src", "alice", "fp", 0)
		mustAdmit(t, l, jb(sqljobber.Job{ID: "busy", Task: "t", Queue: "q", Owner: "alice"}))
		var active *sqljobber.ActiveError
		if _, err := l.AdmitReused(ctx, jb(sqljobber.Job{ID: "busy", Task: "t", Queue: "q", Owner: "alice"}), src); !errors.As(err, &active) {
			t.Fatalf("reuse onto a pending ID: %v", err)
		}
		var taken *sqljobber.TakenError
		if _, err := l.AdmitReused(ctx, jb(sqljobber.Job{ID: "src", Task: "t", Queue: "q", Owner: "bob"}), src); !errors.As(err, &taken) {
			t.Fatalf("reuse onto another owner's ID: %v", err)
		}
		// With no TTL of its own, it expires with its source (here: never).
		j, err := l.AdmitReused(ctx, jb(sqljobber.Job{ID: "keep", Task: "t", Queue: "q", Owner: "alice"}), src)
		if err != nil || !j.ExpiresAt.IsZero() {
			t.Fatalf("%+v, %v", j, err)
		}
	})
}

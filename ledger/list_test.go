package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// listAll pages through the listing f selects, pages of limit, and
// returns the IDs in the order listed.
func listAll(t *testing.T, l *env, f sqljobber.JobFilter, owner *string) []string {
	t.Helper()
	var out []string
	for range 100 {
		var (
			jobs []*ledger.Job
			next string
			err  error
		)
		if owner != nil {
			jobs, next, err = l.ListOf(context.Background(), f, *owner)
		} else {
			jobs, next, err = l.List(context.Background(), f)
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Limit > 0 && len(jobs) > f.Limit {
			t.Fatalf("a page of %d jobs for limit %d", len(jobs), f.Limit)
		}
		out = append(out, ids(jobs)...)
		if next == "" {
			return out
		}
		f.Cursor = next
	}
	t.Fatal("the listing does not end")
	return nil
}

// TestLedgerListsJobsNewestFirstInPages: jobs are listed newest first,
// those created at the same moment by ID (descending), and paging through
// a listing with its cursors gives each job once, whatever the page size,
// even while jobs are admitted meanwhile.
func TestLedgerListsJobsNewestFirstInPages(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		// Three jobs per moment, so that pages end inside a moment.
		var want []string
		for i := range 7 {
			for _, s := range []string{"a", "c", "b"} {
				mustAdmit(t, l, jb(sqljobber.Job{ID: fmt.Sprintf("j%d%s", i, s), Task: "t", Queue: "q"}))
			}
			want = append([]string{fmt.Sprintf("j%dc", i), fmt.Sprintf("j%db", i), fmt.Sprintf("j%da", i)}, want...)
			l.clock.Advance(time.Second)
		}
		for _, limit := range []int{1, 2, 3, 4, 21, 1000} {
			if got := listAll(t, l, sqljobber.JobFilter{Limit: limit}, nil); !slices.Equal(got, want) {
				t.Fatalf("limit %d: %v\nwant %v", limit, got, want)
			}
		}
		// A job admitted between pages is newer than the cursor: the
		// rest of the listing is the same.
		first, next, err := l.List(context.Background(), sqljobber.JobFilter{Limit: 5})
		if err != nil || next == "" {
			t.Fatal(next, err)
		}
		mustAdmit(t, l, jb(sqljobber.Job{ID: "later", Task: "t", Queue: "q"}))
		rest := listAll(t, l, sqljobber.JobFilter{Limit: 5, Cursor: next}, nil)
		if got := append(ids(first), rest...); !slices.Equal(got, want) {
			t.Fatalf("with a job admitted between pages: %v", got)
		}
		if got, _, err := l.List(context.Background(), sqljobber.JobFilter{}); err != nil || len(got) != 22 || got[0].ID != "later" {
			t.Fatalf("the default page: %d jobs, %v", len(got), err)
		}
	})
}

// TestLedgerListFilters: each filter selects only its jobs, and they
// combine.
func TestLedgerListFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		start := l.clock.Now()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "p1", Task: "t", Queue: "q"}))
		l.clock.Advance(time.Minute)
		mustAdmit(t, l, jb(sqljobber.Job{ID: "r1", Task: "t", Queue: "q"}))
		if j, err := claimOne(l, "q", "n1", time.Minute); err != nil || j.ID != "p1" {
			t.Fatal(j, err)
		}
		l.clock.Advance(time.Minute)
		mustAdmit(t, l, jb(sqljobber.Job{ID: "o1", Task: "u", Queue: "other"}))
		if _, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Concurrency: 1, JobIDs: []string{"g1"}},
			[]ledger.Job{jb(sqljobber.Job{ID: "g1", Task: "u", Queue: "other", GroupID: "g"})}); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]struct {
			f    sqljobber.JobFilter
			want []string
		}{
			"none":                {sqljobber.JobFilter{}, []string{"o1", "g1", "r1", "p1"}},
			"state":               {sqljobber.JobFilter{States: []sqljobber.State{sqljobber.StateStarted}}, []string{"p1"}},
			"states":              {sqljobber.JobFilter{States: []sqljobber.State{sqljobber.StateStarted, sqljobber.StatePending}}, []string{"o1", "g1", "r1", "p1"}},
			"no such state":       {sqljobber.JobFilter{States: []sqljobber.State{sqljobber.StateSuccess}}, []string{}},
			"queue":               {sqljobber.JobFilter{Queue: "q"}, []string{"r1", "p1"}},
			"task":                {sqljobber.JobFilter{Task: "u"}, []string{"o1", "g1"}},
			"group":               {sqljobber.JobFilter{GroupID: "g"}, []string{"g1"}},
			"node":                {sqljobber.JobFilter{Node: "n1"}, []string{"p1"}},
			"created after":       {sqljobber.JobFilter{CreatedAfter: start.Add(time.Minute)}, []string{"o1", "g1", "r1"}},
			"created before":      {sqljobber.JobFilter{CreatedBefore: start.Add(time.Minute)}, []string{"p1"}},
			"created between":     {sqljobber.JobFilter{CreatedAfter: start.Add(time.Second), CreatedBefore: start.Add(90 * time.Second)}, []string{"r1"}},
			"queue and state":     {sqljobber.JobFilter{Queue: "q", States: []sqljobber.State{sqljobber.StatePending}}, []string{"r1"}},
			"injection as values": {sqljobber.JobFilter{Queue: "q' OR '1'='1", Task: `t"; DROP TABLE sqljobber_jobs; --`}, []string{}},
		} {
			f := c.f
			f.Limit = 1
			if got := listAll(t, l, f, nil); !slices.Equal(got, c.want) {
				t.Errorf("%s: %v, want %v", name, got, c.want)
			}
		}
	})
}

// TestLedgerListOfShowsOnlyTheOwnersJobs: an owner's listing holds its jobs
// alone, and a cursor of one listing does not serve another.
func TestLedgerListOfShowsOnlyTheOwnersJobs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for i, owner := range []string{"alice", "bob", "alice", "", "alice"} {
			mustAdmit(t, l, jb(sqljobber.Job{ID: fmt.Sprintf("j%d", i), Task: "t", Queue: "q", Owner: owner}))
			l.clock.Advance(time.Second)
		}
		alice := "alice"
		if got := listAll(t, l, sqljobber.JobFilter{Limit: 1}, &alice); !slices.Equal(got, []string{"j4", "j2", "j0"}) {
			t.Fatalf("alice's jobs: %v", got)
		}
		_, next, err := l.ListOf(ctx, sqljobber.JobFilter{Limit: 1}, alice)
		if err != nil || next == "" {
			t.Fatal(next, err)
		}
		var invalid *sqljobber.InvalidError
		if _, _, err := l.ListOf(ctx, sqljobber.JobFilter{Limit: 1, Cursor: next}, "bob"); !errors.As(err, &invalid) || invalid.Field != "cursor" {
			t.Fatalf("alice's cursor in bob's listing: %v", err)
		}
		if _, _, err := l.ListOf(ctx, sqljobber.JobFilter{Limit: 1, Cursor: next, Queue: "q"}, alice); !errors.As(err, &invalid) || invalid.Field != "cursor" {
			t.Fatalf("a cursor with other filters: %v", err)
		}
		if got := listAll(t, l, sqljobber.JobFilter{Limit: 2}, nil); len(got) != 5 {
			t.Fatalf("every owner's jobs: %v", got)
		}
	})
}

// TestLedgerListRefusesTamperedCursors: a cursor the ledger did not make,
// or one changed by a byte, is refused naming the cursor, never read as a
// place in the listing.
func TestLedgerListRefusesTamperedCursors(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		for i := range 3 {
			mustAdmit(t, l, jb(sqljobber.Job{ID: fmt.Sprintf("j%d", i), Task: "t", Queue: "q"}))
		}
		_, next, err := l.List(ctx, sqljobber.JobFilter{Limit: 1})
		if err != nil || next == "" {
			t.Fatal(next, err)
		}
		payload, mac, _ := strings.Cut(next, ".")
		flipped := []byte(payload)
		flipped[3] ^= 1
		for _, c := range []string{"x", ".", next + "x", string(flipped) + "." + mac, payload, payload + "." + payload,
			"\x00", strings.Repeat("a", 5000), "eyJ0IjowLCJpIjoieCIsImYiOiIifQ." + mac, "' OR 1=1 --"} {
			var invalid *sqljobber.InvalidError
			if _, _, err := l.List(ctx, sqljobber.JobFilter{Limit: 1, Cursor: c}); !errors.As(err, &invalid) || invalid.Field != "cursor" {
				t.Errorf("cursor %.40q: %v", c, err)
			}
		}
		for _, limit := range []int{-1, sqljobber.JobListLimitMax + 1} {
			var invalid *sqljobber.InvalidError
			if _, _, err := l.List(ctx, sqljobber.JobFilter{Limit: limit}); !errors.As(err, &invalid) || invalid.Field != "limit" {
				t.Errorf("limit %d: %v", limit, err)
			}
		}
		// A cursor is the ledger's, not the node's: another node of the
		// same ledger reads it.
		other, err := ledger.New(l.db, nil, ledger.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if jobs, _, err := other.List(ctx, sqljobber.JobFilter{Limit: 1, Cursor: next}); err != nil || len(jobs) != 1 || jobs[0].ID != "j1" {
			t.Fatalf("another node's page: %v, %v", jobs, err)
		}
	})
}

// TestLedgerQueueCounts: per queue, the waiting jobs (and since when the
// oldest ready one waits), the running ones, and those finished in the
// window asked, by state; an owner's counts are of its jobs alone.
func TestLedgerQueueCounts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		t0 := l.clock.Now()
		// Finished two hours ago: not counted.
		finishOwned(t, l, "old", "alice")
		l.clock.Advance(2 * time.Hour)
		finishOwned(t, l, "ok", "alice")
		mustAdmit(t, l, jb(sqljobber.Job{ID: "failing", Task: "t", Queue: "q", Owner: "bob"}))
		j := mustClaim(t, l)
		if _, err := l.Finish(ctx, j.ID, j.RunID, ledger.Outcome{State: sqljobber.StateFailure, Error: "x"}); err != nil {
			t.Fatal(err)
		}
		readyAt := l.clock.Now()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "running", Task: "t", Queue: "q", Owner: "alice"}))
		mustClaim(t, l)
		mustAdmit(t, l, jb(sqljobber.Job{ID: "ready", Task: "t", Queue: "q", Owner: "bob"}))
		l.clock.Advance(time.Minute)
		mustAdmit(t, l, jb(sqljobber.Job{ID: "ready2", Task: "t", Queue: "q", Owner: "alice"}))
		mustAdmit(t, l, jb(sqljobber.Job{ID: "later", Task: "t", Queue: "q", ETA: l.clock.Now().Add(time.Hour)}))
		mustAdmit(t, l, jb(sqljobber.Job{ID: "elsewhere", Task: "t", Queue: "other", Owner: "alice"}))
		now := l.clock.Now()

		all, err := l.QueueCounts(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		q := all["q"]
		if len(all) != 2 || q == nil || q.Pending != 3 || q.Running != 1 || !q.OldestReady.Equal(readyAt) ||
			q.Finished[sqljobber.StateSuccess] != 1 || q.Finished[sqljobber.StateFailure] != 1 || len(q.Finished) != 2 {
			t.Fatalf("every owner's: %+v (oldest ready %v, want %v; start %v)", q, q.OldestReady, readyAt, t0)
		}
		if o := all["other"]; o.Pending != 1 || o.Running != 0 || !o.OldestReady.Equal(now) {
			t.Fatalf("queue other: %+v", o)
		}
		mine, err := l.QueueCountsOf(ctx, time.Hour, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if q := mine["q"]; q.Pending != 1 || q.Running != 1 || q.Finished[sqljobber.StateSuccess] != 1 || q.Finished[sqljobber.StateFailure] != 0 ||
			!q.OldestReady.Equal(readyAt.Add(time.Minute)) {
			t.Fatalf("alice's: %+v", q)
		}
		none, err := l.QueueCountsOf(ctx, time.Hour, "carol")
		if err != nil || len(none) != 0 {
			t.Fatalf("carol's: %v, %v", none, err)
		}
	})
}

// TestLedgerPendingByQueue: per queue, the jobs not started, and since when
// the oldest that could start now has waited: not a running job, nor one
// whose ETA is to come or whose group holds it.
func TestLedgerPendingByQueue(t *testing.T) {
	forEachDialect(t, func(t *testing.T, l *env) {
		ctx := context.Background()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "running", Task: "t", Queue: "q"}))
		mustClaim(t, l)
		l.clock.Advance(time.Minute)
		readyAt := l.clock.Now()
		mustAdmit(t, l, jb(sqljobber.Job{ID: "ready", Task: "t", Queue: "q"}))
		l.clock.Advance(time.Minute)
		mustAdmit(t, l, jb(sqljobber.Job{ID: "ready2", Task: "t", Queue: "q"}))
		mustAdmit(t, l, jb(sqljobber.Job{ID: "later", Task: "t", Queue: "q", ETA: l.clock.Now().Add(time.Hour)}))
		mustAdmit(t, l, jb(sqljobber.Job{ID: "someday", Task: "t", Queue: "waits", ETA: l.clock.Now().Add(time.Hour)}))
		mustAdmit(t, l, heldJob(sqljobber.Job{ID: "held", Task: "t", Queue: "waits"}))

		got, err := l.PendingByQueue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if q := got["q"]; len(got) != 2 || q.Pending != 3 || !q.OldestReady.Equal(readyAt) {
			t.Fatalf("queue q: %+v (oldest ready want %v); all: %+v", q, readyAt, got)
		}
		if w := got["waits"]; w.Pending != 2 || !w.OldestReady.IsZero() {
			t.Fatalf("queue waits, where nothing could start: %+v", w)
		}
	})
}

// TestLedgerListingReadsItsIndexes: the ledger keeps finished jobs by the
// million; a page of the listing, with or without an owner, must read the
// listing's index from the cursor on, and the queues' summary must read
// the partial indexes, not scan the table.
func TestLedgerListingReadsItsIndexes(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := openLedger(t, d, ledger.Config{})
			for i := range 300 {
				mustAdmit(t, l, jb(sqljobber.Job{ID: fmt.Sprintf("done-%d", i), Task: "t", Queue: "q", Owner: fmt.Sprintf("o%d", i%10)}))
			}
			sqlexectest.Exec(t, l.db, "UPDATE sqljobber_jobs SET state = 'SUCCESS'")
			copyJobs(t, l.db, 30, "state")
			sqlexectest.Exec(t, l.db, "ANALYZE")
			plans, err := ledger.ListPlans(ctx, l.Ledger)
			if err != nil {
				t.Fatal(err)
			}
			for name, indexes := range map[string][]string{
				"all":    {"sqljobber_jobs_created"},
				"owner":  {"sqljobber_jobs_owned"},
				"queues": {"sqljobber_jobs_pending", "sqljobber_jobs_running", "sqljobber_jobs_finished"},
			} {
				for _, index := range indexes {
					if !strings.Contains(plans[name], index) {
						t.Errorf("the %s query does not read %s:\n%s", name, index, plans[name])
					}
				}
			}
		})
	}
}

package resultsink_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// TestSmallPublicationsTogether: one-row results that finish at the same
// moment, with the ledger in their database, are published together (in
// one transaction), and each still holds alone: a run that lost its job
// publishes nothing and records nothing, a name a user's table holds is
// refused, and neither stops the others, each of which has its table, its
// row and its SUCCESS.
func TestSmallPublicationsTogether(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, sqlexec.Postgres)
	l := ledgerHere(t, b)
	// Claims n new jobs and publishes their results all at once.
	round := 0
	publishAll := func(n int, before func()) ([]*ledger.Job, []bool, []error) {
		round++
		for i := range n {
			if _, err := l.Admit(ctx, ledger.Job{Job: sqljobber.Job{ID: fmt.Sprintf("r%dg%d", round, i), Task: "t", Queue: "q"}}); err != nil {
				t.Fatal(err)
			}
		}
		jobs, err := l.Claim(ctx, "q", ledger.Node{Name: "n", ID: "n-1"}, n, time.Minute)
		if err != nil || len(jobs) != n {
			t.Fatalf("claim: %d jobs, %v", len(jobs), err)
		}
		before()
		errs := make([]error, n)
		recorded := make([]bool, n)
		var start, done sync.WaitGroup
		start.Add(1)
		for i, j := range jobs {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				_, recorded[i], errs[i] = b.Write(ctx, "results_"+j.ID, j.RunID, &seqRows{n: 1}, resultsink.Fence{Token: j.Fence, Owner: l.Run(j)})
			}()
		}
		start.Done()
		done.Wait()
		return jobs, recorded, errs
	}

	// All of them may publish: some go together.
	jobs, recorded, errs := publishAll(24, func() {})
	for i, j := range jobs {
		if rows, err := countRows(ctx, b.DB(), "results_"+j.ID); errs[i] != nil || !recorded[i] || err != nil || rows != 1 {
			t.Errorf("%s: %v (recorded %v), %d rows (%v)", j.ID, errs[i], recorded[i], rows, err)
		}
	}
	if resultsink.PublishedTogether(b) == 0 {
		t.Error("no two of the publications went together")
	}

	// Some may not: those alone fail.
	lost := map[string]bool{"r2g3": true, "r2g7": true}
	jobs, recorded, errs = publishAll(12, func() {
		for id := range lost {
			if _, err := l.Cancel(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		// A user's table, not sql-jobber's, under a job's name.
		if _, err := b.DB().Postgres().Exec(ctx, `CREATE TABLE "results_r2g9" (mine TEXT); INSERT INTO "results_r2g9" VALUES ('keep')`); err != nil {
			t.Fatal(err)
		}
	})
	for i, j := range jobs {
		rows, cerr := countRows(ctx, b.DB(), "results_"+j.ID)
		cur, gerr := l.Get(ctx, j.ID)
		if gerr != nil {
			t.Fatal(gerr)
		}
		switch {
		case j.Fence != 1:
			t.Fatalf("%s: fence %d, want a first run", j.ID, j.Fence)
		case lost[j.ID]:
			if !errors.Is(errs[i], resultsink.ErrFenced) || cerr == nil || cur.State != sqljobber.StateCancelled {
				t.Errorf("%s, whose run lost it: %v, table read %v, state %s", j.ID, errs[i], cerr, cur.State)
			}
		case j.ID == "r2g9":
			var mine string
			if err := b.DB().Postgres().QueryRow(ctx, `SELECT mine FROM "results_r2g9"`).Scan(&mine); errs[i] == nil || err != nil || mine != "keep" ||
				cur.State != sqljobber.StateStarted {
				t.Errorf("r2g9, over a user's table: %v; the table: %q %v; state %s", errs[i], mine, err, cur.State)
			}
		default:
			if errs[i] != nil || !recorded[i] || cerr != nil || rows != 1 || cur.State != sqljobber.StateSuccess || cur.Count != 1 {
				t.Errorf("%s: %v (recorded %v), %d rows (%v), state %s count %d", j.ID, errs[i], recorded[i], rows, cerr, cur.State, cur.Count)
			}
		}
	}
}

// TestPostgresPublicationsArePrepared: the ledger's statements in a
// publication (the job's SUCCESS) are prepared once per connection and
// reused, not parsed and planned for every job: each connection that
// published holds the one prepared SUCCESS, executed once a publication.
func TestPostgresPublicationsArePrepared(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, sqlexec.Postgres)
	l := ledgerHere(t, b)
	const n = 8
	for i := range n {
		id := fmt.Sprintf("prep%d", i)
		if _, err := l.Admit(ctx, ledger.Job{Job: sqljobber.Job{ID: id, Task: "t", Queue: "q"}}); err != nil {
			t.Fatal(err)
		}
		jobs, err := l.Claim(ctx, "q", ledger.Node{Name: "n", ID: "n-1"}, 1, time.Minute)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("claim: %v %v", jobs, err)
		}
		if _, recorded, err := b.Write(ctx, "results_"+id, jobs[0].RunID, &seqRows{n: 1}, resultsink.Fence{Token: jobs[0].Fence, Owner: l.Run(jobs[0])}); err != nil || !recorded {
			t.Fatalf("publication %d: recorded %v, %v", i, recorded, err)
		}
	}
	conns := b.DB().Postgres().AcquireAllIdle(ctx)
	executed := int64(0)
	for _, c := range conns {
		var prepared, runs int64
		err := c.QueryRow(ctx, `SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements
			WHERE statement LIKE '%SET state = ''SUCCESS''%'`).Scan(&prepared, &runs)
		c.Release()
		if err != nil {
			t.Fatal(err)
		}
		if prepared > 1 {
			t.Errorf("a connection holds %d prepared SUCCESS statements, want at most 1", prepared)
		}
		executed += runs
	}
	if executed != n {
		t.Errorf("the prepared SUCCESS ran %d times on the pool's connections, want %d (one a publication)", executed, n)
	}
}

// ledgerHere is a ledger in b's database, as a publication finds it when the
// ledger shares the results database.
func ledgerHere(t *testing.T, b *resultsink.Backend) *ledger.Ledger {
	t.Helper()
	l, err := ledger.New(b.DB(), b.Durable(), ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

package resultsink_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestSmallResultsPublishedAtOnce: many runs publishing small results at
// the same moment, with the ledger in the results database (on MySQL their
// fence records go in together), each publish their own table whole; a run
// that lost its job meanwhile publishes nothing and is told so; a name that
// an earlier run of its job published is replaced; the others are not held
// up by either.
func TestSmallResultsPublishedAtOnce(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		ctx := context.Background()
		b := openBackend(t, d)
		l, err := ledger.New(b.DB(), b.Durable(), ledger.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		if err := l.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		const n = 16
		for i := range n {
			if _, err := l.Admit(ctx, ledger.Job{Job: sqljobber.Job{ID: fmt.Sprintf("s%02d", i), Task: "t", Queue: "q"}}); err != nil {
				t.Fatal(err)
			}
		}
		jobs, err := l.Claim(ctx, "q", ledger.Node{Name: "n", ID: "n-1"}, n, time.Minute)
		if err != nil || len(jobs) != n {
			t.Fatalf("claim: %d jobs, %v", len(jobs), err)
		}
		// s03's run loses its job; s10's name was published by an
		// earlier run of its job (token 0 is below any run's). They
		// publish in two waves, so that one is in each.
		if _, err := l.Cancel(ctx, "s03"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Write(ctx, "results_s10", "earlier", &seqRows{n: 5}, resultsink.Fence{Token: 0}); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, n)
		for _, wave := range [][]*ledger.Job{jobs[:n/2], jobs[n/2:]} {
			var wg sync.WaitGroup
			for _, j := range wave {
				i := slices.Index(jobs, j)
				wg.Go(func() {
					_, _, errs[i] = b.Write(ctx, "results_"+j.ID, j.RunID, &seqRows{n: i%3 + 1}, resultsink.Fence{Token: j.Fence, Owner: l.Run(j)})
				})
			}
			wg.Wait()
		}
		for i, j := range jobs {
			got, cerr := countRows(ctx, b.DB(), "results_"+j.ID)
			if j.ID == "s03" {
				if !errors.Is(errs[i], resultsink.ErrFenced) || cerr == nil {
					t.Errorf("s03 lost its job: publication %v, table there: %v", errs[i], cerr == nil)
				}
				continue
			}
			if errs[i] != nil || cerr != nil || got != int64(i%3+1) {
				t.Errorf("%s: publication %v; table of %d rows (%v), want %d", j.ID, errs[i], got, cerr, i%3+1)
			}
		}
	})
}

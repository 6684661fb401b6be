package resultsink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

var fenceTokens atomic.Int64

// nextFence is a fence for a test's publication, later than every earlier
// one.
func nextFence() resultsink.Fence { return resultsink.Fence{Token: fenceTokens.Add(1)} }

// seqRows yields n rows (i, "row i") without a database: the input of a
// sink test.
type seqRows struct {
	n, i int
	vals []any
	err  error // returned by Err after the rows, if set
}

func (r *seqRows) Columns() []sqlexec.Column {
	return []sqlexec.Column{{Name: "id", Type: sqlexec.TypeInt64}, {Name: "label", Type: sqlexec.TypeText}}
}

func (r *seqRows) Next() bool {
	if r.i >= r.n {
		return false
	}
	r.i++
	r.vals = []any{int64(r.i), fmt.Sprintf("row %d", r.i)}
	return true
}

func (r *seqRows) Values() []any { return r.vals }
func (r *seqRows) Err() error    { return r.err }
func (r *seqRows) Close() error  { return nil }

func countRows(ctx context.Context, db *sqlexec.DB, table string) (int64, error) {
	var n int64
	q := fmt.Sprintf(`SELECT COUNT(*) FROM "%s"`, table)
	if db.Dialect == sqlexec.MySQL {
		q = fmt.Sprintf("SELECT COUNT(*) FROM `%s`", table)
	}
	if p := db.Postgres(); p != nil {
		return n, p.QueryRow(ctx, q).Scan(&n)
	}
	return n, db.SQL().QueryRowContext(ctx, q).Scan(&n)
}

func stagingTables(t *testing.T, db *sqlexec.DB) int64 {
	t.Helper()
	var q string
	switch db.Dialect {
	case sqlexec.Postgres:
		q = `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'sqljobber\_stage%'`
	case sqlexec.MySQL:
		q = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'sqljobber\_stage%'`
	default:
		q = `SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'sqljobber\_stage%' ESCAPE '\'`
	}
	n, err := func() (n int64, err error) {
		if p := db.Postgres(); p != nil {
			return n, p.QueryRow(context.Background(), q).Scan(&n)
		}
		return n, db.SQL().QueryRow(q).Scan(&n)
	}()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// renamedRows are seqRows whose columns have other names.
type renamedRows struct {
	seqRows
	names []string
}

func (r *renamedRows) Columns() []sqlexec.Column {
	cols := r.seqRows.Columns()
	for i := range cols {
		cols[i].Name = r.names[i]
	}
	return cols
}

// TestRowNumbersAreTheLastColumn: a source column may not take the row
// number's name; it gets a suffix like any other clash.
func TestRowNumbersAreTheLastColumn(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		b := openBackend(t, d)
		rows := &renamedRows{seqRows: seqRows{n: 3}, names: []string{"_ROW", "_row_2"}}
		if _, _, err := b.Write(context.Background(), "results_numbered", resultsinktest.NewVersion(), rows, nextFence()); err != nil {
			t.Fatal(err)
		}
		got, cols := readTable(t, b, "results_numbered")
		var names []string
		for _, c := range cols {
			names = append(names, c.Name)
		}
		if strings.Join(names, " ") != "_ROW_2 _row_2_2 _row" {
			t.Fatalf("columns %v", names)
		}
		if fmt.Sprint(got) != "[[1 row 1 1] [2 row 2 2] [3 row 3 3]]" {
			t.Fatalf("rows %v", got)
		}
	})
}

// TestPublishIsAtomic re-runs one job's table while readers count its rows:
// once it exists, every reader sees it whole.
func TestPublishIsAtomic(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := openBackend(t, d)
			const rows, runs = 3000, 12
			if _, _, err := b.Write(ctx, "results_atomic", resultsinktest.NewVersion(), &seqRows{n: rows}, nextFence()); err != nil {
				t.Fatal(err)
			}

			var (
				done   atomic.Bool
				reads  atomic.Int64
				wg     sync.WaitGroup
				mu     sync.Mutex
				faults []string
			)
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !done.Load() {
						n, err := countRows(ctx, b.DB(), "results_atomic")
						reads.Add(1)
						if err != nil || n != rows {
							mu.Lock()
							faults = append(faults, fmt.Sprintf("count %d, err %v", n, err))
							mu.Unlock()
						}
					}
				}()
			}
			for range runs {
				if _, _, err := b.Write(ctx, "results_atomic", resultsinktest.NewVersion(), &seqRows{n: rows}, nextFence()); err != nil {
					t.Fatal(err)
				}
			}
			done.Store(true)
			wg.Wait()
			if len(faults) > 0 {
				t.Fatalf("%d of %d reads saw a partial or missing table, e.g. %s", len(faults), reads.Load(), faults[0])
			}
			if reads.Load() < runs {
				t.Fatalf("only %d reads during %d publishes", reads.Load(), runs)
			}
			if n := stagingTables(t, b.DB()); n != 0 {
				t.Fatalf("%d staging tables left", n)
			}
		})
	}
}

// TestFailedWriteLeavesNoTrace: a source that fails mid-stream publishes
// nothing, keeps the previous table, and drops its staging table.
func TestFailedWriteLeavesNoTrace(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := openBackend(t, d)
			if _, _, err := b.Write(ctx, "results_keep", resultsinktest.NewVersion(), &seqRows{n: 10}, nextFence()); err != nil {
				t.Fatal(err)
			}
			_, _, err := b.Write(ctx, "results_keep", resultsinktest.NewVersion(), &seqRows{n: 5000, err: fmt.Errorf("source went away")}, nextFence())
			if err == nil || !strings.Contains(err.Error(), "source went away") {
				t.Fatalf("write error %v", err)
			}
			if n, err := countRows(ctx, b.DB(), "results_keep"); err != nil || n != 10 {
				t.Fatalf("previous table: %d rows, %v", n, err)
			}
			if n := stagingTables(t, b.DB()); n != 0 {
				t.Fatalf("%d staging tables left", n)
			}
		})
	}
}

// TestDropStagingKeepsLiveRuns: start-up cleanup removes crashed runs'
// staging tables and nothing else.
func TestDropStagingKeepsLiveRuns(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := openBackend(t, d)
			sqlexectest.Exec(t, b.DB(), `CREATE TABLE sqljobber_stage_dead (x INTEGER)`)
			sqlexectest.Exec(t, b.DB(), `CREATE TABLE sqljobber_stage_live (x INTEGER)`)
			sqlexectest.Exec(t, b.DB(), `CREATE TABLE sqljobberxstage_other (x INTEGER)`)
			n, err := b.DropStaging(ctx, func(context.Context) (map[string]bool, error) {
				return map[string]bool{"live": true}, nil
			})
			if err != nil || n != 1 {
				t.Fatalf("dropped %d, %v", n, err)
			}
			if n := stagingTables(t, b.DB()); n != 1 {
				t.Fatalf("%d staging tables left, want the live one", n)
			}
			if _, err := countRows(ctx, b.DB(), "sqljobberxstage_other"); err != nil {
				t.Fatalf("an unrelated table was dropped: %v", err)
			}
		})
	}
}

// lostRun returns the fence of a run that lost its job: claimed, then
// cancelled, in a ledger on b's database.
func lostRun(t *testing.T, b *resultsink.Backend) resultsink.Fence {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.New(b.DB(), b.Durable(), ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Admit(ctx, ledger.Job{Job: sqljobber.Job{ID: "f", Task: "t", Queue: "q"}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := l.Claim(ctx, "q", ledger.Node{Name: "n", ID: "n-1"}, 1, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	if _, err := l.Cancel(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	return resultsink.Fence{Token: 100, Owner: l.Run(jobs[0])}
}

// TestFenceRefusesAnOlderRun: once a run has published a table, a run with
// a lower token cannot replace it, and a failing ownership check refuses a
// publication; neither leaves a staging table.
func TestFenceRefusesAnOlderRun(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := openBackend(t, d)
			if _, _, err := b.Write(ctx, "results_f", "newer", &seqRows{n: 3}, resultsink.Fence{Token: 7}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name  string
				fence resultsink.Fence
			}{
				{"older token", resultsink.Fence{Token: 6}},
				{"same token", resultsink.Fence{Token: 7}},
				{"lost ownership", lostRun(t, b)},
			} {
				_, _, err := b.Write(ctx, "results_f", resultsinktest.NewVersion(), &seqRows{n: 50}, tc.fence)
				if !errors.Is(err, resultsink.ErrFenced) {
					t.Fatalf("%s: err %v, want ErrFenced", tc.name, err)
				}
				if n, err := countRows(ctx, b.DB(), "results_f"); err != nil || n != 3 {
					t.Fatalf("%s: the newer run's table has %d rows (%v)", tc.name, n, err)
				}
			}
			if n := stagingTables(t, b.DB()); n != 0 {
				t.Fatalf("%d staging tables left", n)
			}
			// A later token publishes; after a drop, any token does.
			if _, _, err := b.Write(ctx, "results_f", resultsinktest.NewVersion(), &seqRows{n: 4}, resultsink.Fence{Token: 9}); err != nil {
				t.Fatal(err)
			}
			if err := b.Drop(ctx, "results_f"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.Write(ctx, "results_f", resultsinktest.NewVersion(), &seqRows{n: 5}, resultsink.Fence{Token: 1}); err != nil {
				t.Fatalf("after a drop: %v", err)
			}
		})
	}
}

// TestFirstRunReplacesATableOfItsName: a job's first run publishes without
// dropping first (no table of its name is expected); if one is there all
// the same, it is replaced, small results and staged alike.
func TestFirstRunReplacesATableOfItsName(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		for _, staged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/staged=%t", d, staged), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				b := openBackend(t, d)
				if staged {
					resultsink.WithoutSmallPath(b)
				}
				sqlexectest.Exec(t, b.DB(), "CREATE TABLE results_taken (x INTEGER)")
				sqlexectest.Exec(t, b.DB(), "INSERT INTO results_taken VALUES (1), (2)")
				n, _, err := b.Write(ctx, "results_taken", resultsinktest.NewVersion(), &seqRows{n: 5}, resultsink.Fence{Token: 1})
				if err != nil || n != 5 {
					t.Fatalf("wrote %d rows: %v", n, err)
				}
				if got, err := countRows(ctx, b.DB(), "results_taken"); err != nil || got != 5 {
					t.Fatalf("the table has %d rows (%v), want the run's 5", got, err)
				}
			})
		}
	}
}

// TestFenceTableComesBack: the fence table dropped while the backend runs
// (as when its results database is dropped and created again) is created
// again by the next publication, drop or readiness check, which then
// succeed.
func TestFenceTableComesBack(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		for _, staged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/staged=%t", d, staged), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				b := openBackend(t, d)
				if staged {
					resultsink.WithoutSmallPath(b)
				}
				dropFence := func() { sqlexectest.Exec(t, b.DB(), "DROP TABLE sqljobber_fence") }

				dropFence()
				if n, _, err := b.Write(ctx, "results_back", resultsinktest.NewVersion(), &seqRows{n: 3}, resultsink.Fence{Token: 1}); err != nil || n != 3 {
					t.Fatalf("first publication without the fence table: %d rows, %v", n, err)
				}
				dropFence()
				if n, _, err := b.Write(ctx, "results_back", resultsinktest.NewVersion(), &seqRows{n: 4}, resultsink.Fence{Token: 2}); err != nil || n != 4 {
					t.Fatalf("re-run without the fence table: %d rows, %v", n, err)
				}
				if got, err := countRows(ctx, b.DB(), "results_back"); err != nil || got != 4 {
					t.Fatalf("the table has %d rows (%v), want the re-run's 4", got, err)
				}
				dropFence()
				if err := b.Check(ctx); err != nil {
					t.Fatalf("check without the fence table: %v", err)
				}
				if _, err := countRows(ctx, b.DB(), "sqljobber_fence"); err != nil {
					t.Fatalf("the check did not create the fence table again: %v", err)
				}
				dropFence()
				if err := b.Drop(ctx, "results_back"); err != nil {
					t.Fatalf("drop without the fence table: %v", err)
				}
				if n := stagingTables(t, b.DB()); n != 0 {
					t.Fatalf("%d staging tables left", n)
				}
			})
		}
	}
}

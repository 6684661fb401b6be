package resultsink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// TestForeignTableIsNeverReplaced: a table of a job's results table name
// that sql-jobber did not create (a user's own) is neither replaced by a
// run, first or later, small results or staged, nor dropped by Drop; the
// run fails saying so and leaves no staging table.
func TestForeignTableIsNeverReplaced(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		for _, staged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/staged=%t", d, staged), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				var logs strings.Builder
				b, err := resultsink.Open(ctx, resultsink.Config{
					DBConfig: sqlexec.DBConfig{Name: "res", Type: d, DSN: sqlexectest.DSN(t, d), MaxActive: 4},
					Logger:   slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(b.Close)
				if staged {
					resultsink.WithoutSmallPath(b)
				}
				sqlexectest.Exec(t, b.DB(), "CREATE TABLE results_victim (x INTEGER)")
				sqlexectest.Exec(t, b.DB(), "INSERT INTO results_victim VALUES (1), (2)")
				for _, token := range []int64{1, 2} {
					_, _, err := b.Write(ctx, "results_victim", resultsinktest.NewVersion(), &seqRows{n: 5}, resultsink.Fence{Token: token})
					want := `results table "results_victim" exists and was not created by sql-jobber; refusing to replace it`
					if !errors.Is(err, resultsink.ErrForeignTable) || !strings.Contains(err.Error(), want) {
						t.Fatalf("run with token %d: %v, want %q", token, err, want)
					}
					if got, err := countRows(ctx, b.DB(), "results_victim"); err != nil || got != 2 {
						t.Fatalf("run with token %d: the user's table has %d rows (%v), want its 2", token, got, err)
					}
				}
				if n := stagingTables(t, b.DB()); n != 0 {
					t.Fatalf("%d staging tables left", n)
				}
				if err := b.Drop(ctx, "results_victim"); err != nil {
					t.Fatal(err)
				}
				if got, err := countRows(ctx, b.DB(), "results_victim"); err != nil || got != 2 {
					t.Fatalf("after Drop the user's table has %d rows (%v), want its 2", got, err)
				}
				if !strings.Contains(logs.String(), "results_table=results_victim") {
					t.Fatalf("no warning names the table left in place: %q", logs.String())
				}

				// sql-jobber's own tables are replaced and dropped as
				// before.
				if _, _, err := b.Write(ctx, "results_mine", resultsinktest.NewVersion(), &seqRows{n: 3}, resultsink.Fence{Token: 1}); err != nil {
					t.Fatal(err)
				}
				if _, _, err := b.Write(ctx, "results_mine", resultsinktest.NewVersion(), &seqRows{n: 4}, resultsink.Fence{Token: 2}); err != nil {
					t.Fatal(err)
				}
				if err := b.Drop(ctx, "results_mine"); err != nil {
					t.Fatal(err)
				}
				if _, err := countRows(ctx, b.DB(), "results_mine"); err == nil {
					t.Fatal("Drop left sql-jobber's own table")
				}
			})
		}
	}
}

// TestLedgerHerePublicationIsRecorded: a publication that records its
// job's SUCCESS in the same transaction (the ledger in the results
// database) is sql-jobber's too: Drop drops it.
func TestLedgerHerePublicationIsRecorded(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := openBackend(t, d)
			l, err := ledger.New(b.DB(), b.Durable(), ledger.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Admit(ctx, ledger.Job{Job: sqljobber.Job{ID: "h", Task: "t", Queue: "q"}}); err != nil {
				t.Fatal(err)
			}
			jobs, err := l.Claim(ctx, "q", ledger.Node{Name: "n", ID: "n-1"}, 1, time.Minute)
			if err != nil || len(jobs) != 1 {
				t.Fatalf("claim: %v %v", jobs, err)
			}
			_, recorded, err := b.Write(ctx, "results_h", jobs[0].RunID, &seqRows{n: 3}, resultsink.Fence{Token: jobs[0].Fence, Owner: l.Run(jobs[0])})
			if err != nil || !recorded {
				t.Fatalf("publication: recorded %v, %v", recorded, err)
			}
			if err := b.Drop(ctx, "results_h"); err != nil {
				t.Fatal(err)
			}
			if _, err := countRows(ctx, b.DB(), "results_h"); err == nil {
				t.Fatal("Drop left the table")
			}
		})
	}
}

// TestTablesOfAnEarlierBuildAreAdopted: results tables that an earlier
// build published without a fence record (it kept none when the ledger
// shared the database) are sql-jobber's once the backend opens: they are
// replaced and dropped. A user's table without the row number column is
// not.
func TestTablesOfAnEarlierBuildAreAdopted(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		ctx := context.Background()
		cfg := resultsink.Config{DBConfig: sqlexec.DBConfig{Name: "res", Type: d, DSN: sqlexectest.DSN(t, d), MaxActive: 4}}
		b, err := resultsink.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The earlier build's fence table: no marker, no records.
		sqlexectest.Exec(t, b.DB(), "DELETE FROM sqljobber_fence")
		sqlexectest.Exec(t, b.DB(), "CREATE TABLE results_old (x INTEGER, _row BIGINT NOT NULL)")
		sqlexectest.Exec(t, b.DB(), "CREATE TABLE results_users (x INTEGER)")
		b.Close()

		b, err = resultsink.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, _, err := b.Write(ctx, "results_old", resultsinktest.NewVersion(), &seqRows{n: 3}, resultsink.Fence{Token: 1}); err != nil {
			t.Fatalf("re-run of an earlier build's table: %v", err)
		}
		if err := b.Drop(ctx, "results_old"); err != nil {
			t.Fatal(err)
		}
		if _, err := countRows(ctx, b.DB(), "results_old"); err == nil {
			t.Fatal("Drop left an earlier build's table")
		}
		if _, _, err := b.Write(ctx, "results_users", resultsinktest.NewVersion(), &seqRows{n: 3}, resultsink.Fence{Token: 1}); !errors.Is(err, resultsink.ErrForeignTable) {
			t.Fatalf("a user's table: %v, want ErrForeignTable", err)
		}
	})
}

// syncWriter is an io.Writer safe for concurrent use.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
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

// TestARunThatLostItsJobPublishesNothing: with the ledger in the results
// database, a run whose job was taken from it (its node found gone)
// publishes no table, small or staged, on every dialect: the ownership
// check rides on the publication's own statements.
func TestARunThatLostItsJobPublishesNothing(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		for _, staged := range []bool{false, true} {
			ctx := context.Background()
			b := openBackend(t, d)
			if staged {
				resultsink.WithoutSmallPath(b)
			}
			l, err := ledger.New(b.DB(), b.Durable(), ledger.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Admit(ctx, ledger.Job{Job: sqljobber.Job{ID: "lost", Task: "t", Queue: "q"}}); err != nil {
				t.Fatal(err)
			}
			jobs, err := l.Claim(ctx, "q", ledger.Node{Name: "n", ID: "n-1"}, 1, time.Minute)
			if err != nil || len(jobs) != 1 {
				t.Fatalf("claim: %v %v", jobs, err)
			}
			if lost, err := l.TakeOverNode(ctx, "n-1", 3); err != nil || len(lost) != 1 {
				t.Fatalf("take over: %v %v", lost, err)
			}
			_, _, err = b.Write(ctx, "results_lost", jobs[0].RunID, &seqRows{n: 3}, resultsink.Fence{Token: jobs[0].Fence, Owner: l.Run(jobs[0])})
			if !errors.Is(err, resultsink.ErrFenced) {
				t.Fatalf("staged %v: a lost run's publication: %v", staged, err)
			}
			if _, err := countRows(ctx, b.DB(), "results_lost"); err == nil {
				t.Fatalf("staged %v: a lost run published its table", staged)
			}
			l.Close()
		}
	})
}

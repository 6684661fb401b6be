// Package resultsinktest gives tests a results backend on a fresh real
// database (see sqlexectest), with a job ledger and a results reader, and
// jobs that succeeded with rows of the test's choosing.
package resultsinktest

import (
	"context"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// BackendName is the name of an Env's results backend.
const BackendName = "res"

// Env is a results backend with a ledger in it and a reader of it.
type Env struct {
	t       testing.TB
	Backend *resultsink.Backend
	Ledger  *resultsink.Ledger
	Reader  *resultsink.Reader
}

// NewEnv opens an Env on a fresh database of dialect d; it closes at the
// end of the test.
func NewEnv(t testing.TB, d sqlexec.Dialect, cfg resultsink.ReaderConfig) *Env {
	t.Helper()
	ctx := context.Background()
	b, err := resultsink.Open(ctx, resultsink.Config{
		DBConfig: sqlexec.DBConfig{Name: BackendName, Type: d, DSN: sqlexectest.DSN(t, d), MaxActive: 4},
	})
	if err != nil {
		t.Fatalf("open results backend: %v", err)
	}
	t.Cleanup(b.Close)
	l, err := resultsink.NewLedger(b, resultsink.LedgerConfig{})
	if err == nil {
		t.Cleanup(l.Close)
		err = l.Migrate(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	r, err := resultsink.NewReader(l, []*resultsink.Backend{b}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{t: t, Backend: b, Ledger: l, Reader: r}
}

// Succeed records job id as a success whose results are rows, written by a
// run of its own. The job's queue is "q".
func (e *Env) Succeed(id string, rows sqlexec.Rows) {
	e.t.Helper()
	ctx := context.Background()
	table := e.Backend.TableName(id)
	if _, err := e.Ledger.Admit(ctx, resultsink.Job{ID: id, Task: "t", Queue: "q", ResultsBackend: BackendName, ResultsTable: table}); err != nil {
		e.t.Fatal(err)
	}
	claimed, err := e.Ledger.Claim(ctx, "q", "n", 1, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].ID != id {
		e.t.Fatalf("claim %s: %v, %v", id, claimed, err)
	}
	j := claimed[0]
	n, recorded, err := e.Backend.Write(ctx, table, j.RunID, rows, e.Ledger.Fence(j))
	if err != nil {
		e.t.Fatal(err)
	}
	if recorded {
		return
	}
	if err := e.Ledger.Finish(ctx, id, j.RunID, resultsink.Outcome{State: resultsink.StateSuccess, Count: n}); err != nil {
		e.t.Fatal(err)
	}
}

// FuncRows yields N rows made by Row, without a database.
type FuncRows struct {
	Cols []sqlexec.Column
	N    int
	Row  func(i int) []any
	i    int
	vals []any
}

func (r *FuncRows) Columns() []sqlexec.Column { return r.Cols }
func (r *FuncRows) Values() []any             { return r.vals }
func (r *FuncRows) Err() error                { return nil }
func (r *FuncRows) Close() error              { return nil }

func (r *FuncRows) Next() bool {
	if r.i >= r.N {
		return false
	}
	r.vals = r.Row(r.i)
	r.i++
	return true
}

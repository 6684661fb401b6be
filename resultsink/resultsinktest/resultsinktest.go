// Package resultsinktest gives tests a results backend on a fresh real
// database (see sqlexectest), a reader of it, and results tables of rows of
// the test's choosing.
package resultsinktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// BackendName is the name of an Env's results backend.
const BackendName = "res"

// Env is a results backend and a reader of it.
type Env struct {
	t       testing.TB
	Backend *resultsink.Backend
	Reader  *resultsink.Reader

	mu     sync.Mutex
	tables map[string]resultsink.Table // by job ID
	token  int64
}

// NewEnv opens an Env on a fresh database of dialect d; it closes at the
// end of the test.
func NewEnv(t testing.TB, d sqlexec.Dialect, cfg resultsink.ReaderConfig) *Env {
	t.Helper()
	b, err := resultsink.Open(context.Background(), resultsink.Config{
		DBConfig: sqlexec.DBConfig{Name: BackendName, Type: d, DSN: sqlexectest.DSN(t, d), MaxActive: 4},
	})
	if err != nil {
		t.Fatalf("open results backend: %v", err)
	}
	t.Cleanup(b.Close)
	r, err := resultsink.NewReader([]*resultsink.Backend{b}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{t: t, Backend: b, Reader: r, tables: map[string]resultsink.Table{}}
}

// Succeed publishes rows as the results table of job id, as a new run of
// the job would: a new version of the table, under a later fence token.
func (e *Env) Succeed(id string, rows sqlexec.Rows) {
	e.t.Helper()
	e.mu.Lock()
	e.token++
	token := e.token
	e.mu.Unlock()
	t := resultsink.Table{Backend: BackendName, Name: e.Backend.TableName(id), Version: NewVersion()}
	if _, _, err := e.Backend.Write(context.Background(), t.Name, t.Version, rows, resultsink.Fence{Token: token}); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.tables[id] = t
	e.mu.Unlock()
}

// Table is the results table that Succeed last published for job id.
func (e *Env) Table(id string) resultsink.Table {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tables[id]; ok {
		return t
	}
	return resultsink.Table{Backend: BackendName, Name: e.Backend.TableName(id)}
}

// NewVersion returns a random version (a run ID) for a publication.
func NewVersion() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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

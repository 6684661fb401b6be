package wire

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// entryCols are the columns of cmd/sqljobber-bench's entries table, the
// shape of result the benchmarks measure (here and, through its own copy of
// these rows, resultsink's BenchmarkPostgresWrite).
var entryCols = []sqlexec.Column{
	{Name: "id", Type: sqlexec.TypeInt64},
	{Name: "user_id", Type: sqlexec.TypeText},
	{Name: "amount", Type: sqlexec.TypeDecimal, Precision: 12, Scale: 2},
	{Name: "entry_date", Type: sqlexec.TypeDate},
	{Name: "created_at", Type: sqlexec.TypeTimestamp},
	{Name: "note", Type: sqlexec.TypeText},
}

// entryValues is row i of the entries table, typed as sqlexec.Rows types it.
func entryValues(i int64) []any {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cents := (i * 7919) % 10_000_000
	return []any{
		i,
		"USER" + strconv.FormatInt(i%1000, 10),
		fmt.Sprintf("%d.%02d", cents/100, cents%100),
		start.AddDate(0, 0, int(i%365)),
		start.Add(time.Duration(i) * time.Second),
		fmt.Sprintf("note %x", i*2654435761),
	}
}

// cycleRows yields n rows, going round rows made in advance: a source that
// allocates nothing per row, so that a measurement sees only its sink.
type cycleRows struct {
	cols []sqlexec.Column
	rows [][]any
	n, i int
	cur  []any
}

// newEntryRows yields n rows of the entries table, from 1,024 distinct ones.
func newEntryRows(n int) *cycleRows {
	r := &cycleRows{cols: entryCols, n: n}
	for i := range int64(1024) {
		r.rows = append(r.rows, entryValues(i+1))
	}
	return r
}

func (r *cycleRows) Columns() []sqlexec.Column { return r.cols }
func (r *cycleRows) Values() []any             { return r.cur }
func (r *cycleRows) Err() error                { return nil }
func (r *cycleRows) Close() error              { return nil }

func (r *cycleRows) Next() bool {
	if r.i >= r.n {
		return false
	}
	r.cur = r.rows[r.i%len(r.rows)]
	r.i++
	return true
}

// entryRowsNumbered are rows of the entries table with their row number,
// as resultsink hands them to the readers.
func entryRowsNumbered(n int) *cycleRows {
	r := newEntryRows(n)
	r.cols = append(append([]sqlexec.Column(nil), entryCols...), sqlexec.Column{Name: "_row", Type: sqlexec.TypeInt64})
	for i := range r.rows {
		r.rows[i] = append(r.rows[i], int64(i+1))
	}
	return r
}

// failingRows fail after their rows.
type failingRows struct {
	cycleRows
	err error
}

func (r *failingRows) Err() error { return r.err }

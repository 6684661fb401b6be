package sqlexectest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// CycleRows yields N rows, going round Rows, made in advance: a source
// that allocates nothing per row, so that a measurement sees only its sink.
type CycleRows struct {
	Cols []sqlexec.Column
	Rows [][]any
	N    int
	i    int
	cur  []any
}

func (r *CycleRows) Columns() []sqlexec.Column { return r.Cols }
func (r *CycleRows) Values() []any             { return r.cur }
func (r *CycleRows) Err() error                { return nil }
func (r *CycleRows) Close() error              { return nil }

// Yielded is how many rows Next has yielded.
func (r *CycleRows) Yielded() int { return r.i }

func (r *CycleRows) Next() bool {
	if r.i >= r.N {
		return false
	}
	r.cur = r.Rows[r.i%len(r.Rows)]
	r.i++
	return true
}

// EntryColumns are the columns of cmd/sqljobber-bench's entries table, the
// shape of result the benchmarks measure.
func EntryColumns() []sqlexec.Column {
	return []sqlexec.Column{
		{Name: "id", Type: sqlexec.TypeInt64},
		{Name: "user_id", Type: sqlexec.TypeText},
		{Name: "amount", Type: sqlexec.TypeDecimal, Precision: 12, Scale: 2},
		{Name: "entry_date", Type: sqlexec.TypeDate},
		{Name: "created_at", Type: sqlexec.TypeTimestamp},
		{Name: "note", Type: sqlexec.TypeText},
	}
}

// EntryValues is row i of the entries table, typed as sqlexec.Rows types it.
func EntryValues(i int64) []any {
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

// EntryRows yields n rows of the entries table, from 1,024 distinct ones.
func EntryRows(n int) *CycleRows {
	r := &CycleRows{Cols: EntryColumns(), N: n}
	for i := range int64(1024) {
		r.Rows = append(r.Rows, EntryValues(i+1))
	}
	return r
}

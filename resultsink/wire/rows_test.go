package wire

import (
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// entryRowsNumbered are rows of the entries table with their row number,
// as resultsink hands them to the readers.
func entryRowsNumbered(n int) *sqlexectest.CycleRows {
	r := sqlexectest.EntryRows(n)
	r.Cols = append(r.Cols, sqlexec.Column{Name: "_row", Type: sqlexec.TypeInt64})
	for i := range r.Rows {
		r.Rows[i] = append(r.Rows[i], int64(i+1))
	}
	return r
}

// failingRows fail after their rows.
type failingRows struct {
	sqlexectest.CycleRows
	err error
}

func (r *failingRows) Err() error { return r.err }

package wire

import (
	"fmt"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Source is a source's rows as its database sent them, for a writer to the
// same kind of database: values whose wire form is also the results
// column's form pass through without being decoded into Go values and
// encoded again, which is most of what a row costs.
//
// The writer also has the same rows typed (sqlexec.Rows), behind whatever
// the caller wraps around them: the first Pending rows are read from those,
// the rest straight from Rows. Rows lack the results' last column, the row
// number, which the writer takes from Count.
type Source struct {
	Rows sqlexec.WireRows
	// Pending is the number of rows that the typed rows hold already read
	// and decoded: they are written first, from their values.
	Pending int
	// Count is the typed rows' row counter: a row read from Rows adds one
	// to it, and is numbered by the sum.
	Count *int64
}

// wireEncoder appends a non-NULL wire value as a field of the writer's
// format.
type wireEncoder func(buf, b []byte) ([]byte, error)

// rawRows reads a Source for a writer.
type rawRows struct {
	src     sqlexec.WireRows
	cols    []sqlexec.WireColumn
	names   []string // the results columns' names, for errors
	pending int      // rows still to come from the typed rows
	count   *int64
}

// newRawRows returns the reader of src if it is not nil and its rows come
// from a database of dialect d with the columns of the results cols (the
// source's, then the row number), or nil.
func newRawRows(src *Source, d sqlexec.Dialect, cols []sqlexec.Column) *rawRows {
	if src == nil || len(cols) == 0 {
		return nil
	}
	n := len(cols) - 1
	dialect, wcols := src.Rows.Wire()
	if dialect != d || len(wcols) != n {
		return nil
	}
	w := &rawRows{src: src.Rows, cols: wcols, pending: src.Pending, count: src.Count}
	for _, c := range cols[:n] {
		w.names = append(w.names, c.Name)
	}
	return w
}

// fromTyped reports whether the next row is one the typed rows hold, and
// counts it as read.
func (w *rawRows) fromTyped() bool {
	if w.pending > 0 {
		w.pending--
		return true
	}
	return false
}

// next advances to the source's next row and returns its values and
// number; ok is false at the end of the rows (or on an error, in the rows'
// Err).
func (w *rawRows) next() (raw [][]byte, n int64, ok bool) {
	if !w.src.NextWire() {
		return nil, 0, false
	}
	*w.count++
	return w.src.WireValues(), *w.count, true
}

// fieldError names the column of a value that could not be written.
func (w *rawRows) fieldError(i int, err error) error {
	return fmt.Errorf("column %q: %w", w.names[i], err)
}

package resultsink

import (
	"fmt"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// wireSource reads a source's rows as its database sent them
// (sqlexec.WireRows), for a writer to the same kind of database, from under
// Backend.Write's wrappers: a buffered prefix (the rows read while deciding
// whether the result is small) is written from its decoded values first,
// then the rest comes from the source directly, numbered as numberedRows
// would.
type wireSource struct {
	src    sqlexec.WireRows
	cols   []sqlexec.WireColumn
	names  []string    // the results columns' names, for errors
	prefix *prefixRows // nil, or rows already read and decoded
	num    *numberedRows
}

// wireEncoder appends a non-NULL wire value as a field of the writer's
// format.
type wireEncoder func(buf, b []byte) ([]byte, error)

// findWire returns the wire source under rows if it is one of dialect, with
// the columns of the results table cols (the source's, then RowColumn), or
// nil.
func findWire(rows sqlexec.Rows, dialect sqlexec.Dialect, cols []sqlexec.Column) *wireSource {
	n := len(cols) - 1
	w := &wireSource{}
	for _, c := range cols[:n] {
		w.names = append(w.names, c.Name)
	}
	if p, ok := rows.(*prefixRows); ok {
		w.prefix, rows = p, p.Rows
	}
	var ok bool
	if w.num, ok = rows.(*numberedRows); !ok {
		return nil
	}
	if w.src, ok = w.num.Rows.(sqlexec.WireRows); !ok {
		return nil
	}
	var d sqlexec.Dialect
	if d, w.cols = w.src.Wire(); d != dialect || len(w.cols) != n {
		return nil
	}
	return w
}

// ready reports whether the next row comes from the source itself: the
// buffered prefix has been read.
func (w *wireSource) ready() bool {
	p := w.prefix
	return p == nil || p.i >= len(p.buf)
}

// next advances to the source's next row and returns its values and
// number; ok is false at the end of the rows (or on an error, in the rows'
// Err).
func (w *wireSource) next() (raw [][]byte, n int64, ok bool) {
	if !w.src.NextWire() {
		return nil, 0, false
	}
	w.num.n++
	return w.src.WireValues(), w.num.n, true
}

// fieldError names the column of a value that could not be written.
func (w *wireSource) fieldError(i int, err error) error {
	return fmt.Errorf("column %q: %w", w.names[i], err)
}

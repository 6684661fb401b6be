package resultsink

import (
	"github.com/sql-jobber/sql-jobber/resultsink/wire"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// wireSource returns the source under Backend.Write's wrappers as its
// database sent it, for a writer to the same kind of database (see
// wire.Source), or nil when it cannot be read so. The rows the buffered
// prefix holds (read while deciding whether the result is small) are
// written from their decoded values first; the rest come from the source
// directly, numbered by numberedRows' counter.
func wireSource(rows sqlexec.Rows) *wire.Source {
	pending := 0
	if p, ok := rows.(*prefixRows); ok {
		pending, rows = len(p.buf)-p.i, p.Rows
	}
	num, ok := rows.(*numberedRows)
	if !ok {
		return nil
	}
	src, ok := num.Rows.(sqlexec.WireRows)
	if !ok {
		return nil
	}
	return &wire.Source{Rows: src, Pending: pending, Count: &num.n}
}

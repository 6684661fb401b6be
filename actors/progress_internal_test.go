package actors

import (
	"sync/atomic"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// wireRows are n rows that can be read typed or as sent.
type wireRows struct {
	sqlexec.WireRows // nil: only what the tests call is here
	left             int
}

func (r *wireRows) Next() bool     { r.left--; return r.left >= 0 }
func (r *wireRows) NextWire() bool { return r.Next() }

// plainRows are n rows that can be read typed only.
type plainRows struct {
	sqlexec.Rows
	left int
}

func (r *plainRows) Next() bool { r.left--; return r.left >= 0 }

// TestCountedRowsCountEveryRowAndKeepTheWirePath: rows that a writer may
// pass through as sent still can once counted, and a row counts once
// whichever way it is read; other rows are counted as read.
func TestCountedRowsCountEveryRowAndKeepTheWirePath(t *testing.T) {
	var n atomic.Int64
	rows := counted(&wireRows{left: 5}, &n)
	w, ok := rows.(sqlexec.WireRows)
	if !ok {
		t.Fatal("counted wire rows cannot be read as sent")
	}
	w.Next()
	w.NextWire()
	w.NextWire()
	w.Next()
	w.NextWire()
	if w.NextWire() || w.Next() {
		t.Fatal("more rows than there are")
	}
	if n.Load() != 5 {
		t.Fatalf("counted %d rows of 5", n.Load())
	}

	n.Store(0)
	rows = counted(&plainRows{left: 3}, &n)
	if _, ok := rows.(sqlexec.WireRows); ok {
		t.Fatal("typed-only rows became wire rows")
	}
	for rows.Next() {
	}
	if n.Load() != 3 {
		t.Fatalf("counted %d rows of 3", n.Load())
	}
}

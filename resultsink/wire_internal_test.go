package resultsink

import (
	"context"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestWireFoundUnderWritesWrappers: a source that can be read raw is found
// under the wrappers Backend.Write puts around it (row numbers and, past
// the small path, the buffered prefix), with the rows the prefix holds
// still to be written from it, and the row counter.
func TestWireFoundUnderWritesWrappers(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			src := sqlexectest.Open(t, d, "src", sqlexec.OpenOptions{})
			reg, err := sqlexec.NewRegistry([]*sqlexec.Task{{Name: "q", SQL: "SELECT 1 AS a, 'x' AS b", NumArgs: -1}}, []*sqlexec.DB{src}, []string{"res"})
			if err != nil {
				t.Fatal(err)
			}
			task, _ := reg.Task("q")
			rows, err := reg.Query(context.Background(), task, "src", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			cols := append(rows.Columns(), sqlexec.Column{Name: RowColumn, Type: sqlexec.TypeInt64})
			numbered := &numberedRows{Rows: rows, cols: cols, vals: make([]any, len(cols))}
			prefix := &prefixRows{Rows: numbered, buf: [][]any{{int64(7), "y", int64(1)}, {int64(8), "z", int64(2)}}, i: 1}
			for _, tc := range []struct {
				rows    sqlexec.Rows
				pending int
			}{{numbered, 0}, {prefix, 1}} {
				ws := wireSource(tc.rows)
				if ws == nil {
					t.Fatalf("%T: no wire source found", tc.rows)
				}
				if ws.Rows != rows || ws.Pending != tc.pending || ws.Count != &numbered.n {
					t.Errorf("%T: source %T, %d pending, counter %p; want %T, %d, %p",
						tc.rows, ws.Rows, ws.Pending, ws.Count, rows, tc.pending, &numbered.n)
				}
			}
			if ws := wireSource(rows); ws != nil {
				t.Errorf("a wire source found outside the wrappers")
			}
		})
	}
}

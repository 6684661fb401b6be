package resultsink

import (
	"context"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestWireFoundUnderWritesWrappers: a same-engine source is read raw under
// the wrappers Backend.Write puts around it (row numbers and, past the
// small path, the buffered prefix), and a source of the other engine is
// not.
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
			for _, wrapped := range []sqlexec.Rows{numbered, &prefixRows{Rows: numbered}} {
				if findWire(wrapped, d, cols) == nil {
					t.Errorf("%T: no wire source found", wrapped)
				}
				other := sqlexec.MySQL
				if d == sqlexec.MySQL {
					other = sqlexec.Postgres
				}
				if findWire(wrapped, other, cols) != nil {
					t.Errorf("%T: a wire source of %s found for %s", wrapped, d, other)
				}
			}
		})
	}
}

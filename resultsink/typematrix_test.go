package resultsink_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

func TestTypeMatrix(t *testing.T) {
	for _, srcDialect := range sqlexectest.Dialects {
		for _, resDialect := range sqlexectest.Dialects {
			for _, staged := range []bool{false, true} {
				name := fmt.Sprintf("%s_to_%s", srcDialect, resDialect)
				if staged {
					name += "_staged"
				}
				t.Run(name, func(t *testing.T) { testTypeMatrix(t, srcDialect, resDialect, staged) })
			}
		}
	}
}

// testTypeMatrix round-trips every type case from a source dialect to a
// results dialect, through the one-step publication of small results or
// (staged) through a staging table.
func testTypeMatrix(t *testing.T, srcDialect, resDialect sqlexec.Dialect, staged bool) {
	t.Parallel()
	ctx := context.Background()
	src := sqlexectest.Open(t, srcDialect, "src", sqlexec.OpenOptions{})
	cases := sqlexectest.SeedTypeMatrix(t, src)

	backend := openBackend(t, resDialect)
	if staged {
		resultsink.WithoutSmallPath(backend)
	}
	reg, err := sqlexec.NewRegistry([]*sqlexec.Task{{Name: "matrix", SQL: "SELECT * FROM src ORDER BY id", NumArgs: -1}},
		[]*sqlexec.DB{src}, []string{backend.Name})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := reg.Task("matrix")
	rows, err := reg.Query(ctx, task, "src", nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := backend.Write(ctx, "results_matrix", resultsinktest.NewVersion(), rows, nextFence())
	rows.Close()
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if n != 3 {
		t.Fatalf("wrote %d rows, want 3", n)
	}

	got, gotCols := readTable(t, backend, "results_matrix")
	for i, c := range cases {
		want, ok := wantResultType[c.Name]
		if !ok {
			continue
		}
		if c.Name == "b" && (srcDialect == sqlexec.MySQL || resDialect == sqlexec.MySQL) {
			// MySQL's BOOLEAN is TINYINT(1), an integer to
			// its own clients too.
			want = sqlexec.Column{Type: sqlexec.TypeInt64}
		}
		if c.Name == "amt" {
			want = wantDecimal(srcDialect, resDialect)
		}
		g := gotCols[i+1]
		if g.Type != want.Type || g.Precision != want.Precision || g.Scale != want.Scale {
			t.Errorf("column %s: results column is %s(%d,%d), want %s(%d,%d)",
				c.Name, g.Type, g.Precision, g.Scale, want.Type, want.Precision, want.Scale)
		}
	}
	// The row numbers come last, from 1 in the task's order.
	if last := gotCols[len(gotCols)-1]; last.Name != resultsink.RowColumn || last.Type != sqlexec.TypeInt64 || len(gotCols) != len(cases)+2 {
		t.Errorf("columns end with %+v (of %d), want %s int64 after the %d source columns", last, len(gotCols), resultsink.RowColumn, len(cases)+1)
	}
	for row := range 3 {
		if g := got[row][len(cases)+1]; g != strconv.Itoa(row+1) {
			t.Errorf("row %d is numbered %s", row, g)
		}
		for i, c := range cases {
			if g := got[row][i+1]; g != c.Want[row] {
				t.Errorf("row %d column %s: got %q, want %q", row, c.Name, g, c.Want[row])
			}
		}
	}
}

func openBackend(t testing.TB, d sqlexec.Dialect) *resultsink.Backend {
	t.Helper()
	b, err := resultsink.Open(context.Background(), resultsink.Config{
		DBConfig: sqlexec.DBConfig{Name: "res", Type: d, DSN: sqlexectest.DSN(t, d), MaxActive: 4},
	})
	if err != nil {
		t.Fatalf("open results backend: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// wantResultType is the type some columns must have in every results
// database: integers stay integers, booleans booleans, decimals keep their
// precision and scale.
var wantResultType = map[string]sqlexec.Column{
	"i64": {Type: sqlexec.TypeInt64},
	"amt": {Type: sqlexec.TypeDecimal, Precision: 12, Scale: 2},
	"f64": {Type: sqlexec.TypeFloat64},
	"b":   {Type: sqlexec.TypeBool},
	"d":   {Type: sqlexec.TypeDate},
	"ts":  {Type: sqlexec.TypeTimestamp},
	"bin": {Type: sqlexec.TypeBytes},
}

// wantDecimal is what a DECIMAL(12,2) source column reads back as from the
// results table. SQLite does not enforce a declared precision, so its
// decimals are unconstrained (MySQL stores those as DECIMAL(65,30)); and
// MySQL's driver cannot say whether a DECIMAL is UNSIGNED (one digit more),
// so MySQL decimals are read one digit wider, each time one is read.
func wantDecimal(src, res sqlexec.Dialect) sqlexec.Column {
	c := sqlexec.Column{Type: sqlexec.TypeDecimal, Precision: 12, Scale: 2}
	switch src {
	case sqlexec.SQLite:
		c.Precision, c.Scale = 0, 0
	case sqlexec.MySQL:
		c.Precision++
	}
	if res == sqlexec.MySQL {
		if c.Precision == 0 {
			c.Precision, c.Scale = 65, 30
		} else {
			c.Precision++
		}
	}
	return c
}

// readTable reads a results table back through sqlexec, as canonical strings
// ordered by its first column, and its columns.
func readTable(t *testing.T, b *resultsink.Backend, table string) ([][]string, []sqlexec.Column) {
	t.Helper()
	q := `SELECT * FROM "` + table + `" ORDER BY 1`
	if b.DB().Dialect == sqlexec.MySQL {
		q = "SELECT * FROM `" + table + "` ORDER BY 1"
	}
	reg, err := sqlexec.NewRegistry([]*sqlexec.Task{{Name: "read", SQL: q, NumArgs: -1}}, []*sqlexec.DB{b.DB()}, []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := reg.Task("read")
	rows, err := reg.Query(context.Background(), task, b.DB().Name, nil)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	var out [][]string
	cols := rows.Columns()
	for rows.Next() {
		var row []string
		for i, v := range rows.Values() {
			row = append(row, sqlexectest.Canonical(cols[i], v))
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, cols
}

package resultsink_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// typeCase is one column of the type matrix: its type on each source dialect
// ("" where the dialect has no such type), the SQL literal of each row, and
// the canonical value each row must read back as, whatever the results
// database.
type typeCase struct {
	name              string
	pg, mysql, sqlite string
	lit               func(d sqlexec.Dialect, row int) string
	want              [3]string
}

func same(vals ...string) func(sqlexec.Dialect, int) string {
	return func(_ sqlexec.Dialect, row int) string { return vals[row] }
}

var longText = strings.Repeat("Grüße, \"quoted\" 'single' back\\slash\ttab\nnewline ", 8) + "😀 end"

func sqlString(d sqlexec.Dialect, s string) string {
	if d == sqlexec.MySQL {
		s = strings.ReplaceAll(s, `\`, `\\`)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

var typeCases = []typeCase{
	{name: "i16", pg: "smallint", mysql: "SMALLINT", sqlite: "INTEGER",
		lit: same("12", "-32768", "NULL"), want: [3]string{"12", "-32768", "NULL"}},
	{name: "i64", pg: "bigint", mysql: "BIGINT", sqlite: "INTEGER",
		lit:  same("9223372036854775807", "-9223372036854775808", "NULL"),
		want: [3]string{"9223372036854775807", "-9223372036854775808", "NULL"}},
	{name: "u64", mysql: "BIGINT UNSIGNED",
		lit: same("18446744073709551615", "0", "NULL"), want: [3]string{"18446744073709551615", "0", "NULL"}},
	{name: "amt", pg: "numeric(12,2)", mysql: "DECIMAL(12,2)", sqlite: "DECIMAL(12,2)",
		lit: same("1234567890.12", "-0.50", "NULL"), want: [3]string{"1234567890.12", "-0.5", "NULL"}},
	{name: "dec_wide", pg: "numeric", mysql: "DECIMAL(65,30)",
		lit:  same("12345678901234567890123456789012345.123456789012345678901234567891", "0.000000000000000000000000000001", "NULL"),
		want: [3]string{"12345678901234567890123456789012345.123456789012345678901234567891", "0.000000000000000000000000000001", "NULL"}},
	{name: "f64", pg: "double precision", mysql: "DOUBLE", sqlite: "REAL",
		lit: same("3.141592653589793", "-1.5e300", "NULL"), want: [3]string{"3.141592653589793", "-1.5e+300", "NULL"}},
	{name: "f32", pg: "real", mysql: "FLOAT",
		lit: same("1.2345678", "-3.5", "NULL"), want: [3]string{"1.2345678", "-3.5", "NULL"}},
	{name: "udec", mysql: "DECIMAL(10,2) UNSIGNED",
		lit: same("99999999.99", "0", "NULL"), want: [3]string{"99999999.99", "0", "NULL"}},
	{name: "txt", pg: "text", mysql: "LONGTEXT", sqlite: "TEXT",
		lit:  func(d sqlexec.Dialect, row int) string { return [3]string{sqlString(d, longText), "''", "NULL"}[row] },
		want: [3]string{longText, "", "NULL"}},
	{name: "vc", pg: "varchar(10)", mysql: "VARCHAR(10)", sqlite: "VARCHAR(10)",
		lit: same("'abc'", "'0123456789'", "NULL"), want: [3]string{"abc", "0123456789", "NULL"}},
	{name: "b", pg: "boolean", mysql: "BOOLEAN", sqlite: "BOOLEAN",
		lit: same("true", "false", "NULL"), want: [3]string{"1", "0", "NULL"}},
	{name: "d", pg: "date", mysql: "DATE", sqlite: "DATE",
		lit: same("'2024-02-29'", "'1000-01-01'", "NULL"), want: [3]string{"2024-02-29", "1000-01-01", "NULL"}},
	{name: "ts", pg: "timestamp", mysql: "DATETIME(6)", sqlite: "TIMESTAMP",
		lit:  same("'2024-01-02 03:04:05.123456'", "'9999-12-31 23:59:59.999999'", "NULL"),
		want: [3]string{"2024-01-02 03:04:05.123456", "9999-12-31 23:59:59.999999", "NULL"}},
	{name: "tstz", pg: "timestamptz",
		lit:  same("'2024-01-02 03:04:05.123456+05:30'", "'1999-12-31 23:00:00-01:00'", "NULL"),
		want: [3]string{"2024-01-01 21:34:05.123456", "2000-01-01 00:00:00", "NULL"}},
	{name: "j", pg: "json", mysql: "JSON", sqlite: "JSON",
		lit:  same(`'{"b": 1, "a": [1.50, "x"], "b": 2}'`, `'[]'`, "NULL"),
		want: [3]string{`{"b": 1, "a": [1.50, "x"], "b": 2}`, `[]`, "NULL"}},
	{name: "bin", pg: "bytea", mysql: "LONGBLOB", sqlite: "BLOB",
		lit: func(d sqlexec.Dialect, row int) string {
			if d == sqlexec.Postgres {
				return [3]string{`'\x00010203ff5c090a'::bytea`, `''::bytea`, "NULL"}[row]
			}
			return [3]string{`X'00010203ff5c090a'`, `X''`, "NULL"}[row]
		},
		want: [3]string{"x00010203ff5c090a", "x", "NULL"}},
}

func colType(c typeCase, d sqlexec.Dialect) string {
	switch d {
	case sqlexec.Postgres:
		return c.pg
	case sqlexec.MySQL:
		return c.mysql
	}
	return c.sqlite
}

// seedSource creates table src on db with every case the dialect has and
// returns those cases, in column order.
func seedSource(t *testing.T, db *sqlexec.DB) []typeCase {
	t.Helper()
	var cases []typeCase
	defs := []string{"id INTEGER PRIMARY KEY"}
	for _, c := range typeCases {
		if ct := colType(c, db.Dialect); ct != "" {
			cases = append(cases, c)
			defs = append(defs, c.name+" "+ct)
		}
	}
	sqlexectest.Exec(t, db, "CREATE TABLE src ("+strings.Join(defs, ", ")+")")
	for row := range 3 {
		vals := []string{strconv.Itoa(row)}
		for _, c := range cases {
			vals = append(vals, c.lit(db.Dialect, row))
		}
		sqlexectest.Exec(t, db, "INSERT INTO src VALUES ("+strings.Join(vals, ", ")+")")
	}
	return cases
}

func TestTypeMatrix(t *testing.T) {
	for _, srcDialect := range sqlexectest.Dialects {
		for _, resDialect := range sqlexectest.Dialects {
			t.Run(fmt.Sprintf("%s_to_%s", srcDialect, resDialect), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				src := sqlexectest.Open(t, srcDialect, "src", sqlexec.OpenOptions{})
				cases := seedSource(t, src)

				backend := openBackend(t, resDialect)
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
				n, err := backend.Write(ctx, "results_matrix", resultsink.NewRunID(), rows)
				rows.Close()
				if err != nil {
					t.Fatalf("write: %v", err)
				}
				if n != 3 {
					t.Fatalf("wrote %d rows, want 3", n)
				}

				got, gotCols := readTable(t, backend, "results_matrix")
				for i, c := range cases {
					want, ok := wantResultType[c.name]
					if !ok {
						continue
					}
					if c.name == "b" && (srcDialect == sqlexec.MySQL || resDialect == sqlexec.MySQL) {
						// MySQL's BOOLEAN is TINYINT(1), an integer to
						// its own clients too.
						want = sqlexec.Column{Type: sqlexec.TypeInt64}
					}
					if c.name == "amt" {
						want = wantDecimal(srcDialect, resDialect)
					}
					g := gotCols[i+1]
					if g.Type != want.Type || g.Precision != want.Precision || g.Scale != want.Scale {
						t.Errorf("column %s: results column is %s(%d,%d), want %s(%d,%d)",
							c.name, g.Type, g.Precision, g.Scale, want.Type, want.Precision, want.Scale)
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
						if g := got[row][i+1]; g != c.want[row] {
							t.Errorf("row %d column %s: got %q, want %q", row, c.name, g, c.want[row])
						}
					}
				}
			})
		}
	}
}

func openBackend(t *testing.T, d sqlexec.Dialect) *resultsink.Backend {
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
			row = append(row, canonical(cols[i], v))
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, cols
}

// canonical spells a value the same way whichever database it came from.
func canonical(c sqlexec.Column, v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case []byte:
		return "x" + hex.EncodeToString(x)
	case time.Time:
		if c.Type == sqlexec.TypeDate {
			return x.Format(time.DateOnly)
		}
		return x.UTC().Format("2006-01-02 15:04:05.999999")
	case string:
		if c.Type == sqlexec.TypeDecimal || c.Type == sqlexec.TypeUint64 {
			r, ok := new(big.Rat).SetString(x)
			if !ok {
				return "invalid decimal " + x
			}
			s := r.FloatString(40)
			s = strings.TrimRight(s, "0")
			return strings.TrimSuffix(s, ".")
		}
		return x
	}
	return fmt.Sprintf("unexpected %T", v)
}

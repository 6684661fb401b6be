package sqlexectest

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// TypeCase is one column of the type matrix: its type on each source dialect
// ("" where the dialect has no such type), the SQL literal of each of its
// three rows, and the value each row must read back as (see Canonical),
// whatever the results database.
type TypeCase struct {
	Name              string
	PG, MySQL, SQLite string
	Lit               func(d sqlexec.Dialect, row int) string
	Want              [3]string
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

// TypeCases is the type matrix: a column of every kind of type the source
// databases have, with edge values. A case without Want reads back as its
// literals, unquoted.
var TypeCases = withWants([]TypeCase{
	{Name: "i16", PG: "smallint", MySQL: "SMALLINT", SQLite: "INTEGER",
		Lit: same("12", "-32768", "NULL")},
	{Name: "i64", PG: "bigint", MySQL: "BIGINT", SQLite: "INTEGER",
		Lit: same("9223372036854775807", "-9223372036854775808", "NULL")},
	{Name: "u64", MySQL: "BIGINT UNSIGNED",
		Lit: same("18446744073709551615", "0", "NULL")},
	{Name: "amt", PG: "numeric(12,2)", MySQL: "DECIMAL(12,2)", SQLite: "DECIMAL(12,2)",
		Lit: same("1234567890.12", "-0.50", "NULL"), Want: [3]string{"1234567890.12", "-0.5", "NULL"}},
	{Name: "dec_wide", PG: "numeric", MySQL: "DECIMAL(65,30)",
		Lit: same("12345678901234567890123456789012345.123456789012345678901234567891", "0.000000000000000000000000000001", "NULL")},
	{Name: "f64", PG: "double precision", MySQL: "DOUBLE", SQLite: "REAL",
		Lit: same("3.141592653589793", "-1.5e300", "NULL"), Want: [3]string{"3.141592653589793", "-1.5e+300", "NULL"}},
	{Name: "f32", PG: "real", MySQL: "FLOAT",
		Lit: same("1.2345678", "-3.5", "NULL")},
	{Name: "udec", MySQL: "DECIMAL(10,2) UNSIGNED",
		Lit: same("99999999.99", "0", "NULL")},
	{Name: "txt", PG: "text", MySQL: "LONGTEXT", SQLite: "TEXT",
		Lit:  func(d sqlexec.Dialect, row int) string { return [3]string{sqlString(d, longText), "''", "NULL"}[row] },
		Want: [3]string{longText, "", "NULL"}},
	{Name: "vc", PG: "varchar(10)", MySQL: "VARCHAR(10)", SQLite: "VARCHAR(10)",
		Lit: same("'abc'", "'0123456789'", "NULL")},
	{Name: "b", PG: "boolean", MySQL: "BOOLEAN", SQLite: "BOOLEAN",
		Lit: same("true", "false", "NULL"), Want: [3]string{"1", "0", "NULL"}},
	{Name: "d", PG: "date", MySQL: "DATE", SQLite: "DATE",
		Lit: same("'2024-02-29'", "'1000-01-01'", "NULL")},
	{Name: "ts", PG: "timestamp", MySQL: "DATETIME(6)", SQLite: "TIMESTAMP",
		Lit: same("'2024-01-02 03:04:05.123456'", "'9999-12-31 23:59:59.999999'", "NULL")},
	{Name: "tstz", PG: "timestamptz",
		Lit:  same("'2024-01-02 03:04:05.123456+05:30'", "'1999-12-31 23:00:00-01:00'", "NULL"),
		Want: [3]string{"2024-01-01 21:34:05.123456", "2000-01-01 00:00:00", "NULL"}},
	{Name: "j", PG: "json", MySQL: "JSON", SQLite: "JSON",
		Lit: same(`'{"b": 1, "a": [1.50, "x"], "b": 2}'`, `'[]'`, "NULL")},
	{Name: "bin", PG: "bytea", MySQL: "LONGBLOB", SQLite: "BLOB",
		Lit: func(d sqlexec.Dialect, row int) string {
			if d == sqlexec.Postgres {
				return [3]string{`'\x00010203ff5c090a'::bytea`, `''::bytea`, "NULL"}[row]
			}
			return [3]string{`X'00010203ff5c090a'`, `X''`, "NULL"}[row]
		},
		Want: [3]string{"x00010203ff5c090a", "x", "NULL"}},
})

// withWants gives each case without Want its literals, unquoted.
func withWants(cases []TypeCase) []TypeCase {
	for i, c := range cases {
		if c.Want != [3]string{} {
			continue
		}
		for row := range 3 {
			lit := c.Lit(sqlexec.Postgres, row)
			if unquoted, ok := strings.CutPrefix(lit, "'"); ok {
				lit = strings.ReplaceAll(strings.TrimSuffix(unquoted, "'"), "''", "'")
			}
			cases[i].Want[row] = lit
		}
	}
	return cases
}

// Type is the case's column type on dialect d, "" if it has none.
func (c TypeCase) Type(d sqlexec.Dialect) string {
	switch d {
	case sqlexec.Postgres:
		return c.PG
	case sqlexec.MySQL:
		return c.MySQL
	}
	return c.SQLite
}

// SeedTypeMatrix creates table src on db, with an id column (0, 1, 2) and
// every case the dialect has, and returns those cases, in column order.
func SeedTypeMatrix(t testing.TB, db *sqlexec.DB) []TypeCase {
	t.Helper()
	var cases []TypeCase
	defs := []string{"id INTEGER PRIMARY KEY"}
	for _, c := range TypeCases {
		if ct := c.Type(db.Dialect); ct != "" {
			cases = append(cases, c)
			defs = append(defs, c.Name+" "+ct)
		}
	}
	Exec(t, db, "CREATE TABLE src ("+strings.Join(defs, ", ")+")")
	for row := range 3 {
		vals := []string{strconv.Itoa(row)}
		for _, c := range cases {
			vals = append(vals, c.Lit(db.Dialect, row))
		}
		Exec(t, db, "INSERT INTO src VALUES ("+strings.Join(vals, ", ")+")")
	}
	return cases
}

// Canonical spells a typed value (as sqlexec.Rows types them) the same way
// whichever database it came from: "NULL", integers and floats in their
// shortest form, decimals without trailing zeros, booleans as 1 and 0,
// bytes as "x" and hex, times as "2006-01-02 15:04:05.999999" in UTC.
func Canonical(c sqlexec.Column, v any) string {
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

package resultsink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// myWireSource is a MySQL query over the types a MySQL source passes
// through to MySQL results (and a double, which takes the typed path), with
// NULLs and LOAD DATA's special characters, in more rows than the small
// path buffers.
const myWireSource = `SELECT n %% 100 AS i, n * 1000000007 AS big, CAST(18446744073709551615 - n AS UNSIGNED) AS u,
	CAST(n / 7 AS DECIMAL(12,2)) AS amt, n / 3e0 AS f, %s AS d,
	TIMESTAMP '1999-12-31 23:59:59.999999' + INTERVAL n SECOND AS ts,
	IF(n %% 7 = 0, '', CONCAT('ü\t\\', n, '\n')) AS t,
	JSON_OBJECT('g', n) AS j, IF(n %% 11 = 0, CAST('' AS BINARY), UNHEX(LPAD(HEX(n), 8, '0'))) AS b, IF(n %% 10 = 0, NULL, n) AS maybe
FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d AS n FROM
	(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) a,
	(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) b,
	(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) c,
	(SELECT 0 d UNION ALL SELECT 1) e) g
WHERE n BETWEEN 1 AND 1234 ORDER BY n`

const myWireConcat = `CONCAT_WS('|', COALESCE(i, 'NULL'), big, u, amt, f, COALESCE(d, 'NULL'), ts, COALESCE(t, 'NULL'), j, COALESCE(HEX(b), 'NULL'), COALESCE(maybe, 'NULL'))`

func myWire(date string) string {
	return strings.ReplaceAll(strings.Replace(myWireSource, "%s", date, 1), "%%", "%")
}

// TestMySQLToMySQLKeepsEveryValue: values passed through from a MySQL
// source read back exactly as the source query gives them, each row
// numbered in order (MySQL results buffer no prefix: every row passes through).
func TestMySQLToMySQLKeepsEveryValue(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, sqlexec.MySQL)
	query := myWire("DATE '2000-01-01' + INTERVAL n * 10 - 5000 DAY")
	n, err := writeFrom(t, sqlexec.MySQL, b, "results_wire", query)
	if err != nil || n != 1234 {
		t.Fatalf("wrote %d rows: %v", n, err)
	}
	texts := func(q string) []string {
		rows, err := b.DB().SQL().QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := texts("SELECT " + myWireConcat + " FROM (" + query + ") s ORDER BY big")
	got := texts("SELECT " + myWireConcat + " FROM results_wire ORDER BY _row")
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d:\n got %q\nwant %q", i+1, got[i], want[i])
		}
	}
	if rows := texts("SELECT CONCAT_WS(' ', MIN(_row), MAX(_row), COUNT(DISTINCT _row)) FROM results_wire"); rows[0] != "1 1234 1234" {
		t.Fatalf("row numbers (min max distinct): %s", rows[0])
	}
}

// TestMySQLToMySQLRefusesZeroInDates: a date with a zero month, which
// MariaDB can produce, is refused on the pass-through as on the typed
// path, naming its column, and leaves no table.
func TestMySQLToMySQLRefusesZeroInDates(t *testing.T) {
	b := openBackend(t, sqlexec.MySQL)
	query := myWire("IF(n = 900, CAST('2024-00-10' AS DATE), DATE '2000-01-01' + INTERVAL n DAY)")
	_, err := writeFrom(t, sqlexec.MySQL, b, "results_wire_zero", query)
	if err == nil || !strings.Contains(err.Error(), `column "d"`) || !strings.Contains(err.Error(), "2024-00-10") {
		t.Fatalf("err %v, want the zero-in-date refused by its column", err)
	}
	if _, err := countRows(context.Background(), b.DB(), "results_wire_zero"); err == nil {
		t.Fatal("a results table was published")
	}
	if n := stagingTables(t, b.DB()); n != 0 {
		t.Fatalf("%d staging tables left", n)
	}
}

// BenchmarkMySQLToMySQL writes rows like cmd/sqljobber-bench's entries,
// read from MariaDB (its sequence engine), through a staging table: the
// pass-through. An op is one row; cpu-ns/row is the process's CPU time.
func BenchmarkMySQLToMySQL(b *testing.B) {
	backend := openBackend(b, sqlexec.MySQL)
	src := sqlexectest.Open(b, sqlexec.MySQL, "src", sqlexec.OpenOptions{})
	if !src.MariaDB {
		b.Skip("needs MariaDB's sequence engine")
	}
	query := fmt.Sprintf(`SELECT seq AS id, CONCAT('user-', seq %% 1000) AS user_id, CAST((seq %% 100000) / 100 AS DECIMAL(12,2)) AS amount,
	DATE '2020-01-01' + INTERVAL seq %% 1000 DAY AS entry_date, TIMESTAMP '2020-01-01 00:00:00.000000' + INTERVAL seq SECOND AS created_at,
	CONCAT('note ', seq) AS note FROM seq_1_to_%d`, b.N)
	benchmarkWriteFrom(b, src, backend, query)
}

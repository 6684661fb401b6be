package resultsink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// pgWireSource is a PostgreSQL query over the types a PostgreSQL source
// passes through to PostgreSQL results (and a float4 and a uuid-like text,
// which take the typed path), with NULLs, in more rows than the small
// path buffers, so that a results table has a decoded prefix and a passed
// through rest.
const pgWireSource = `SELECT (g %% 300)::int2 AS i2, g::int4 AS i4, g::int8 * 1000000007 AS i8, (g / 7.0)::numeric(12,2) AS amt,
	g::numeric / 8 AS dec, g::float4 / 3 AS f4, g::float8 / 3 AS f8, g %% 2 = 0 AS b,
	%s AS d, TIMESTAMP '1999-12-31 23:59:59.999999' + g * INTERVAL '1 second' AS ts,
	TIMESTAMPTZ '2024-01-01 00:00:00+05' + g * INTERVAL '1 microsecond' AS tz,
	CASE WHEN g %% 7 = 0 THEN '' ELSE 'ü-' || g END AS t,
	json_build_object('g', g, 'a', 1) AS j, ('{"b": ' || g || ', "a": [1, 2]}')::jsonb AS jb,
	CASE WHEN g %% 11 = 0 THEN ''::bytea ELSE decode(lpad(to_hex(g), 8, '0'), 'hex') END AS by, CASE WHEN g %% 10 <> 0 THEN g END AS maybe,
	md5(g::text)::uuid AS id
FROM generate_series(1, 1234) g ORDER BY g`

const pgWireColumns = "i2, i4, i8, amt, dec, f4, f8, b, d, ts, tz, t, j, jb, by, maybe, id"

// writeFrom writes the rows of query, run on a source of dialect d, into
// table through b.
func writeFrom(t *testing.T, d sqlexec.Dialect, b *resultsink.Backend, table, query string) (int64, error) {
	t.Helper()
	rows := queryRows(t, sqlexectest.Open(t, d, "src", sqlexec.OpenOptions{}), query)
	defer rows.Close()
	n, _, err := b.Write(context.Background(), table, resultsinktest.NewVersion(), rows, nextFence())
	return n, err
}

// queryRows runs query on src, as a task would.
func queryRows(tb testing.TB, src *sqlexec.DB, query string) sqlexec.Rows {
	tb.Helper()
	reg, err := sqlexec.NewRegistry([]*sqlexec.Task{{Name: "q", SQL: query, NumArgs: -1}}, []*sqlexec.DB{src}, []string{"res"})
	if err != nil {
		tb.Fatal(err)
	}
	task, _ := reg.Task("q")
	rows, err := reg.Query(context.Background(), task, src.Name, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// benchmarkWriteFrom writes the b.N rows of query, run on src, into a
// staging table of backend and reports the process's CPU time per row.
func benchmarkWriteFrom(b *testing.B, src *sqlexec.DB, backend *resultsink.Backend, query string) {
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	rows := queryRows(b, src, query)
	n, _, err := backend.Write(context.Background(), "results_bench_wire", resultsinktest.NewVersion(), rows, nextFence())
	rows.Close()
	b.StopTimer()
	if err != nil || n != int64(b.N) {
		b.Fatalf("wrote %d rows of %d: %v", n, b.N, err)
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/row")
}

// TestPostgresToPostgresKeepsEveryValue: values passed through from a
// PostgreSQL source read back exactly as the source query gives them, each
// row numbered in order, across the buffered prefix and the rest.
func TestPostgresToPostgresKeepsEveryValue(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, sqlexec.Postgres)
	query := strings.ReplaceAll(fmtWire("DATE '1970-01-01' - 5000 + g * 10"), "%%", "%")
	n, err := writeFrom(t, sqlexec.Postgres, b, "results_wire", query)
	if err != nil || n != 1234 {
		t.Fatalf("wrote %d rows: %v", n, err)
	}
	texts := func(q string) []string {
		rows, err := b.DB().Postgres().Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := texts("SELECT ROW(" + pgWireColumns + ")::text FROM (" + query + ") s")
	got := texts(`SELECT ROW(` + pgWireColumns + `)::text FROM "results_wire" ORDER BY _row`)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d:\n got %s\nwant %s", i+1, got[i], want[i])
		}
	}
	if rows := texts(`SELECT format('%s %s %s', min(_row), max(_row), count(DISTINCT _row)) FROM "results_wire"`); rows[0] != "1 1234 1234" {
		t.Fatalf("row numbers (min max distinct): %s", rows[0])
	}
}

// TestPostgresToPostgresRefusesInfinity: a value with no portable form is
// refused on the pass-through as on the typed path, naming its column, and
// leaves no table.
func TestPostgresToPostgresRefusesInfinity(t *testing.T) {
	b := openBackend(t, sqlexec.Postgres)
	query := strings.ReplaceAll(fmtWire("CASE WHEN g = 900 THEN DATE 'infinity' ELSE DATE '2000-01-01' + g END"), "%%", "%")
	_, err := writeFrom(t, sqlexec.Postgres, b, "results_wire_inf", query)
	if err == nil || !strings.Contains(err.Error(), `column "d"`) || !strings.Contains(err.Error(), "infinity") {
		t.Fatalf("err %v, want the infinite date refused by its column", err)
	}
	if _, err := countRows(context.Background(), b.DB(), "results_wire_inf"); err == nil {
		t.Fatal("a results table was published")
	}
	if n := stagingTables(t, b.DB()); n != 0 {
		t.Fatalf("%d staging tables left", n)
	}
}

func fmtWire(date string) string { return strings.Replace(pgWireSource, "%s", date, 1) }

// BenchmarkPostgresToPostgres writes rows like cmd/sqljobber-bench's
// entries, read from PostgreSQL, through a staging table: the pass-through.
// An op is one row; cpu-ns/row is the process's CPU time (all threads).
func BenchmarkPostgresToPostgres(b *testing.B) {
	backend := openBackend(b, sqlexec.Postgres)
	src := sqlexectest.Open(b, sqlexec.Postgres, "src", sqlexec.OpenOptions{})
	query := fmt.Sprintf(`SELECT g::int8 AS id, 'user-' || (g %% 1000) AS user_id, (g %% 100000) / 100.0::numeric(12,2) AS amount,
	DATE '2020-01-01' + g %% 1000 AS entry_date, TIMESTAMP '2020-01-01 00:00:00' + g * INTERVAL '1 second' AS created_at,
	'note ' || g AS note FROM generate_series(1, %d) g`, b.N)
	benchmarkWriteFrom(b, src, backend, query)
}

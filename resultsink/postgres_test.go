package resultsink_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// pgValue is a value written to a results column and the text PostgreSQL
// reads it back as.
type pgValue struct {
	in   any
	want string
}

// pgValueCases are edge values of each column type. stagedOnly marks
// values that only the staged path (COPY) takes: the one-step path refuses
// years outside 1 to 9999.
var pgValueCases = []struct {
	col        sqlexec.Column
	vals       []pgValue
	stagedOnly bool
}{
	{col: sqlexec.Column{Name: "dec", Type: sqlexec.TypeDecimal}, vals: []pgValue{
		{"0", "0"}, {"0.00", "0.00"}, {"-0.00", "0.00"}, {"-0", "0"},
		{"1", "1"}, {"-1", "-1"}, {"0.0001", "0.0001"}, {"0.00001", "0.00001"},
		{"10000", "10000"}, {"99999999.99", "99999999.99"}, {"12.50", "12.50"},
		{"123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"},
		{"0.000000000000000000000000000001", "0.000000000000000000000000000001"},
		{"NaN", "NaN"}, {"Infinity", "Infinity"}, {"-Infinity", "-Infinity"},
		{"18446744073709551615", "18446744073709551615"},
		{"+7.5", "7.5"}, {".5", "0.5"}, {"5.", "5"}, {"-00012.3400", "-12.3400"},
		{"100000000", "100000000"}, {"0.10000", "0.10000"}, {"-0.000010000", "-0.000010000"},
		{"1000000000000.000000000001", "1000000000000.000000000001"},
		{nil, "NULL"},
	}},
	// The column's scale rounds, as PostgreSQL rounds any input.
	{col: sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal, Precision: 12, Scale: 2}, vals: []pgValue{
		{"12.5", "12.50"}, {"1.005", "1.01"}, {"-0.001", "0.00"}, {"9999999999.99", "9999999999.99"}, {"-0.50", "-0.50"},
	}},
	{col: sqlexec.Column{Name: "u", Type: sqlexec.TypeUint64}, vals: []pgValue{
		{uint64(0), "0"}, {uint64(1), "1"}, {uint64(9999), "9999"}, {uint64(10000), "10000"},
		{uint64(12345678901234567890), "12345678901234567890"},
		{uint64(math.MaxUint64), "18446744073709551615"}, {nil, "NULL"},
	}},
	{col: sqlexec.Column{Name: "d", Type: sqlexec.TypeDate}, vals: []pgValue{
		{date(1, 1, 1), "0001-01-01"}, {date(1969, 12, 31), "1969-12-31"}, {date(1970, 1, 1), "1970-01-01"},
		{date(1999, 12, 31), "1999-12-31"}, {date(2000, 1, 1), "2000-01-01"}, {date(2024, 2, 29), "2024-02-29"},
		{date(9999, 12, 31), "9999-12-31"},
		// The calendar date where the time is, not in UTC (as pgx did).
		{time.Date(2024, 3, 1, 1, 0, 0, 0, time.FixedZone("UTC+5", 5*3600)), "2024-03-01"},
		{nil, "NULL"},
	}},
	{stagedOnly: true, col: sqlexec.Column{Name: "d_far", Type: sqlexec.TypeDate}, vals: []pgValue{
		{date(0, 12, 31), "0001-12-31 BC"}, {date(-4712, 1, 1), "4713-01-01 BC"},
		{date(10000, 1, 1), "10000-01-01"}, {date(5874897, 12, 31), "5874897-12-31"},
	}},
	{col: sqlexec.Column{Name: "ts", Type: sqlexec.TypeTimestamp}, vals: []pgValue{
		{ts(1, 1, 1, 0, 0, 0, 0), "0001-01-01 00:00:00"},
		{ts(1900, 1, 1, 0, 0, 0, 0), "1900-01-01 00:00:00"},
		{ts(1960, 6, 15, 12, 0, 0, 500000), "1960-06-15 12:00:00.5"},
		{ts(1969, 7, 20, 20, 17, 40, 1), "1969-07-20 20:17:40.000001"},
		{ts(1969, 12, 31, 23, 59, 59, 999999), "1969-12-31 23:59:59.999999"},
		{ts(1970, 1, 1, 0, 0, 0, 0), "1970-01-01 00:00:00"},
		{ts(1999, 12, 31, 23, 59, 59, 999999), "1999-12-31 23:59:59.999999"},
		{ts(2000, 1, 1, 0, 0, 0, 1), "2000-01-01 00:00:00.000001"},
		{ts(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02 03:04:05.123456"},
		{ts(9999, 12, 31, 23, 59, 59, 999999), "9999-12-31 23:59:59.999999"},
		// The wall clock where the time is (as pgx did).
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("UTC+5", 5*3600)), "2024-01-02 03:04:05"},
		{nil, "NULL"},
	}},
	{stagedOnly: true, col: sqlexec.Column{Name: "ts_far", Type: sqlexec.TypeTimestamp}, vals: []pgValue{
		{ts(-4712, 1, 1, 0, 0, 0, 0), "4713-01-01 00:00:00 BC"},
		{ts(294276, 12, 31, 23, 59, 59, 999999), "294276-12-31 23:59:59.999999"},
	}},
	{col: sqlexec.Column{Name: "tstz", Type: sqlexec.TypeTimestampTZ}, vals: []pgValue{
		{ts(1, 1, 1, 0, 0, 0, 0), "0001-01-01 00:00:00+00"},
		{ts(1969, 12, 31, 23, 59, 59, 999999), "1969-12-31 23:59:59.999999+00"},
		{ts(2000, 1, 1, 0, 0, 0, 0), "2000-01-01 00:00:00+00"},
		// The instant, whatever the zone (the results session is in UTC).
		{time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.FixedZone("UTC+5", 5*3600)), "2024-01-01 22:04:05.123456+00"},
		// In year 1 in UTC, though not where it is.
		{time.Date(0, 12, 31, 23, 0, 0, 0, time.FixedZone("UTC-1", -3600)), "0001-01-01 00:00:00+00"},
		{nil, "NULL"},
	}},
	{stagedOnly: true, col: sqlexec.Column{Name: "tstz_far", Type: sqlexec.TypeTimestampTZ}, vals: []pgValue{
		// In year 1 where it is, but 1 BC in UTC.
		{time.Date(1, 1, 1, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600)), "0001-12-31 23:30:00+00 BC"},
	}},
	{col: sqlexec.Column{Name: "i", Type: sqlexec.TypeInt64}, vals: []pgValue{
		{int64(math.MinInt64), "-9223372036854775808"}, {int64(math.MaxInt64), "9223372036854775807"}, {int64(0), "0"}, {nil, "NULL"},
	}},
	{col: sqlexec.Column{Name: "f", Type: sqlexec.TypeFloat64}, vals: []pgValue{
		{0.1, "0.1"}, {math.Copysign(0, -1), "-0"}, {5e-324, "5e-324"}, {-1.5e300, "-1.5e+300"},
		{math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"}, {nil, "NULL"},
	}},
	{col: sqlexec.Column{Name: "b", Type: sqlexec.TypeBool}, vals: []pgValue{
		{true, "true"}, {false, "false"}, {nil, "NULL"},
	}},
	{col: sqlexec.Column{Name: "t", Type: sqlexec.TypeText}, vals: []pgValue{
		{"", ""}, {"Grüße 😀", "Grüße 😀"}, {"a\tb\\c'd\"e\nf", "a\tb\\c'd\"e\nf"}, {nil, "NULL"},
	}},
	{col: sqlexec.Column{Name: "j", Type: sqlexec.TypeJSON}, vals: []pgValue{
		{`{"b": 1, "a": [1.50, "x"], "b": 2}`, `{"b": 1, "a": [1.50, "x"], "b": 2}`}, {`"x"`, `"x"`}, {nil, "NULL"},
	}},
	{col: sqlexec.Column{Name: "bin", Type: sqlexec.TypeBytes}, vals: []pgValue{
		{[]byte{}, `\x`}, {[]byte{0, 1, 0x5c, 0xff}, `\x00015cff`}, {nil, "NULL"},
	}},
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func ts(y int, m time.Month, d, h, mi, s, us int) time.Time {
	return time.Date(y, m, d, h, mi, s, us*1000, time.UTC)
}

// TestPostgresWritesValuesExactly writes edge values of each type into
// PostgreSQL results tables, in one step and through a staging table, and
// reads them back as PostgreSQL prints them.
func TestPostgresWritesValuesExactly(t *testing.T) {
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%t", staged), func(t *testing.T) {
			t.Parallel()
			b := openBackend(t, sqlexec.Postgres)
			if staged {
				resultsink.WithoutSmallPath(b)
			}
			for _, tc := range pgValueCases {
				if tc.stagedOnly && !staged {
					continue
				}
				table := "results_" + tc.col.Name
				rows := rowsOf([]sqlexec.Column{tc.col}, len(tc.vals), func(i int) []any { return []any{tc.vals[i].in} })
				if _, _, err := b.Write(context.Background(), table, resultsinktest.NewVersion(), rows, nextFence()); err != nil {
					t.Errorf("%s: write: %v", tc.col.Name, err)
					continue
				}
				got := pgColumnText(t, b, table, tc.col.Name)
				for i, v := range tc.vals {
					if i >= len(got) || got[i] != v.want {
						t.Errorf("%s: %#v reads back as %q, want %q", tc.col.Name, v.in, at(got, i), v.want)
					}
				}
				if len(got) != len(tc.vals) {
					t.Errorf("%s: %d rows, want %d", tc.col.Name, len(got), len(tc.vals))
				}
			}
		})
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(missing)"
}

// pgColumnText reads a column of a results table as PostgreSQL's text,
// "NULL" for NULL, in the rows' order.
func pgColumnText(t *testing.T, b *resultsink.Backend, table, col string) []string {
	t.Helper()
	q := fmt.Sprintf(`SELECT COALESCE(%s::text, 'NULL') FROM %s ORDER BY %s`,
		pgx.Identifier{col}.Sanitize(), pgx.Identifier{table}.Sanitize(), resultsink.RowColumn)
	rows, err := b.DB().Postgres().Query(context.Background(), q)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return got
}

// TestPostgresStagedTableIsKeyedByRow: a result too large for the one-step
// path is loaded before its key is built; the published table, first run or
// rerun, has the row number as its primary key, the key paged reads order
// and seek by.
func TestPostgresStagedTableIsKeyedByRow(t *testing.T) {
	ctx := context.Background()
	b := openBackend(t, sqlexec.Postgres)
	cols := []sqlexec.Column{{Name: "n", Type: sqlexec.TypeInt64}, {Name: "note", Type: sqlexec.TypeText}}
	for run, n := range []int{2000, 1200} {
		rows := rowsOf(cols, n, func(i int) []any { return []any{int64(i), fmt.Sprint("row ", i)} })
		got, _, err := b.Write(ctx, "results_keyed", resultsinktest.NewVersion(), rows, nextFence())
		if err != nil || got != int64(n) {
			t.Fatalf("run %d: wrote %d rows, %v; want %d", run, got, err, n)
		}
		var key []string
		err = b.DB().Postgres().QueryRow(ctx, `SELECT array_agg(a.attname::text ORDER BY a.attnum)
			FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = 'results_keyed'::regclass AND i.indisprimary`).Scan(&key)
		if err != nil {
			t.Fatalf("run %d: read the key: %v", run, err)
		}
		if len(key) != 1 || key[0] != resultsink.RowColumn {
			t.Errorf("run %d: primary key %q, want (%s)", run, key, resultsink.RowColumn)
		}
		if c, err := countRows(ctx, b.DB(), "results_keyed"); err != nil || c != int64(n) {
			t.Errorf("run %d: %d rows published, %v; want %d", run, c, err, n)
		}
		if got := pgColumnText(t, b, "results_keyed", "note"); len(got) != n || got[n-1] != fmt.Sprint("row ", n-1) {
			t.Errorf("run %d: last row %q, want %q", run, at(got, n-1), fmt.Sprint("row ", n-1))
		}
	}
	if n := stagingTables(t, b.DB()); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
}

// TestPostgresWriteErrorsNameTheColumn: a value the results column cannot
// hold exactly fails the write, with an error that names the column, and
// publishes nothing.
func TestPostgresWriteErrorsNameTheColumn(t *testing.T) {
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%t", staged), func(t *testing.T) {
			t.Parallel()
			b := openBackend(t, sqlexec.Postgres)
			if staged {
				resultsink.WithoutSmallPath(b)
			}
			for _, tc := range []struct {
				col sqlexec.Column
				bad any
			}{
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "1e5"},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "12a"},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, ""},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "-"},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "."},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "-+5"},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "1.2.3"},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, " 1"},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "nan"},
				{sqlexec.Column{Name: "amount", Type: sqlexec.TypeDecimal}, "0." + strings.Repeat("0", 16383) + "1"},
				{sqlexec.Column{Name: "at", Type: sqlexec.TypeTimestamp}, time.Date(2024, 1, 2, 3, 4, 5, 1, time.UTC)},
				{sqlexec.Column{Name: "at", Type: sqlexec.TypeTimestampTZ}, time.Date(1960, 1, 2, 3, 4, 5, 999, time.UTC)},
				{sqlexec.Column{Name: "at", Type: sqlexec.TypeTimestamp}, ts(294277, 1, 1, 0, 0, 0, 0)},
				{sqlexec.Column{Name: "day", Type: sqlexec.TypeDate}, date(5874898, 1, 1)},
				// Its day count would wrap an int32 to a valid date.
				{sqlexec.Column{Name: "day", Type: sqlexec.TypeDate}, date(12_000_000, 1, 1)},
				// Refused by PostgreSQL itself (say, MySQL text bound
				// for PostgreSQL results).
				{sqlexec.Column{Name: "note", Type: sqlexec.TypeText}, "a\x00b"},
				{sqlexec.Column{Name: "note", Type: sqlexec.TypeText}, "\xff"},
				{sqlexec.Column{Name: "doc", Type: sqlexec.TypeJSON}, "{"},
			} {
				// Staged, the bad value comes after enough good rows
				// that COPY has sent some.
				n := 1
				if staged {
					n = 3000
				}
				good := map[sqlexec.Type]any{
					sqlexec.TypeDecimal:     "1.5",
					sqlexec.TypeTimestamp:   time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
					sqlexec.TypeTimestampTZ: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
					sqlexec.TypeDate:        date(2024, 1, 2),
					sqlexec.TypeText:        "ok",
					sqlexec.TypeJSON:        `{"a": 1}`,
				}[tc.col.Type]
				rows := rowsOf([]sqlexec.Column{tc.col}, n, func(i int) []any {
					if i == n-1 {
						return []any{tc.bad}
					}
					return []any{good}
				})
				_, _, err := b.Write(context.Background(), "results_bad", resultsinktest.NewVersion(), rows, nextFence())
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("column %q", tc.col.Name)) {
					t.Errorf("%s %.40v: error %.200v, want one naming the column", tc.col.Type, tc.bad, err)
				}
			}
			if n := stagingTables(t, b.DB()); n != 0 {
				t.Errorf("%d staging tables left", n)
			}
			if _, err := countRows(context.Background(), b.DB(), "results_bad"); err == nil {
				t.Errorf("a failed write published its table")
			}
		})
	}
}

// BenchmarkPostgresWrite writes rows like cmd/sqljobber-bench's entries
// through a staging table; an op is one row. cpu-ns/row is the process's CPU
// time (all threads), the cost that competes with other jobs.
func BenchmarkPostgresWrite(b *testing.B) {
	backend := openBackend(b, sqlexec.Postgres)
	resultsink.WithoutSmallPath(backend)
	ctx := context.Background()
	rows := resultsink.EntryRows(b.N)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	n, _, err := backend.Write(ctx, "results_bench", resultsinktest.NewVersion(), rows, nextFence())
	b.StopTimer()
	if err != nil || n != int64(b.N) {
		b.Fatalf("wrote %d rows of %d: %v", n, b.N, err)
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/row")
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

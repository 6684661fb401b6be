package wire

import (
	"bytes"
	"context"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// numberedRows adds each row's number, from the counter a Source shares
// with them, as resultsink numbers the rows it writes.
type numberedRows struct {
	sqlexec.Rows
	n    int64
	vals []any
}

func (r *numberedRows) Next() bool {
	if !r.Rows.Next() {
		return false
	}
	r.n++
	return true
}

func (r *numberedRows) Values() []any {
	r.vals = append(append(r.vals[:0], r.Rows.Values()...), r.n)
	return r.vals
}

// queryRows runs query on src, as a task would.
func queryRows(t *testing.T, src *sqlexec.DB, query string) sqlexec.Rows {
	t.Helper()
	reg, err := sqlexec.NewRegistry([]*sqlexec.Task{{Name: "q", SQL: query, NumArgs: -1}}, []*sqlexec.DB{src}, []string{"res"})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := reg.Task("q")
	rows, err := reg.Query(context.Background(), task, src.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rows.Close() })
	return rows
}

// numbered returns the rows of query, numbered, their results columns, and
// the Source of the same rows with pending rows read from the numbered ones
// first.
func numbered(t *testing.T, src *sqlexec.DB, query string, pending int) (*numberedRows, []sqlexec.Column, *Source) {
	t.Helper()
	rows := queryRows(t, src, query)
	cols := append(rows.Columns(), sqlexec.Column{Name: "_row", Type: sqlexec.TypeInt64})
	num := &numberedRows{Rows: rows}
	return num, cols, &Source{Rows: rows.(sqlexec.WireRows), Pending: pending, Count: &num.n}
}

// pgPassThroughQuery covers the types a PostgreSQL source passes through to
// PostgreSQL results, and some that take the typed path (float4, uuid),
// with NULLs, in rows enough for several reads.
const pgPassThroughQuery = `SELECT (g % 300)::int2 AS i2, g::int4 AS i4, g::int8 * 1000000007 AS i8, (g / 7.0)::numeric(12,2) AS amt,
	g::numeric / 8 AS dec, g::float4 / 3 AS f4, g::float8 / 3 AS f8, g % 2 = 0 AS b,
	DATE '1970-01-01' - 5000 + g * 10 AS d, TIMESTAMP '1999-12-31 23:59:59.999999' + g * INTERVAL '1 second' AS ts,
	TIMESTAMPTZ '2024-01-01 00:00:00+05' + g * INTERVAL '1 microsecond' AS tz,
	CASE WHEN g % 7 = 0 THEN '' ELSE 'ü-' || g END AS t,
	json_build_object('g', g, 'a', 1) AS j, ('{"b": ' || g || ', "a": [1, 2]}')::jsonb AS jb,
	CASE WHEN g % 11 = 0 THEN ''::bytea ELSE decode(lpad(to_hex(g), 8, '0'), 'hex') END AS by,
	CASE WHEN g % 10 <> 0 THEN g END AS maybe, md5(g::text)::uuid AS id
FROM generate_series(1, 3000) g ORDER BY g`

// TestPgCopyPassThroughIsTheTypedStream: the COPY stream of rows passed
// through from PostgreSQL is byte for byte the stream of the same rows
// decoded and encoded, whether or not some rows come first from the typed
// rows.
func TestPgCopyPassThroughIsTheTypedStream(t *testing.T) {
	src := sqlexectest.Open(t, sqlexec.Postgres, "src", sqlexec.OpenOptions{})
	stream := func(pass bool, pending int) []byte {
		rows, cols, ws := numbered(t, src, pgPassThroughQuery, pending)
		if !pass {
			ws = nil
		}
		r := NewPgCopyReader(rows, cols, ws)
		if pass != (r.wire != nil) {
			t.Fatalf("pass-through %t, want %t", r.wire != nil, pass)
		}
		got, err := copyAll(r, 4093)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := stream(false, 0)
	for _, pending := range []int{0, 1, 700} {
		if got := stream(true, pending); !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Errorf("%d rows first from the typed rows: streams of %d and %d bytes differ from byte %d", pending, len(got), len(want), i)
		}
	}
}

// TestPassThroughOnlyFromItsOwnDatabase: each stream passes through the
// values of a source of its own kind of database only, and only when the
// results columns are the source's and the row number.
func TestPassThroughOnlyFromItsOwnDatabase(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			src := sqlexectest.Open(t, d, "src", sqlexec.OpenOptions{})
			rows, cols, ws := numbered(t, src, "SELECT 1 AS a, 'x' AS b", 0)
			if got := NewPgCopyReader(rows, cols, ws).wire != nil; got != (d == sqlexec.Postgres) {
				t.Errorf("COPY passes through: %t", got)
			}
			if got := NewLoadDataReader(rows, cols, ws).wire != nil; got != (d == sqlexec.MySQL) {
				t.Errorf("LOAD DATA passes through: %t", got)
			}
			short := cols[:len(cols)-1]
			if NewPgCopyReader(rows, short, ws).wire != nil || NewLoadDataReader(rows, short, ws).wire != nil {
				t.Errorf("passes through to results columns without the row number")
			}
		})
	}
}

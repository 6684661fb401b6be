package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

func TestPgDateAndTimestampBinary(t *testing.T) {
	east := time.FixedZone("UTC+5", 5*3600)
	for _, tc := range []struct {
		typ  sqlexec.Type
		in   time.Time
		want int64
	}{
		{sqlexec.TypeDate, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{sqlexec.TypeDate, time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), -1},
		{sqlexec.TypeDate, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), -10957},
		{sqlexec.TypeDate, time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), -10958},
		{sqlexec.TypeDate, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), -730119},
		{sqlexec.TypeDate, time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC), pgMinDay},
		{sqlexec.TypeDate, time.Date(5874897, 12, 31, 0, 0, 0, 0, time.UTC), pgEndDay - 1},
		// The calendar date where the time is.
		{sqlexec.TypeDate, time.Date(2000, 1, 2, 1, 0, 0, 0, east), 1},
		{sqlexec.TypeDate, time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), -1},
		{sqlexec.TypeTimestamp, time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC), 1},
		{sqlexec.TypeTimestamp, time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), -1},
		{sqlexec.TypeTimestamp, time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), -946684800_000001},
		// The wall clock where the time is, for a timestamp; the instant
		// for a timestamptz.
		{sqlexec.TypeTimestamp, time.Date(2000, 1, 1, 5, 0, 0, 0, east), 5 * 3600_000_000},
		{sqlexec.TypeTimestampTZ, time.Date(2000, 1, 1, 5, 0, 0, 0, east), 0},
		{sqlexec.TypeTimestampTZ, time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC), pgMinTimestampSec * 1_000_000},
	} {
		got, err := pgEncoderFor(tc.typ)(nil, tc.in)
		if err != nil {
			t.Errorf("%s %v: %v", tc.typ, tc.in, err)
			continue
		}
		var v int64
		switch n := binary.BigEndian.Uint32(got); n {
		case 4:
			v = int64(int32(binary.BigEndian.Uint32(got[4:])))
		case 8:
			v = int64(binary.BigEndian.Uint64(got[4:]))
		default:
			t.Fatalf("%s: length %d", tc.typ, n)
		}
		if v != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.typ, tc.in, v, tc.want)
		}
	}
	for _, tc := range []struct {
		typ sqlexec.Type
		in  time.Time
	}{
		{sqlexec.TypeDate, time.Date(-4713, 11, 23, 0, 0, 0, 0, time.UTC)},
		{sqlexec.TypeDate, time.Date(5874898, 1, 1, 0, 0, 0, 0, time.UTC)},
		// Its day count would wrap an int32 to a valid date.
		{sqlexec.TypeDate, time.Date(12_000_000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{sqlexec.TypeTimestamp, time.Date(294277, 1, 1, 0, 0, 0, 0, time.UTC)},
		{sqlexec.TypeTimestampTZ, time.Date(-4713, 11, 23, 23, 59, 59, 999999000, time.UTC)},
		{sqlexec.TypeTimestampTZ, time.Date(1<<40, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := pgEncoderFor(tc.typ)(nil, tc.in); err == nil || !strings.Contains(err.Error(), "out of PostgreSQL's range") {
			t.Errorf("%s %v: %v", tc.typ, tc.in, err)
		}
	}
}

// copyAll reads r to its end n bytes at a time.
func copyAll(r io.Reader, n int) ([]byte, error) {
	var out []byte
	p := make([]byte, n)
	for {
		k, err := r.Read(p)
		out = append(out, p[:k]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestPgCopyReaderFormat(t *testing.T) {
	cols := []sqlexec.Column{{Name: "id", Type: sqlexec.TypeInt64}, {Name: "t", Type: sqlexec.TypeText}, {Name: "b", Type: sqlexec.TypeBool}}
	rows := func() sqlexec.Rows {
		return &sqlexectest.CycleRows{Cols: cols, N: 2, Rows: [][]any{{int64(1), "ab", nil}, {int64(-2), nil, true}}}
	}
	want := []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x03" + "\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01" + "\x00\x00\x00\x02ab" + "\xff\xff\xff\xff" +
		"\x00\x03" + "\x00\x00\x00\x08\xff\xff\xff\xff\xff\xff\xff\xfe" + "\xff\xff\xff\xff" + "\x00\x00\x00\x01\x01" +
		"\xff\xff")
	// However the reads cut the stream.
	for _, n := range []int{1, 7, 65531} {
		got, err := copyAll(NewPgCopyReader(rows(), cols, nil), n)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("reads of %d: %q, %v\nwant %q", n, got, err, want)
		}
	}
}

// TestPgCopyReaderLetsGoOfAHugeRow: the buffer a huge row needed is not
// kept for the rows after it.
func TestPgCopyReaderLetsGoOfAHugeRow(t *testing.T) {
	cols := []sqlexec.Column{{Name: "t", Type: sqlexec.TypeText}}
	huge := strings.Repeat("x", pgCopyBufKeep+1)
	rows := &sqlexectest.CycleRows{Cols: cols, N: 1000, Rows: [][]any{{huge}}}
	for range 999 {
		rows.Rows = append(rows.Rows, []any{"small"})
	}
	r := NewPgCopyReader(rows, cols, nil)
	got, err := copyAll(r, 65531)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(pgCopyHeader) + 2 + 4 + len(huge) + 999*(2+4+5) + len(pgCopyTrailer); len(got) != want {
		t.Errorf("%d bytes, want %d", len(got), want)
	}
	if cap(r.buf) > pgCopyBufKeep {
		t.Errorf("kept a buffer of %d bytes", cap(r.buf))
	}
}

func TestPgCopyReaderErrors(t *testing.T) {
	cols := []sqlexec.Column{{Name: "amount", Type: sqlexec.TypeDecimal}}
	gone := errors.New("source went away")
	src := &failingRows{CycleRows: sqlexectest.CycleRows{Cols: cols, N: 5000, Rows: [][]any{{"1.5"}}}, err: gone}
	if _, err := copyAll(NewPgCopyReader(src, cols, nil), 65531); !errors.Is(err, gone) {
		t.Errorf("failing source: %v", err)
	}
	for _, bad := range []any{"1.5.", 1.5} {
		src := &sqlexectest.CycleRows{Cols: cols, N: 5000, Rows: [][]any{{"1.5"}}}
		src.Rows = append(src.Rows, []any{bad})
		_, err := copyAll(NewPgCopyReader(src, cols, nil), 65531)
		if err == nil || !strings.HasPrefix(err.Error(), `column "amount": `) {
			t.Errorf("%#v: %v", bad, err)
		}
	}
	r := NewPgCopyReader(&sqlexectest.CycleRows{Cols: cols, N: 5000, Rows: [][]any{{"1.5"}}}, cols, nil)
	if _, err := r.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := r.Read(make([]byte, 100)); !errors.Is(err, errPgCopyStopped) {
		t.Errorf("read after stop: %v", err)
	}
}

// TestPgCopyEncodesWithoutAllocating: once its buffer has grown, the
// reader encodes rows without allocating.
func TestPgCopyEncodesWithoutAllocating(t *testing.T) {
	rows := entryRowsNumbered(1 << 30)
	r := NewPgCopyReader(rows, rows.Cols, nil)
	p := make([]byte, 65531)
	read := func() {
		if _, err := r.Read(p); err != nil {
			t.Fatal(err)
		}
	}
	read()
	before := rows.Yielded()
	if allocs := testing.AllocsPerRun(100, read); allocs != 0 {
		t.Errorf("%.1f allocations per read of %d rows", allocs, (rows.Yielded()-before)/101)
	}
}

// BenchmarkPgCopyEncode encodes rows of the entries table; an op is one
// row.
func BenchmarkPgCopyEncode(b *testing.B) {
	rows := entryRowsNumbered(b.N)
	r := NewPgCopyReader(rows, rows.Cols, nil)
	p := make([]byte, 65531)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for {
		k, err := r.Read(p)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/row")
}

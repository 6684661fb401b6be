package resultsink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// pgNumericWords is a binary numeric as its 16-bit words: ndigits, weight,
// sign, dscale, digits.
func pgNumericWords(t testing.TB, field []byte) []int {
	t.Helper()
	n := int(int32(binary.BigEndian.Uint32(field)))
	if n != len(field)-4 || n%2 != 0 {
		t.Fatalf("field length %d for %d bytes", n, len(field)-4)
	}
	var words []int
	for i := 4; i < len(field); i += 2 {
		w := int(binary.BigEndian.Uint16(field[i:]))
		if i == 6 { // the weight is signed
			w = int(int16(w))
		}
		words = append(words, w)
	}
	return words
}

func TestPgDecimalBinary(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int // ndigits, weight, sign, dscale, digits...
	}{
		{"0", []int{0, 0, 0, 0}},
		{"0.00", []int{0, 0, 0, 2}},
		{"-0.00", []int{0, 0, 0, 2}},
		{"-0", []int{0, 0, 0, 0}},
		{"000", []int{0, 0, 0, 0}},
		{"1", []int{1, 0, 0, 0, 1}},
		{"-1", []int{1, 0, 0x4000, 0, 1}},
		{"+1", []int{1, 0, 0, 0, 1}},
		{"0.0001", []int{1, -1, 0, 4, 1}},
		{"0.00001", []int{1, -2, 0, 5, 1000}},
		{"10000", []int{1, 1, 0, 0, 1}},
		{"100000000", []int{1, 2, 0, 0, 1}},
		{"99999999.99", []int{3, 1, 0, 2, 9999, 9999, 9900}},
		{"12.50", []int{2, 0, 0, 2, 12, 5000}},
		{"-00012.3400", []int{2, 0, 0x4000, 4, 12, 3400}},
		{".5", []int{1, -1, 0, 1, 5000}},
		{"5.", []int{1, 0, 0, 0, 5}},
		{"123456789012345678901234567890.123456789",
			[]int{11, 7, 0, 9, 12, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000}},
		{"0.000000000000000000000000000001", []int{1, -8, 0, 30, 100}},
		{"1000000000000.000000000001", []int{7, 3, 0, 12, 1, 0, 0, 0, 0, 0, 1}},
		{"18446744073709551615", []int{5, 4, 0, 0, 1844, 6744, 737, 955, 1615}},
		{"NaN", []int{0, 0, 0xc000, 0}},
		{"Infinity", []int{0, 0, 0xd000, 0}},
		{"-Infinity", []int{0, 0, 0xf000, 0}},
	} {
		got, err := pgEncodeDecimal(nil, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if w := pgNumericWords(t, got); fmt.Sprint(w) != fmt.Sprint(tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, w, tc.want)
		}
	}
}

func TestPgUint64Binary(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want []int
	}{
		{0, []int{0, 0, 0, 0}},
		{1, []int{1, 0, 0, 0, 1}},
		{9999, []int{1, 0, 0, 0, 9999}},
		{10000, []int{1, 1, 0, 0, 1}},
		{100010000, []int{2, 2, 0, 0, 1, 1}},
		{18446744073709551615, []int{5, 4, 0, 0, 1844, 6744, 737, 955, 1615}},
	} {
		got, err := pgEncodeUint64(nil, tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if w := pgNumericWords(t, got); fmt.Sprint(w) != fmt.Sprint(tc.want) {
			t.Errorf("%d: %v, want %v", tc.in, w, tc.want)
		}
	}
}

func TestPgDecimalRefusals(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `invalid decimal ""`},
		{"-", `invalid decimal "-"`},
		{".", `invalid decimal "."`},
		{"-+5", `invalid decimal "-+5"`},
		{"1e5", `invalid decimal "1e5"`},
		{" 1", `invalid decimal " 1"`},
		{"1.2.3", `invalid decimal "1.2.3"`},
		{"nan", `invalid decimal "nan"`},
		{"-NaN", `invalid decimal "-NaN"`},
		{"+Infinity", `invalid decimal "+Infinity"`},
		{"0." + strings.Repeat("0", 16384), "decimal of 16384 digits after the point is out of PostgreSQL's range"},
		{"1" + strings.Repeat("0", 131072), "decimal of 131073 digits before the point is out of PostgreSQL's range"},
	} {
		if _, err := parsePgDecimal(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("%.20q: %v, want %s", tc.in, err, tc.want)
		}
	}
	// The largest PostgreSQL keeps.
	for _, s := range []string{"0." + strings.Repeat("0", 16382) + "1", "-" + strings.Repeat("9", 131072)} {
		if _, err := parsePgDecimal(s); err != nil {
			t.Errorf("%.20q...: %v", s, err)
		}
	}
}

// decimalSyntax is what a decimal literal may look like.
var decimalSyntax = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$`)

// FuzzPgDecimal checks the binary numeric of any string against math/big:
// a literal is accepted exactly when it is one, and its binary form is
// normalized (no leading or trailing zero digit, zero without digits or
// sign), has its value, and its fraction's digit count as display scale.
func FuzzPgDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0.00", "12.50", "0.00001", "10000", "-00012.3400", ".5", "5.", "+7", "-+5", "1e5",
		"123456789012345678901234567890.123456789", "NaN", "-Infinity", "1.2.3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		field, err := pgEncodeDecimal(nil, s)
		switch s {
		case "NaN", "Infinity", "-Infinity":
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if err != nil && strings.Contains(err.Error(), "out of PostgreSQL's range") {
			return
		}
		if valid := decimalSyntax.MatchString(s); valid != (err == nil) {
			t.Fatalf("%q: valid %t, error %v", s, valid, err)
		}
		if err != nil {
			return
		}
		w := pgNumericWords(t, field)
		ndigits, weight, sign, dscale, digits := w[0], w[1], w[2], w[3], w[4:]
		if ndigits != len(digits) {
			t.Fatalf("%q: ndigits %d of %d", s, ndigits, len(digits))
		}
		_, frac, _ := strings.Cut(s, ".")
		if dscale != len(frac) {
			t.Fatalf("%q: dscale %d, want %d", s, dscale, len(frac))
		}
		if ndigits > 0 && (digits[0] == 0 || digits[ndigits-1] == 0) {
			t.Fatalf("%q: digits %v not stripped", s, digits)
		}
		// The value is the digits, run together, times 10000^(weight-ndigits+1).
		var lit strings.Builder
		if sign == pgNumericNeg {
			lit.WriteByte('-')
		} else if sign != pgNumericPos {
			t.Fatalf("%q: sign %#x", s, sign)
		}
		lit.WriteByte('0')
		for _, d := range digits {
			if d >= 10000 {
				t.Fatalf("%q: digit %d", s, d)
			}
			fmt.Fprintf(&lit, "%04d", d)
		}
		fmt.Fprintf(&lit, "e%d", 4*(weight-ndigits+1))
		got, ok := new(big.Rat).SetString(lit.String())
		if !ok {
			t.Fatalf("%q: math/big cannot read %s", s, lit.String())
		}
		want, ok := new(big.Rat).SetString(strings.TrimPrefix(s, "+"))
		if !ok {
			t.Fatalf("%q: math/big cannot read it", s)
		}
		if got.Cmp(want) != 0 {
			t.Fatalf("%q: encodes %s", s, got.FloatString(dscale))
		}
		if want.Sign() == 0 && (sign != pgNumericPos || ndigits != 0 || weight != 0) {
			t.Fatalf("%q: zero as %v", s, w)
		}
	})
}

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
		return &cycleRows{cols: cols, n: 2, rows: [][]any{{int64(1), "ab", nil}, {int64(-2), nil, true}}}
	}
	want := []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x03" + "\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01" + "\x00\x00\x00\x02ab" + "\xff\xff\xff\xff" +
		"\x00\x03" + "\x00\x00\x00\x08\xff\xff\xff\xff\xff\xff\xff\xfe" + "\xff\xff\xff\xff" + "\x00\x00\x00\x01\x01" +
		"\xff\xff")
	// However the reads cut the stream.
	for _, n := range []int{1, 7, 65531} {
		got, err := copyAll(newPgCopyReader(rows(), cols), n)
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
	rows := &cycleRows{cols: cols, n: 1000, rows: [][]any{{huge}}}
	for range 999 {
		rows.rows = append(rows.rows, []any{"small"})
	}
	r := newPgCopyReader(rows, cols)
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

// failingRows fail after their rows.
type failingRows struct {
	cycleRows
	err error
}

func (r *failingRows) Err() error { return r.err }

func TestPgCopyReaderErrors(t *testing.T) {
	cols := []sqlexec.Column{{Name: "amount", Type: sqlexec.TypeDecimal}}
	gone := errors.New("source went away")
	src := &failingRows{cycleRows: cycleRows{cols: cols, n: 5000, rows: [][]any{{"1.5"}}}, err: gone}
	if _, err := copyAll(newPgCopyReader(src, cols), 65531); !errors.Is(err, gone) {
		t.Errorf("failing source: %v", err)
	}
	for _, bad := range []any{"1.5.", 1.5} {
		src := &cycleRows{cols: cols, n: 5000, rows: [][]any{{"1.5"}}}
		src.rows = append(src.rows, []any{bad})
		_, err := copyAll(newPgCopyReader(src, cols), 65531)
		if err == nil || !strings.HasPrefix(err.Error(), `column "amount": `) {
			t.Errorf("%#v: %v", bad, err)
		}
	}
	r := newPgCopyReader(&cycleRows{cols: cols, n: 5000, rows: [][]any{{"1.5"}}}, cols)
	if _, err := r.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := r.Read(make([]byte, 100)); !errors.Is(err, errPgCopyStopped) {
		t.Errorf("read after stop: %v", err)
	}
}

// entryRowsNumbered are rows of the entries table with their row number,
// as Backend.Write hands them to load.
func entryRowsNumbered(n int) *cycleRows {
	r := newEntryRows(n)
	r.cols = append(append([]sqlexec.Column(nil), entryCols...), sqlexec.Column{Name: RowColumn, Type: sqlexec.TypeInt64})
	for i := range r.rows {
		r.rows[i] = append(r.rows[i], int64(i+1))
	}
	return r
}

// TestPgCopyEncodesWithoutAllocating: once its buffer has grown, the
// reader encodes rows without allocating.
func TestPgCopyEncodesWithoutAllocating(t *testing.T) {
	rows := entryRowsNumbered(1 << 30)
	r := newPgCopyReader(rows, rows.cols)
	p := make([]byte, 65531)
	read := func() {
		if _, err := r.Read(p); err != nil {
			t.Fatal(err)
		}
	}
	read()
	before := rows.i
	if allocs := testing.AllocsPerRun(100, read); allocs != 0 {
		t.Errorf("%.1f allocations per read of %d rows", allocs, (rows.i-before)/101)
	}
}

// BenchmarkPgCopyEncode encodes rows of the entries table; an op is one
// row.
func BenchmarkPgCopyEncode(b *testing.B) {
	rows := entryRowsNumbered(b.N)
	r := newPgCopyReader(rows, rows.cols)
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

package wire

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// readLoadData splits a LOAD DATA stream into rows of fields as MySQL
// reads it (FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY
// '\n'): a backslash escapes the next byte (\0, \b, \n, \r, \t and \Z are
// NUL, backspace, newline, carriage return, tab and Ctrl-Z, any other byte
// is itself), a field that is \N alone is NULL (nil), and only an unescaped
// tab or newline ends a field or a line. It fails the test on a backslash
// that ends the stream, or a last line without its newline.
func readLoadData(t *testing.T, stream []byte) [][][]byte {
	t.Helper()
	var rows [][][]byte
	var row [][]byte
	field, null := []byte{}, false
	for i := 0; i < len(stream); i++ {
		c := stream[i]
		switch c {
		case '\\':
			if i++; i == len(stream) {
				t.Fatalf("stream %q ends in a backslash", stream)
			}
			e := stream[i]
			if e == 'N' && len(field) == 0 && !null && (i+1 == len(stream) || stream[i+1] == '\t' || stream[i+1] == '\n') {
				null = true
				continue
			}
			if u, ok := map[byte]byte{'0': 0, 'b': '\b', 'n': '\n', 'r': '\r', 't': '\t', 'Z': 0x1a}[e]; ok {
				e = u
			}
			field = append(field, e)
			continue
		case '\t', '\n':
			if null {
				field = nil
			}
			row = append(row, field)
			field, null = []byte{}, false
			if c == '\n' {
				rows, row = append(rows, row), nil
			}
			continue
		}
		if null {
			t.Fatalf("stream %q: \\N followed by %q in a field", stream, c)
		}
		field = append(field, c)
	}
	if len(row) > 0 || len(field) > 0 || null {
		t.Fatalf("stream %q: last line without its newline", stream)
	}
	return rows
}

// FuzzLoadDataEscaped: any bytes, escaped, hold no raw tab or newline and
// read back, by LOAD DATA's rules, as exactly themselves, never as NULL.
func FuzzLoadDataEscaped(f *testing.F) {
	for _, s := range []string{"", `\N`, "N", `\`, "\\\\", "a\tb\nc\rd\x00e\\f", "\x1a\b", "\\\t", "ü\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		esc := appendLoadDataEscaped(nil, b)
		if bytes.ContainsAny(esc, "\t\n") {
			t.Fatalf("%q escapes as %q, with a raw tab or newline", b, esc)
		}
		if s := appendLoadDataEscaped(nil, string(b)); !bytes.Equal(s, esc) {
			t.Fatalf("%q escapes as %q from a string, %q from bytes", b, s, esc)
		}
		rows := readLoadData(t, append(esc, '\n'))
		if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] == nil || !bytes.Equal(rows[0][0], b) {
			t.Fatalf("%q escapes as %q, which reads back as %q", b, esc, rows)
		}
	})
}

// FuzzLoadDataRow: a row of bytes, text (or NULL) and a number, streamed
// by LoadDataReader, reads back as one line of those same fields.
func FuzzLoadDataRow(f *testing.F) {
	f.Add([]byte(`\N`), "\t\n", false, int64(1))
	f.Add([]byte{}, "", true, int64(-1))
	f.Add([]byte("a\\\tb"), "N", false, int64(0))
	cols := []sqlexec.Column{{Name: "b", Type: sqlexec.TypeBytes}, {Name: "t", Type: sqlexec.TypeText}, {Name: "n", Type: sqlexec.TypeInt64}}
	f.Fuzz(func(t *testing.T, b []byte, s string, null bool, n int64) {
		row := []any{b, s, n}
		if null {
			row[1] = nil
		}
		stream, err := copyAll(NewLoadDataReader(&sqlexectest.CycleRows{Cols: cols, N: 1, Rows: [][]any{row}}, cols, nil), 4096)
		if err != nil {
			t.Fatal(err)
		}
		rows := readLoadData(t, stream)
		if len(rows) != 1 || len(rows[0]) != 3 {
			t.Fatalf("%#v streams as %q: %q", row, stream, rows)
		}
		got := rows[0]
		if !bytes.Equal(got[0], b) || got[0] == nil || null != (got[1] == nil) || !null && string(got[1]) != s ||
			string(got[2]) != strconv.FormatInt(n, 10) {
			t.Fatalf("%#v streams as %q, which reads back as %q", row, stream, got)
		}
	})
}

// errTypedPath is what the stand-in decoder answers: the value took the
// typed path.
var errTypedPath = errors.New("typed path")

// typedPathRows stand in for a MySQL source whose decoder refuses every
// value, so that only the values a pass-through sends as they are succeed.
type typedPathRows struct{ sqlexec.WireRows }

func (typedPathRows) DecodeWire(int, []byte) (any, error) { return nil, errTypedPath }

// The text a MySQL source sends, which LOAD DATA reads as the same value.
var (
	mysqlIntegerText  = regexp.MustCompile(`^-?[0-9]+$`)
	mysqlDecimalText  = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	mysqlDateTimeText = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$`)
)

// FuzzMyWireField: of a MySQL source's raw values, those the pass-through
// sends without decoding are, for integers, decimals, dates and
// timestamps, the plain text LOAD DATA reads as that value (a valid date
// and time, at most microseconds; nothing to escape), and for text, JSON
// and bytes read back by LOAD DATA's rules as the raw value.
func FuzzMyWireField(f *testing.F) {
	for _, s := range []string{"12", "-0", "12.50", "1.", "2024-02-29", "2023-02-29", "2024-00-10", "2024-01-02 03:04:05.123456",
		"2024-01-02 03:04:05.1234567", "2024-01-02 24:00:00", "a\tb\\", `\N`, "1\n"} {
		f.Add(uint8(0), s)
	}
	cols := []sqlexec.Column{
		{Type: sqlexec.TypeInt64}, {Type: sqlexec.TypeUint64}, {Type: sqlexec.TypeDecimal, Precision: 12, Scale: 2},
		{Type: sqlexec.TypeDecimal}, {Type: sqlexec.TypeFloat64}, {Type: sqlexec.TypeBool}, {Type: sqlexec.TypeDate},
		{Type: sqlexec.TypeTimestamp}, {Type: sqlexec.TypeTimestampTZ}, {Type: sqlexec.TypeText}, {Type: sqlexec.TypeJSON},
		{Type: sqlexec.TypeBytes},
	}
	f.Fuzz(func(t *testing.T, which uint8, s string) {
		c := cols[int(which)%len(cols)]
		raw := []byte(s)
		out, err := myWireEncoderFor(c, typedPathRows{}, 0)(nil, raw)
		if errors.Is(err, errTypedPath) {
			return
		}
		if err != nil {
			t.Fatalf("%s %q: %v", c.Type, s, err)
		}
		var ok bool
		switch c.Type {
		case sqlexec.TypeInt64, sqlexec.TypeUint64:
			ok = string(out) == s && mysqlIntegerText.MatchString(s)
		case sqlexec.TypeDecimal:
			ok = string(out) == s && mysqlDecimalText.MatchString(s) && MySQLDecimalFits(c)
		case sqlexec.TypeDate:
			_, perr := time.Parse(time.DateOnly, s)
			ok = string(out) == s && perr == nil && s[:4] != "0000"
		case sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
			_, perr := time.Parse("2006-01-02 15:04:05.999999", s)
			ok = string(out) == s && perr == nil && mysqlDateTimeText.MatchString(s) && s[:4] != "0000"
		case sqlexec.TypeText, sqlexec.TypeJSON, sqlexec.TypeBytes:
			rows := readLoadData(t, append(out, '\n'))
			ok = len(rows) == 1 && len(rows[0]) == 1 && rows[0][0] != nil && string(rows[0][0]) == s
		}
		if !ok {
			t.Fatalf("%s %q passes through as %q", c.Type, s, out)
		}
	})
}

// FuzzMySQLValues: the LOAD DATA text of integers, floats, booleans, dates
// and timestamps reads back as the same values: numbers as Go reads them
// (floats correctly rounded, NaN and infinities refused), dates and times
// byte for byte as the layouts write them (the date where the time is, the
// timestamp in UTC), times finer than a microsecond refused.
func FuzzMySQLValues(f *testing.F) {
	f.Add(int64(0), uint64(0), 0.0, false, int64(0), int64(0), int32(0))
	f.Add(int64(math.MinInt64), uint64(math.MaxUint64), math.NaN(), true, int64(-62135596800), int64(999_999_000), int32(-3600))
	f.Add(int64(math.MaxInt64), uint64(1), math.Inf(1), true, int64(253402300799), int64(120_000), int32(5*3600))
	f.Add(int64(-1), uint64(10), -5e-324, false, int64(-62135596800-86400), int64(1), int32(0))
	f.Fuzz(func(t *testing.T, i int64, u uint64, x float64, b bool, sec, nsec int64, offset int32) {
		text := func(typ sqlexec.Type, v any) (string, error) {
			out, err := AppendMySQLValue(nil, sqlexec.Column{Type: typ}, v)
			return string(out), err
		}
		if s, err := text(sqlexec.TypeInt64, i); err != nil || s != strconv.FormatInt(i, 10) {
			t.Fatalf("int64 %d: %q, %v", i, s, err)
		}
		if s, err := text(sqlexec.TypeUint64, u); err != nil || s != strconv.FormatUint(u, 10) {
			t.Fatalf("uint64 %d: %q, %v", u, s, err)
		}
		if s, err := text(sqlexec.TypeBool, b); err != nil || s != map[bool]string{false: "0", true: "1"}[b] {
			t.Fatalf("bool %t: %q, %v", b, s, err)
		}
		s, err := text(sqlexec.TypeFloat64, x)
		if finite := !math.IsNaN(x) && !math.IsInf(x, 0); finite != (err == nil) || finite && !sameFloat(s, x) {
			t.Fatalf("float %v: %q, %v", x, s, err)
		}
		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(offset)))
		if s, err := text(sqlexec.TypeDate, tm); err != nil || s != tm.Format(time.DateOnly) {
			t.Fatalf("date %v: %q, %v", tm, s, err)
		}
		for _, typ := range []sqlexec.Type{sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ} {
			s, err := text(typ, tm)
			if exact := tm.Nanosecond()%1000 == 0; exact != (err == nil) || exact && s != tm.UTC().Format(mysqlDateTime) {
				t.Fatalf("%s %v: %q, %v", typ, tm, s, err)
			}
		}
	})
}

package wire

import (
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// readPgString reads lit as one quoted string literal (with
// standard_conforming_strings: a quote inside is two quotes, a backslash is
// itself) cast to sqlType, and returns the string's value. It fails the
// test unless the literal's closing quote is the one before the cast: a
// quote that could end it earlier would let the rest be read as SQL.
func readPgString(t *testing.T, lit, sqlType string) string {
	t.Helper()
	body, ok := strings.CutPrefix(lit, "'")
	if !ok {
		t.Fatalf("literal %q does not start with a quote", lit)
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		if body[i] != '\'' {
			b.WriteByte(body[i])
			continue
		}
		if i+1 < len(body) && body[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		if rest := body[i+1:]; rest != "::"+sqlType {
			t.Fatalf("literal %q ends before %q", lit, rest)
		}
		return b.String()
	}
	t.Fatalf("literal %q does not end", lit)
	return ""
}

// FuzzPgLiteralText: the literal of any text or JSON without NUL and in
// UTF-8 is one quoted string, whatever quotes and backslashes it holds,
// that reads back as the text; other text is refused. The same string as a
// decimal is accepted exactly when the decimal parser accepts it, and as
// bytes reads back as its bytes.
func FuzzPgLiteralText(f *testing.F) {
	for _, s := range []string{"", "'", "''", "a'b", "'; DROP TABLE t; --", `\'`, `\`, "'::INT, '", "Grüße 😀", "a\x00b", "\xff", "12.50", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range []sqlexec.Type{sqlexec.TypeText, sqlexec.TypeJSON} {
			lit, err := PgLiteral(typ, "TEXT", s)
			if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
				if err == nil {
					t.Fatalf("%s %q: literal %q, want it refused", typ, s, lit)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s %q: %v", typ, s, err)
			}
			if got := readPgString(t, lit, "TEXT"); got != s {
				t.Fatalf("%s %q: literal %q reads as %q", typ, s, lit, got)
			}
		}
		lit, err := PgLiteral(sqlexec.TypeDecimal, "NUMERIC", s)
		if _, perr := parsePgDecimal(s); (err == nil) != (perr == nil) {
			t.Fatalf("decimal %q: %v, where the parser says %v", s, err, perr)
		}
		if err == nil && readPgString(t, lit, "NUMERIC") != s {
			t.Fatalf("decimal %q: literal %q", s, lit)
		}
		lit, err = PgLiteral(sqlexec.TypeBytes, "BYTEA", []byte(s))
		if err != nil {
			t.Fatalf("bytes %q: %v", s, err)
		}
		h, ok := strings.CutPrefix(readPgString(t, lit, "BYTEA"), `\x`)
		if b, err := hex.DecodeString(h); !ok || err != nil || string(b) != s {
			t.Fatalf("bytes %q: literal %q", s, lit)
		}
	})
}

// FuzzPgLiteralValues: the literals of integers, floats and booleans read
// back as their values; those of dates and times are accepted within years
// 1 to 9999 (as written) and to the microsecond, and read back as the date
// where the time is, the wall clock where it is (timestamp) or the instant
// (timestamptz).
func FuzzPgLiteralValues(f *testing.F) {
	f.Add(int64(0), 0.0, uint64(0), false, int64(0), int64(0), int32(0))
	f.Add(int64(math.MinInt64), math.Inf(-1), uint64(math.MaxUint64), true, int64(-62135596800), int64(999_999_000), int32(-3600))
	f.Add(int64(math.MaxInt64), math.NaN(), uint64(1), true, int64(253402300799), int64(999_999_999), int32(3600))
	f.Add(int64(-1), 5e-324, uint64(10), false, int64(-62135596800+1800), int64(0), int32(3600))
	f.Fuzz(func(t *testing.T, i int64, x float64, u uint64, b bool, sec, nsec int64, offset int32) {
		if lit, err := PgLiteral(sqlexec.TypeInt64, "BIGINT", i); err != nil || lit != strconv.FormatInt(i, 10) {
			t.Fatalf("int64 %d: %q, %v", i, lit, err)
		}
		if lit, err := PgLiteral(sqlexec.TypeUint64, "NUMERIC(20,0)", u); err != nil || lit != strconv.FormatUint(u, 10) {
			t.Fatalf("uint64 %d: %q, %v", u, lit, err)
		}
		if lit, err := PgLiteral(sqlexec.TypeBool, "BOOLEAN", b); err != nil || lit != strings.ToUpper(strconv.FormatBool(b)) {
			t.Fatalf("bool %t: %q, %v", b, lit, err)
		}
		lit, err := PgLiteral(sqlexec.TypeFloat64, "DOUBLE PRECISION", x)
		if err != nil {
			t.Fatalf("float %v: %v", x, err)
		}
		if s := readPgString(t, lit, "DOUBLE PRECISION"); !sameFloat(s, x) {
			t.Fatalf("float %v: literal %q", x, lit)
		}
		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(offset)))
		checkPgTimeLiteral(t, sqlexec.TypeDate, "DATE", tm, tm, time.DateOnly)
		wall := time.Date(tm.Year(), tm.Month(), tm.Day(), tm.Hour(), tm.Minute(), tm.Second(), tm.Nanosecond(), time.UTC)
		checkPgTimeLiteral(t, sqlexec.TypeTimestamp, "TIMESTAMP", tm, wall, "2006-01-02 15:04:05.999999")
		checkPgTimeLiteral(t, sqlexec.TypeTimestampTZ, "TIMESTAMPTZ", tm, tm, "2006-01-02 15:04:05.999999Z07:00")
	})
}

// sameFloat reports whether PostgreSQL's float8 input reads s as x: NaN
// and the infinities by name, numbers as Go does (correctly rounded).
func sameFloat(s string, x float64) bool {
	switch s {
	case "NaN":
		return math.IsNaN(x)
	case "Infinity", "-Infinity":
		return math.IsInf(x, 1) == (s == "Infinity") && math.IsInf(x, 0)
	}
	y, err := strconv.ParseFloat(s, 64)
	return err == nil && math.Float64bits(y) == math.Float64bits(x)
}

// checkPgTimeLiteral: tm as a value of typ is accepted when written in a
// year from 1 to 9999 and exact to the microsecond, and its literal reads
// back, with layout, as want.
func checkPgTimeLiteral(t *testing.T, typ sqlexec.Type, sqlType string, tm, want time.Time, layout string) {
	t.Helper()
	lit, err := PgLiteral(typ, sqlType, tm)
	written := want
	if typ == sqlexec.TypeTimestampTZ {
		written = want.UTC()
	}
	ok := written.Year() >= 1 && written.Year() <= 9999 && (typ == sqlexec.TypeDate || tm.Nanosecond()%1000 == 0)
	if !ok || err != nil {
		if ok || err == nil {
			t.Fatalf("%s %v: literal %q, %v", typ, tm, lit, err)
		}
		return
	}
	got, perr := time.Parse(layout, readPgString(t, lit, sqlType))
	if typ == sqlexec.TypeDate {
		y, m, d := want.Date()
		want = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	if perr != nil || !got.Equal(want) {
		t.Fatalf("%s %v: literal %q reads as %v (%v)", typ, tm, lit, got, perr)
	}
}

package wire

import (
	"encoding/binary"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// PostgreSQL's ranges, as dates and times, to check the encoders' own
// arithmetic against.
var (
	pgFirstDay       = time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC)
	pgLastDay        = time.Date(5874897, 12, 31, 0, 0, 0, 0, time.UTC)
	pgTimestampLimit = time.Date(294277, 1, 1, 0, 0, 0, 0, time.UTC) // the first one out of range
)

// copyField returns the value of a COPY field, checking its length.
func copyField(t *testing.T, field []byte, size int) []byte {
	t.Helper()
	if len(field) != 4+size || int(binary.BigEndian.Uint32(field)) != size {
		t.Fatalf("field %x, want a length of %d and the value", field, size)
	}
	return field[4:]
}

// pgTimeOf reads a binary timestamp as PostgreSQL documents it:
// microseconds from 2000-01-01 00:00 (UTC for a timestamptz).
func pgTimeOf(b []byte) time.Time {
	us := int64(binary.BigEndian.Uint64(b))
	sec, frac := us/1_000_000, us%1_000_000
	if frac < 0 {
		sec, frac = sec-1, frac+1_000_000
	}
	return time.Unix(pgEpochUnix+sec, frac*1000).UTC()
}

// FuzzPgCopyValues: the binary COPY fields of integers, floats, booleans,
// unsigned integers, dates, timestamps and timestamptzs decode back to the
// same values (with pgx's decoders, or by the documented format where pgx's
// arithmetic would overflow), and values outside PostgreSQL's ranges, or
// finer than a microsecond, are refused.
func FuzzPgCopyValues(f *testing.F) {
	f.Add(int64(0), 0.0, false, uint64(0), int64(0), int64(0), int32(0))
	f.Add(int64(math.MinInt64), math.Inf(-1), true, uint64(math.MaxUint64), int64(-210863520000), int64(999_999_999), int32(-50400))
	f.Add(int64(math.MaxInt64), math.NaN(), true, uint64(10000), int64(9224318015999), int64(999_999_000), int32(3600))
	f.Add(int64(-1), math.Copysign(0, -1), false, uint64(100010000), int64(946684800), int64(1000), int32(5*3600))
	f.Add(int64(1), 5e-324, true, uint64(1), int64(185329407744000), int64(0), int32(0))
	// Either side of PostgreSQL's first day and time, its last day, and
	// the end of its timestamps.
	for _, sec := range []int64{-210866803200, 185331706992000 + 86399, 9224318016000} {
		f.Add(int64(0), 0.0, false, uint64(0), sec, int64(0), int32(0))
		f.Add(int64(0), 0.0, false, uint64(0), sec-1, int64(999_999_000), int32(0))
		f.Add(int64(0), 0.0, false, uint64(0), sec+1, int64(0), int32(0))
	}
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, i int64, x float64, b bool, u uint64, sec, nsec int64, offset int32) {
		var i8 int64
		if err := m.Scan(pgtype.Int8OID, pgtype.BinaryFormatCode, copyField(t, must(pgEncodeInt8(nil, i)), 8), &i8); err != nil || i8 != i {
			t.Fatalf("int8 %d reads back as %d (%v)", i, i8, err)
		}
		var f8 float64
		if err := m.Scan(pgtype.Float8OID, pgtype.BinaryFormatCode, copyField(t, must(pgEncodeFloat8(nil, x)), 8), &f8); err != nil ||
			math.Float64bits(f8) != math.Float64bits(x) {
			t.Fatalf("float8 %v reads back as %v (%v)", x, f8, err)
		}
		var bo bool
		if err := m.Scan(pgtype.BoolOID, pgtype.BinaryFormatCode, copyField(t, must(pgEncodeBool(nil, b)), 1), &bo); err != nil || bo != b {
			t.Fatalf("bool %t reads back as %t (%v)", b, bo, err)
		}
		field := must(pgEncodeUint64(nil, u))
		var n pgtype.Numeric
		if err := m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, copyField(t, field, len(field)-4), &n); err != nil ||
			numericRat(n).Cmp(new(big.Rat).SetInt(new(big.Int).SetUint64(u))) != 0 {
			t.Fatalf("uint64 %d reads back as %+v (%v)", u, n, err)
		}

		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(offset)))
		checkPgDate(t, m, tm)
		if sec < -pgUnixSecondsBound || sec > pgUnixSecondsBound {
			// Where Go's own arithmetic wraps: refused, whatever it is.
			for _, typ := range []sqlexec.Type{sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ} {
				if _, err := pgEncoderFor(typ)(nil, tm); err == nil {
					t.Fatalf("%s of %d s from 1970 accepted", typ, sec)
				}
			}
			return
		}
		y, mo, d := tm.Date()
		h, mi, s := tm.Clock()
		checkPgTimestamp(t, sqlexec.TypeTimestamp, tm, time.Date(y, mo, d, h, mi, s, tm.Nanosecond(), time.UTC))
		checkPgTimestamp(t, sqlexec.TypeTimestampTZ, tm, tm)
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// checkPgDate: the date of tm (where it is) is sent if PostgreSQL holds it,
// and reads back as itself.
func checkPgDate(t *testing.T, m *pgtype.Map, tm time.Time) {
	t.Helper()
	y, mo, d := tm.Date()
	day := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	field, err := pgEncodeDate(nil, tm)
	if inRange := !day.Before(pgFirstDay) && !day.After(pgLastDay); !inRange || err != nil {
		if inRange || err == nil || !strings.Contains(err.Error(), "out of PostgreSQL's range") {
			t.Fatalf("date %d-%02d-%02d: %v", y, mo, d, err)
		}
		return
	}
	var got pgtype.Date
	if err := m.Scan(pgtype.DateOID, pgtype.BinaryFormatCode, copyField(t, field, 4), &got); err != nil ||
		got.InfinityModifier != pgtype.Finite || !got.Time.Equal(day) {
		t.Fatalf("date %d-%02d-%02d reads back as %+v (%v)", y, mo, d, got, err)
	}
}

// checkPgTimestamp: tm, as a value of typ, is sent as want if PostgreSQL
// holds that and it has no digits finer than microseconds, and reads back
// as want.
func checkPgTimestamp(t *testing.T, typ sqlexec.Type, tm, want time.Time) {
	t.Helper()
	field, err := pgEncoderFor(typ)(nil, tm)
	inRange := !want.Before(pgFirstDay) && want.Before(pgTimestampLimit)
	exact := tm.Nanosecond()%1000 == 0
	if !inRange || !exact || err != nil {
		switch {
		case inRange && exact, err == nil:
			t.Fatalf("%s %v: %v", typ, want, err)
		case !exact && !strings.Contains(err.Error(), "sub-microsecond"),
			exact && !strings.Contains(err.Error(), "out of PostgreSQL's range"):
			t.Fatalf("%s %v: refused with %v", typ, want, err)
		}
		return
	}
	if got := pgTimeOf(copyField(t, field, 8)); !got.Equal(want) {
		t.Fatalf("%s %v reads back as %v", typ, want, got)
	}
}

package wire

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// PostgreSQL's binary numeric is a header of four 16-bit words (the count
// of base-10000 digits, the weight of the first one, the sign, the display
// scale) and the digits, most significant first. Leading and trailing zero
// digits are left out, and zero has none; the display scale is the count of
// decimal digits after the point, trailing zeros included (12.50 has 2).
const (
	pgNumericPos  = 0x0000
	pgNumericNeg  = 0x4000
	pgNumericNaN  = 0xc000
	pgNumericPInf = 0xd000
	pgNumericNInf = 0xf000

	pgNumericMaxScale = 0x3fff     // NUMERIC_DSCALE_MAX
	pgNumericMaxWhole = 4 * 0x8000 // digits before the point that keep the weight an int16
)

// pgDecimal is a decimal literal as PostgreSQL's binary numeric holds it.
type pgDecimal struct {
	sign        uint16
	whole, frac string // digits; whole without leading zeros
	// first and last are the weights of the first and last nonzero
	// base-10000 digits; zero has none (first < last).
	first, last int
}

// parsePgDecimal reads an exact decimal literal, as sqlexec.Rows gives one
// (optional sign, digits, optional point and digits, no exponent; or NaN,
// Infinity, -Infinity), checking that PostgreSQL's numeric holds it.
func parsePgDecimal(s string) (pgDecimal, error) {
	switch s {
	case "NaN":
		return pgDecimal{sign: pgNumericNaN}, nil
	case "Infinity":
		return pgDecimal{sign: pgNumericPInf}, nil
	case "-Infinity":
		return pgDecimal{sign: pgNumericNInf}, nil
	}
	d := pgDecimal{sign: pgNumericPos}
	t := s
	if t != "" && (t[0] == '-' || t[0] == '+') {
		if t[0] == '-' {
			d.sign = pgNumericNeg
		}
		t = t[1:]
	}
	d.whole, d.frac, _ = strings.Cut(t, ".")
	if d.whole == "" && d.frac == "" || !allDigits(d.whole) || !allDigits(d.frac) {
		return pgDecimal{}, fmt.Errorf("invalid decimal %q", s)
	}
	d.whole = strings.TrimLeft(d.whole, "0")
	if len(d.whole) > pgNumericMaxWhole {
		return pgDecimal{}, fmt.Errorf("decimal of %d digits before the point is out of PostgreSQL's range", len(d.whole))
	}
	if len(d.frac) > pgNumericMaxScale {
		return pgDecimal{}, fmt.Errorf("decimal of %d digits after the point is out of PostgreSQL's range", len(d.frac))
	}
	// The decimal digit of power e (10^e) is in the base-10000 digit of
	// weight floor(e/4).
	hi, lo, ok := 0, 0, false
	if len(d.whole) > 0 {
		hi, ok = len(d.whole)-1, true
	} else if i := firstNonZero(d.frac); i >= 0 {
		hi, ok = -i-1, true
	}
	if !ok {
		// Zero, whatever its sign: PostgreSQL keeps no negative zero.
		d.sign, d.first, d.last = pgNumericPos, -1, 0
		return d, nil
	}
	if i := lastNonZero(d.frac); i >= 0 {
		lo = -i - 1
	} else {
		lo = len(d.whole) - 1 - lastNonZero(d.whole)
	}
	d.first, d.last = floorDiv4(hi), floorDiv4(lo)
	return d, nil
}

func firstNonZero(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return i
		}
	}
	return -1
}

func lastNonZero(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != '0' {
			return i
		}
	}
	return -1
}

func floorDiv4(e int) int {
	if e >= 0 {
		return e / 4
	}
	return -((-e + 3) / 4)
}

// digit is the decimal digit of power e (10^e).
func (d *pgDecimal) digit(e int) uint16 {
	if e >= 0 {
		if i := len(d.whole) - 1 - e; i >= 0 {
			return uint16(d.whole[i] - '0')
		}
		return 0
	}
	if i := -e - 1; i < len(d.frac) {
		return uint16(d.frac[i] - '0')
	}
	return 0
}

// appendBinary appends d as a COPY field of type numeric.
func (d *pgDecimal) appendBinary(buf []byte) []byte {
	switch d.sign {
	case pgNumericNaN, pgNumericPInf, pgNumericNInf:
		return appendPgNumericHeader(appendLen(buf, 8), 0, 0, d.sign, 0)
	}
	ndigits := max(d.first-d.last+1, 0)
	weight := 0
	if ndigits > 0 {
		weight = d.first
	}
	buf = appendPgNumericHeader(appendLen(buf, 8+2*ndigits), ndigits, weight, d.sign, len(d.frac))
	for w := d.first; w >= d.last; w-- {
		e := 4 * w
		g := d.digit(e+3)*1000 + d.digit(e+2)*100 + d.digit(e+1)*10 + d.digit(e)
		buf = binary.BigEndian.AppendUint16(buf, g)
	}
	return buf
}

func appendPgNumericHeader(buf []byte, ndigits, weight int, sign uint16, dscale int) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(ndigits))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	return binary.BigEndian.AppendUint16(buf, uint16(dscale))
}

func pgEncodeDecimal(buf []byte, v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, errValueType(v, "string")
	}
	d, err := parsePgDecimal(s)
	if err != nil {
		return nil, err
	}
	return d.appendBinary(buf), nil
}

// pgEncodeUint64 sends a uint64 as a numeric (the column is NUMERIC(20,0)).
func pgEncodeUint64(buf []byte, v any) ([]byte, error) {
	x, ok := v.(uint64)
	if !ok {
		return nil, errValueType(v, "uint64")
	}
	// At most 5 base-10000 digits, least significant first.
	var digits [5]uint16
	n := 0
	for ; x > 0; x /= 10000 {
		digits[n] = uint16(x % 10000)
		n++
	}
	weight := max(n-1, 0)
	last := 0
	for last < n && digits[last] == 0 {
		last++
	}
	buf = appendPgNumericHeader(appendLen(buf, 8+2*(n-last)), n-last, weight, pgNumericPos, 0)
	for i := n - 1; i >= last; i-- {
		buf = binary.BigEndian.AppendUint16(buf, digits[i])
	}
	return buf, nil
}

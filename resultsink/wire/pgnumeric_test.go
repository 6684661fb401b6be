package wire

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
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

// FuzzPgDecimalDecodes: a decimal the parser accepts encodes as a binary
// numeric that an independent decoder of PostgreSQL's format (pgx's) reads
// back as the same value; NaN and the infinities as themselves.
func FuzzPgDecimalDecodes(f *testing.F) {
	for _, s := range []string{"0", "-0.00", "12.50", "0.00001", "10000", "-00012.3400", ".5", "5.", "+7",
		"123456789012345678901234567890.123456789", "1000000000000.000000000001", "NaN", "Infinity", "-Infinity"} {
		f.Add(s)
	}
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, s string) {
		field, err := pgEncodeDecimal(nil, s)
		if err != nil {
			return
		}
		if n := int(int32(binary.BigEndian.Uint32(field))); n != len(field)-4 {
			t.Fatalf("%q: field length %d for %d bytes", s, n, len(field)-4)
		}
		var n pgtype.Numeric
		if err := m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, field[4:], &n); err != nil {
			t.Fatalf("%q: encoding %x does not decode: %v", s, field, err)
		}
		var ok bool
		switch s {
		case "NaN":
			ok = n.NaN
		case "Infinity":
			ok = n.InfinityModifier == pgtype.Infinity
		case "-Infinity":
			ok = n.InfinityModifier == pgtype.NegativeInfinity
		default:
			want, _ := new(big.Rat).SetString(strings.TrimPrefix(s, "+"))
			ok = !n.NaN && n.InfinityModifier == pgtype.Finite && numericRat(n).Cmp(want) == 0
		}
		if !ok || !n.Valid {
			t.Fatalf("%q decodes as %+v", s, n)
		}
	})
}

// numericRat is n's value, n.Int times ten to the n.Exp.
func numericRat(n pgtype.Numeric) *big.Rat {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(n.Exp))), nil)
	r := new(big.Rat).SetInt(n.Int)
	if n.Exp >= 0 {
		return r.Mul(r, new(big.Rat).SetInt(scale))
	}
	return r.Quo(r, new(big.Rat).SetInt(scale))
}

func abs[T ~int32 | ~int64](x T) T {
	if x < 0 {
		return -x
	}
	return x
}

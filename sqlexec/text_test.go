package sqlexec

import (
	"bytes"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestTextFormRoundTrips(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for _, tc := range []struct {
		typ  Type
		v    any
		text string
	}{
		{TypeInt64, int64(-9223372036854775808), "-9223372036854775808"},
		{TypeUint64, uint64(18446744073709551615), "18446744073709551615"},
		{TypeDecimal, "-0.50", "-0.50"},
		{TypeDecimal, "NaN", "NaN"},
		{TypeFloat64, 0.1, "0.1"},
		{TypeFloat64, -1.5e300, "-1.5e+300"},
		{TypeFloat64, math.Inf(1), "Infinity"},
		{TypeFloat64, math.Inf(-1), "-Infinity"},
		{TypeBool, true, "true"},
		{TypeDate, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "2024-02-29"},
		{TypeTimestamp, ts, "2024-01-02T03:04:05.123456789"},
		{TypeTimestampTZ, ts, "2024-01-02T03:04:05.123456789Z"},
		{TypeBytes, []byte{0, 1, 0xff}, "AAH/"},
		{TypeText, "a\tb\n'\"", "a\tb\n'\""},
		{TypeJSON, `{"b": 1, "b": 2}`, `{"b": 1, "b": 2}`},
	} {
		if got := FormatText(tc.typ, tc.v); got != tc.text {
			t.Errorf("FormatText(%s, %v) = %q, want %q", tc.typ, tc.v, got, tc.text)
		}
		back, err := ParseText(tc.typ, tc.text)
		if err != nil {
			t.Errorf("ParseText(%s, %q): %v", tc.typ, tc.text, err)
			continue
		}
		if !sameValue(back, tc.v) {
			t.Errorf("ParseText(%s, %q) = %#v, want %#v", tc.typ, tc.text, back, tc.v)
		}
	}
	if f, err := ParseText(TypeFloat64, "NaN"); err != nil || !math.IsNaN(f.(float64)) || FormatText(TypeFloat64, f) != "NaN" {
		t.Errorf("NaN: %v, %v", f, err)
	}
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		return x.Equal(b.(time.Time))
	case []byte:
		return bytes.Equal(x, b.([]byte))
	}
	return a == b
}

func TestParseTextRefusesWhatItWouldChange(t *testing.T) {
	for _, tc := range []struct {
		typ  Type
		text string
		want string
	}{
		{TypeInt64, "9223372036854775808", "is not a 64-bit integer"},
		{TypeInt64, "1.0", "is not a 64-bit integer"},
		{TypeUint64, "-1", "is not an unsigned 64-bit integer"},
		{TypeDecimal, "1e5", "is not a decimal number"},
		{TypeDecimal, "abc", "is not a decimal number"},
		{TypeFloat64, "1,5", "is not a number"},
		{TypeBool, "maybe", "is not true or false"},
		{TypeDate, "2024-02-30", "is not a date"},
		{TypeTimestamp, "2024-01-02T03:04:05+02:00", "has a time zone offset"},
		{TypeTimestampTZ, "yesterday", "is not a timestamp"},
		{TypeBytes, "not base64!", "is not standard base64"},
	} {
		if _, err := ParseText(tc.typ, tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseText(%s, %q): %v, want %q", tc.typ, tc.text, err, tc.want)
		}
	}
	// Offsets are instants for timestamptz, converted to UTC.
	v, err := ParseText(TypeTimestampTZ, "2024-01-02 03:04:05.5+05:30")
	if err != nil || !v.(time.Time).Equal(time.Date(2024, 1, 1, 21, 34, 5, 5e8, time.UTC)) || v.(time.Time).Location() != time.UTC {
		t.Errorf("timestamptz with offset: %v, %v", v, err)
	}
}

func TestCompareDecimal(t *testing.T) {
	// In ascending order; each line's values are equal to each other.
	ordered := [][]string{
		{"-Infinity"},
		{"-100000000000000000000000000000000000000.5"},
		{"-10", "-10.000", "-010"},
		{"-9.99999999999999999999"},
		{"-0.5", "-.5", "-0.50"},
		{"0", "-0", "0.000", "+0", ".0"},
		{"0.000000000000000000000000000001"},
		{"1.5", "1.50", "+1.5", "01.5"},
		{"9"},
		{"10"},
		{"18446744073709551615"},
		{"18446744073709551616"},
		{"Infinity"},
		{"NaN"},
		{"", "x"},
	}
	for i, group := range ordered {
		for j, other := range ordered {
			for _, a := range group {
				for _, b := range other {
					want := 0
					switch {
					case i < j:
						want = -1
					case i > j:
						want = 1
					case a != b && i == len(ordered)-1:
						want = strings.Compare(a, b) // not numbers: bytes
					}
					if got := CompareDecimal(a, b); got != want {
						t.Errorf("CompareDecimal(%q, %q) = %d, want %d", a, b, got, want)
					}
				}
			}
		}
	}
}

func FuzzCompareDecimal(f *testing.F) {
	f.Add("1.50", "1.5")
	f.Add("-0", "0.0")
	f.Add("-12.345", "-12.3450001")
	f.Add("NaN", "1")
	f.Fuzz(func(t *testing.T, a, b string) {
		got := CompareDecimal(a, b)
		if back := CompareDecimal(b, a); back != -got {
			t.Fatalf("CompareDecimal(%q, %q) = %d but reversed %d", a, b, got, back)
		}
		ra, okA := exactDecimal(a)
		rb, okB := exactDecimal(b)
		if okA && okB {
			if want := ra.Cmp(rb); got != want {
				t.Fatalf("CompareDecimal(%q, %q) = %d, big.Rat says %d", a, b, got, want)
			}
		}
	})
}

// exactDecimal reads a plain decimal literal (as ParseDecimal accepts it)
// exactly.
func exactDecimal(s string) (*big.Rat, bool) {
	if _, _, err := ParseDecimal(s); err != nil {
		return nil, false
	}
	t := strings.TrimPrefix(s, "+")
	if strings.HasPrefix(t, ".") || strings.HasPrefix(t, "-.") {
		t = strings.Replace(t, ".", "0.", 1)
	}
	t = strings.TrimSuffix(t, ".")
	return new(big.Rat).SetString(t)
}

package sqlexec

import (
	"strings"
	"testing"
	"time"
)

// layoutDateTime is what textDate and textTimestamp read without the fast
// path.
func layoutDateTime(b []byte, clock bool) (time.Time, error) {
	if !clock {
		return time.Parse(time.DateOnly, string(b))
	}
	var err error
	for _, layout := range timestampLayouts {
		var t time.Time
		if t, err = time.Parse(layout, string(b)); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// FuzzParseDateTime: whatever the fast path reads, the layouts read as the
// same time; what it does not read is left to them.
func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "0001-01-01", "9999-12-31", "0000-01-01",
		"2024-13-01", "2024-00-10", "2024-04-31", "2024-1-01", "2024-01-01 00:00:00", "2024-01-01 23:59:59.999999",
		"1969-12-31 23:59:59.5", "2024-01-01 24:00:00", "2024-01-01 12:60:00", "2024-01-01 12:00:60", "2024-01-01 12:00:00.",
		"2024-01-01 12:00:00.1234567891", "2024-01-01T12:00:00", "2024-01-01 12:00:00+02", "+024-01-01", "2024-01-01 12:00:00.000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, clock := range []bool{false, true} {
			got, ok := ParseDateTime([]byte(s), clock)
			if !ok {
				continue
			}
			want, err := layoutDateTime([]byte(s), clock)
			if err != nil || !got.Equal(want) || got.Location() != want.Location() {
				t.Fatalf("%q (clock %v): fast %v, layouts %v (%v)", s, clock, got, want, err)
			}
		}
	})
}

func TestParseDateTimeReadsTheCommonShapes(t *testing.T) {
	for _, tc := range []struct {
		in    string
		clock bool
		want  time.Time
	}{
		{"2024-02-29", false, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"0001-01-01", false, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2024-01-01 23:59:59", true, time.Date(2024, 1, 1, 23, 59, 59, 0, time.UTC)},
		{"1969-12-31 23:59:59.5", true, time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC)},
		{"2024-01-01 00:00:00.000001", true, time.Date(2024, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{"2024-01-01 00:00:00.123456789", true, time.Date(2024, 1, 1, 0, 0, 0, 123456789, time.UTC)},
	} {
		got, ok := ParseDateTime([]byte(tc.in), tc.clock)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01", "2024-01-01 24:00:00", "2024-01-01 12:00:00."} {
		if _, ok := ParseDateTime([]byte(bad), len(bad) > 10); ok {
			t.Errorf("%q read by the fast path", bad)
		}
	}
}

// TestTextNumbersAllocateOnlyTheirBox: parsing a number from the driver's
// bytes makes no copy of them (the value's box is the one allocation).
func TestTextNumbersAllocateOnlyTheirBox(t *testing.T) {
	for _, tc := range []struct {
		dec decoder
		in  string
	}{{textInt, "-9223372036854775808"}, {textUint, "18446744073709551615"}, {textFloat, "0.30000000000000004"}} {
		b := []byte(tc.in)
		if n := testing.AllocsPerRun(100, func() { _, _ = tc.dec(b) }); n > 1 {
			t.Errorf("%q: %v allocations, want at most 1", tc.in, n)
		}
	}
	// An error keeps a copy of its input, not the driver's buffer.
	b := []byte("12x")
	_, err := textInt(b)
	copy(b, "999")
	if err == nil || !strings.Contains(err.Error(), `"12x"`) {
		t.Fatalf("err %v, want it to quote the input as it was", err)
	}
}

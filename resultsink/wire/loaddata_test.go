package wire

import (
	"testing"
	"time"
)

// TestMySQLTimesAsTheLayoutsWriteThem: the hand-written date and datetime
// text is byte for byte what time.Format writes.
func TestMySQLTimesAsTheLayoutsWriteThem(t *testing.T) {
	base := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
		time.Date(2024, 2, 29, 12, 3, 4, 500_000_000, time.UTC),
		time.Date(2024, 2, 29, 12, 3, 4, 120_000, time.UTC),
		time.Date(2024, 2, 29, 12, 3, 4, 1000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 6, 7, 8, 9, 10, 0, time.UTC),
	}
	for i := range 2000 {
		base = append(base, time.Unix(int64(i)*7_777_777_7+int64(i*i), int64(i)*1000_003%1_000_000*1000).UTC())
	}
	for _, tm := range base {
		if got, want := string(appendDate(nil, tm)), tm.Format(time.DateOnly); got != want {
			t.Errorf("date %v: %q, want %q", tm, got, want)
		}
		if got, want := string(appendDateTime(nil, tm)), tm.Format(mysqlDateTime); got != want {
			t.Errorf("datetime %v: %q, want %q", tm, got, want)
		}
	}
}

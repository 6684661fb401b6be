package sqlexec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// decoder turns one non-NULL value as the driver hands it out into the Go
// value of its column's Type.
type decoder func(b []byte) (any, error)

// decodedRow is the part of a Rows that turns a driver's raw values into
// typed ones, column by column.
type decodedRow struct {
	cols []Column
	dec  []decoder
	vals []any
	err  error
}

func (r *decodedRow) Columns() []Column { return r.cols }
func (r *decodedRow) Values() []any     { return r.vals }

// decode fills vals from raw, one decoder per column; nil is NULL.
func decode[B ~[]byte](r *decodedRow, raw []B) bool {
	for i, b := range raw {
		if b == nil {
			r.vals[i] = nil
			continue
		}
		v, err := r.dec[i](b)
		if err != nil {
			r.err = fmt.Errorf("column %q: %w", r.cols[i].Name, err)
			return false
		}
		r.vals[i] = v
	}
	return true
}

// Decoders from a value's text form, shared by the dialects whose drivers
// hand out text (MySQL always, PostgreSQL for text-format columns).

func textString(b []byte) (any, error) { return string(b), nil }

// copyBytes copies b out of a driver buffer; an empty value stays empty, not
// NULL.
func copyBytes(b []byte) (any, error) { return append(make([]byte, 0, len(b)), b...), nil }

func textInt(b []byte) (any, error) { return strconv.ParseInt(string(b), 10, 64) }

func textUint(b []byte) (any, error) { return strconv.ParseUint(string(b), 10, 64) }

func textFloat(b []byte) (any, error) { return strconv.ParseFloat(string(b), 64) }

func textBool(b []byte) (any, error) {
	switch strings.ToLower(string(b)) {
	case "t", "true", "1", "y", "yes", "on":
		return true, nil
	case "f", "false", "0", "n", "no", "off":
		return false, nil
	}
	return nil, fmt.Errorf("invalid boolean %q", b)
}

func textDate(b []byte) (any, error) {
	if t, ok := ParseDateTime(b, false); ok {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, string(b))
	if err != nil {
		return nil, fmt.Errorf("invalid date %q", b)
	}
	return t, nil
}

// timestampLayouts are the text forms of timestamps the supported databases
// produce, without and with a zone offset.
var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	time.RFC3339Nano,
}

func textTimestamp(b []byte) (any, error) {
	if t, ok := ParseDateTime(b, true); ok {
		return t, nil
	}
	s := string(b)
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("invalid timestamp %q", s)
}

// ParseDecimal checks that s is a plain decimal literal (optional sign,
// digits, optional fraction; no exponent) and returns its count of digits
// before and after the point. NaN and infinities are not decimals.
func ParseDecimal(s string) (intDigits, fracDigits int, err error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, hasPoint := strings.Cut(t, ".")
	if whole == "" && frac == "" || hasPoint && frac == "" && whole == "" {
		return 0, 0, fmt.Errorf("invalid decimal %q", s)
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, 0, fmt.Errorf("invalid decimal %q", s)
			}
		}
	}
	whole = strings.TrimLeft(whole, "0")
	return len(whole), len(frac), nil
}

// ParseDateTime reads, without time.Parse's generality, the shape in which
// MySQL and PostgreSQL print almost every date ("2006-01-02") and, with
// clock, timestamp ("2006-01-02 15:04:05", with up to 9 fraction digits),
// as UTC. It reports false for anything else, including values out of
// range, which the layouts then read or refuse with their own message.
func ParseDateTime(b []byte, clock bool) (time.Time, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || year == 0 || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	if !clock {
		if len(b) != 10 {
			return time.Time{}, false
		}
		return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
	}
	if len(b) < 19 || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	hour, ok1 := digits(b[11:13])
	minute, ok2 := digits(b[14:16])
	sec, ok3 := digits(b[17:19])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nanos := 0
	if frac := b[19:]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := digits(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		nanos = n
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC), true
}

// digits reads a run of decimal digits (at most 9).
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

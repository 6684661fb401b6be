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

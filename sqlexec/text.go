package sqlexec

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The text form of a value is how sql-jobber spells a typed value outside a
// database (in CSV, in filters and in cursors) without losing any of it:
// FormatText and ParseText turn one into the other and back exactly.
//
//	int64, uint64   decimal digits
//	decimal         the exact literal as stored ("-12.50"; "NaN", "Infinity")
//	float64         the shortest form that reads back as the same float
//	                ("0.1", "1e+21"), or "NaN", "Infinity", "-Infinity"
//	bool            "true" or "false"
//	date            "2006-01-02"
//	timestamp       "2006-01-02T15:04:05.999999999" (a wall-clock time: no zone)
//	timestamptz     RFC 3339 in UTC, "2006-01-02T15:04:05.999999999Z"
//	bytes           standard base64
//	text, json      the text itself

// timestampText is the text form of a wall-clock timestamp.
const timestampText = "2006-01-02T15:04:05.999999999"

// FormatText returns the text form of v, a non-NULL value of column type t.
func FormatText(t Type, v any) string {
	switch t {
	case TypeInt64:
		return strconv.FormatInt(v.(int64), 10)
	case TypeUint64:
		return strconv.FormatUint(v.(uint64), 10)
	case TypeFloat64:
		return FormatFloat(v.(float64))
	case TypeBool:
		return strconv.FormatBool(v.(bool))
	case TypeDate:
		return v.(time.Time).Format(time.DateOnly)
	case TypeTimestamp:
		return v.(time.Time).Format(timestampText)
	case TypeTimestampTZ:
		return v.(time.Time).UTC().Format(time.RFC3339Nano)
	case TypeBytes:
		return base64.StdEncoding.EncodeToString(v.([]byte))
	}
	return v.(string) // text, json, decimal
}

// FormatFloat spells f as the shortest decimal that reads back as f, with
// "NaN", "Infinity" and "-Infinity" for the values that have no digits.
func FormatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// ParseText reads the text form of a value of column type t, as FormatText
// writes it; it also takes the other spellings the databases use (a space for
// the 'T' of a timestamp, "t" or "1" for true). A value that is not of the
// type, or that the type would have to round, is an error saying why.
func ParseText(t Type, s string) (any, error) {
	p, ok := textParsers[t]
	if !ok {
		return s, nil // text, json
	}
	v, err := p.parse([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%q is not %s", s, p.want)
	}
	if ts, ok := v.(time.Time); ok && t != TypeDate {
		if _, offset := ts.Zone(); offset != 0 && t == TypeTimestamp {
			return nil, fmt.Errorf("%q has a time zone offset, but the column holds wall-clock times: leave the offset out", s)
		}
		return ts.UTC(), nil
	}
	return v, nil
}

// textParsers read the text forms of the types that are not text, and say
// what a value of the type is.
var textParsers = map[Type]struct {
	parse decoder
	want  string
}{
	TypeInt64:       {textInt, "a 64-bit integer"},
	TypeUint64:      {textUint, "an unsigned 64-bit integer"},
	TypeDecimal:     {textDecimal, "a decimal number (digits, an optional sign and point, no exponent)"},
	TypeFloat64:     {textFloat, "a number"},
	TypeBool:        {textBool, "true or false"},
	TypeDate:        {textDate, "a date (2006-01-02)"},
	TypeTimestamp:   {textTimestamp, "a timestamp (RFC 3339, e.g. 2006-01-02T15:04:05.5)"},
	TypeTimestampTZ: {textTimestamp, "a timestamp (RFC 3339, e.g. 2006-01-02T15:04:05.5Z)"},
	TypeBytes:       {textBase64, "standard base64"},
}

func textDecimal(b []byte) (any, error) {
	s := string(b)
	if NonFiniteDecimal(s) {
		return s, nil
	}
	_, _, err := ParseDecimal(s)
	return s, err
}

func textBase64(b []byte) (any, error) { return base64.StdEncoding.DecodeString(string(b)) }

// NonFiniteDecimal reports whether s is one of the non-finite values a
// PostgreSQL numeric holds, which ParseText takes for TypeDecimal.
func NonFiniteDecimal(s string) bool {
	return s == "NaN" || s == "Infinity" || s == "-Infinity"
}

// SQLiteDecimalCollation is the name of a SQLite collation, available on
// every SQLite connection sqlexec opens, that orders text holding decimal
// numbers by their value (see CompareDecimal). SQLite stores exact decimals
// and unsigned 64-bit integers as text, which its own collations would
// order as text ("10" before "9").
const SQLiteDecimalCollation = "sqljobber_decimal"

// CompareDecimal orders two decimal literals by value, exactly: it returns
// -1, 0 or +1 as a is less than, equal to or greater than b ("1.50" equals
// "1.5", "-0" equals "0"). PostgreSQL's non-finite values order as it orders
// them: -Infinity first, then the numbers, Infinity, NaN. Anything else is
// not a number and orders after NaN, byte by byte, so that the order is total.
func CompareDecimal(a, b string) int {
	ra, rb := decimalRank(a), decimalRank(b)
	switch {
	case ra != rb:
		return cmp.Compare(ra, rb)
	case ra == rankNumber:
		return compareFinite(a, b)
	case ra == rankOther:
		return strings.Compare(a, b)
	}
	return 0
}

// Ranks of decimal literals: what orders before a finite number, and after.
const (
	rankNegInf = iota
	rankNumber
	rankPosInf
	rankNaN
	rankOther
)

func decimalRank(s string) int {
	switch s {
	case "-Infinity":
		return rankNegInf
	case "Infinity":
		return rankPosInf
	case "NaN":
		return rankNaN
	}
	if _, _, err := ParseDecimal(s); err != nil {
		return rankOther
	}
	return rankNumber
}

// compareFinite compares two valid decimal literals.
func compareFinite(a, b string) int {
	na, wa, fa := splitDecimal(a)
	nb, wb, fb := splitDecimal(b)
	sa, sb := decimalSign(na, wa, fa), decimalSign(nb, wb, fb)
	if sa != sb {
		return cmp.Compare(sa, sb)
	}
	// Same sign: compare magnitudes, reversed for negative numbers.
	c := cmp.Compare(len(wa), len(wb))
	if c == 0 {
		c = strings.Compare(wa, wb)
	}
	if c == 0 {
		c = strings.Compare(fa, fb) // no trailing zeros: a longer fraction is larger
	}
	if sa < 0 {
		return -c
	}
	return c
}

// splitDecimal returns whether a valid literal is negative, its integer
// digits without leading zeros and its fraction digits without trailing
// zeros.
func splitDecimal(s string) (neg bool, whole, frac string) {
	neg = strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	whole, frac, _ = strings.Cut(s, ".")
	return neg, strings.TrimLeft(whole, "0"), strings.TrimRight(frac, "0")
}

func decimalSign(neg bool, whole, frac string) int {
	switch {
	case whole == "" && frac == "":
		return 0
	case neg:
		return -1
	}
	return 1
}

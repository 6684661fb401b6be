package wire

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// PgLiteral writes v, typed as sqlexec.Rows types a column of type t, as a
// PostgreSQL literal: NULL, an integer or a boolean as such, anything else
// a quoted string (under standard_conforming_strings, so only quotes
// double) cast to sqlType, the results column's type, which PostgreSQL
// parses exactly. It refuses what the column would not keep as it is.
func PgLiteral(t sqlexec.Type, sqlType string, v any) (string, error) {
	if v == nil {
		return "NULL", nil
	}
	var s string
	switch t {
	case sqlexec.TypeInt64:
		return strconv.FormatInt(v.(int64), 10), nil
	case sqlexec.TypeUint64:
		return strconv.FormatUint(v.(uint64), 10), nil
	case sqlexec.TypeDecimal:
		s = v.(string)
		if _, err := parsePgDecimal(s); err != nil {
			return "", err
		}
	case sqlexec.TypeFloat64:
		f := v.(float64)
		switch {
		case math.IsNaN(f):
			s = "NaN"
		case math.IsInf(f, 1):
			s = "Infinity"
		case math.IsInf(f, -1):
			s = "-Infinity"
		default:
			s = strconv.FormatFloat(f, 'g', -1, 64)
		}
	case sqlexec.TypeBool:
		if v.(bool) {
			return "TRUE", nil
		}
		return "FALSE", nil
	case sqlexec.TypeDate:
		tm := v.(time.Time)
		if tm.Year() < 1 || tm.Year() > 9999 {
			return "", fmt.Errorf("date %v out of range", tm)
		}
		s = tm.Format(time.DateOnly)
	case sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
		tm := v.(time.Time)
		if err := CheckMicroseconds(tm); err != nil {
			return "", err
		}
		// A timestamptz is written in UTC, and its year checked there:
		// PostgreSQL reads a year 0 as out of range, not as 1 BC.
		written, layout := tm, "2006-01-02 15:04:05.999999"
		if t == sqlexec.TypeTimestampTZ {
			written, layout = tm.UTC(), "2006-01-02 15:04:05.999999Z07:00"
		}
		if written.Year() < 1 || written.Year() > 9999 {
			return "", fmt.Errorf("timestamp %v out of range", tm)
		}
		s = written.Format(layout)
	case sqlexec.TypeBytes:
		s = `\x` + hex.EncodeToString(v.([]byte))
	default: // TypeText, TypeJSON
		s = v.(string)
		if strings.IndexByte(s, 0) >= 0 {
			return "", fmt.Errorf("PostgreSQL text cannot hold a NUL byte")
		}
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("PostgreSQL text must be UTF-8 (%.40q is not)", s)
		}
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'::" + sqlType, nil
}

package wire

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// MySQL's DECIMAL holds at most 65 digits, 30 of them after the point.
const (
	MySQLMaxPrecision = 65
	MySQLMaxScale     = 30
)

// MySQLDecimalFits reports whether MySQL's DECIMAL of c's precision and
// scale holds every value of c. Results columns of the other decimals are
// DECIMAL(MySQLMaxPrecision, MySQLMaxScale), and AppendMySQLValue checks
// that each value fits.
func MySQLDecimalFits(c sqlexec.Column) bool {
	return c.Precision > 0 && c.Precision <= MySQLMaxPrecision && c.Scale <= MySQLMaxScale
}

// LoadDataReader streams rows in the text format of MySQL's LOAD DATA
// (FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'):
// tab-separated fields with backslash escapes, \N for NULL, a row a line.
// It encodes rows as they are read.
type LoadDataReader struct {
	rows  sqlexec.Rows
	cols  []sqlexec.Column
	wire  *myWire // when the rows come from MySQL: see myWire
	buf   []byte
	off   int
	count int64
	done  bool
	err   error
}

const loadDataChunk = 256 << 10

// NewLoadDataReader returns the LOAD DATA stream of rows into columns cols,
// each value typed as sqlexec.Rows types its column. src, if not nil, is
// the same rows as their database sent them: when that is MySQL, the rows
// are passed through (see Source), and the last of cols is their row
// number.
func NewLoadDataReader(rows sqlexec.Rows, cols []sqlexec.Column, src *Source) *LoadDataReader {
	return &LoadDataReader{rows: rows, cols: cols, wire: newMyWire(src, cols)}
}

// Err is the error that ended the stream early, if any: a value that could
// not be encoded, or the rows' own.
func (r *LoadDataReader) Err() error { return r.err }

// Count is the number of rows encoded.
func (r *LoadDataReader) Count() int64 { return r.count }

func (r *LoadDataReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for len(r.buf) < loadDataChunk {
			more, err := false, error(nil)
			if r.wire != nil && !r.wire.fromTyped() {
				r.buf, more, err = r.wire.appendNext(r.buf)
			} else if more = r.rows.Next(); more {
				err = r.appendRow()
			}
			if err != nil {
				r.err = err
				break
			}
			if !more {
				r.done = true
				r.err = r.rows.Err()
				break
			}
			r.count++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *LoadDataReader) appendRow() error {
	for i, v := range r.rows.Values() {
		if i > 0 {
			r.buf = append(r.buf, '\t')
		}
		if v == nil {
			r.buf = append(r.buf, `\N`...)
			continue
		}
		var err error
		r.buf, err = AppendMySQLValue(r.buf, r.cols[i], v)
		if err != nil {
			return fmt.Errorf("column %q: %w", r.cols[i].Name, err)
		}
	}
	r.buf = append(r.buf, '\n')
	return nil
}

const mysqlDateTime = "2006-01-02 15:04:05.999999"

// AppendMySQLValue appends v, typed as sqlexec.Rows types column c and not
// NULL, as MySQL reads it into c's results column: in the text form that
// LOAD DATA reads (escaped), and, for dates and times, that a query's
// parameters compare with. It refuses values the column would not keep as
// they are.
func AppendMySQLValue(b []byte, c sqlexec.Column, v any) ([]byte, error) {
	switch c.Type {
	case sqlexec.TypeInt64:
		return strconv.AppendInt(b, v.(int64), 10), nil
	case sqlexec.TypeUint64:
		return strconv.AppendUint(b, v.(uint64), 10), nil
	case sqlexec.TypeDecimal:
		s := v.(string)
		if !MySQLDecimalFits(c) {
			whole, frac, err := sqlexec.ParseDecimal(s)
			if err != nil {
				return b, err
			}
			if whole > MySQLMaxPrecision-MySQLMaxScale || frac > MySQLMaxScale {
				return b, fmt.Errorf("decimal %s does not fit MySQL's DECIMAL(65,30)", s)
			}
		}
		return append(b, s...), nil
	case sqlexec.TypeFloat64:
		f := v.(float64)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, fmt.Errorf("MySQL cannot store %v", f)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64), nil
	case sqlexec.TypeBool:
		if v.(bool) {
			return append(b, '1'), nil
		}
		return append(b, '0'), nil
	case sqlexec.TypeDate:
		return appendDate(b, v.(time.Time)), nil
	case sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
		t := v.(time.Time)
		if err := CheckMicroseconds(t); err != nil {
			return b, err
		}
		return appendDateTime(b, t.UTC()), nil
	case sqlexec.TypeBytes:
		return appendLoadDataEscaped(b, v.([]byte)), nil
	default:
		return appendLoadDataEscaped(b, v.(string)), nil
	}
}

// appendLoadDataEscaped appends s with LOAD DATA's escapes for its
// backslashes, tabs, newlines, carriage returns and NULs, so that the field
// reads back as s and never ends early.
func appendLoadDataEscaped[T string | []byte](b []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendDate appends t's date as time.DateOnly does, without its generality
// (a large share of a row's cost otherwise).
func appendDate(b []byte, t time.Time) []byte {
	y, m, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, time.DateOnly)
	}
	b = appendDigits(b, y, 4)
	b = appendDigits(append(b, '-'), int(m), 2)
	return appendDigits(append(b, '-'), d, 2)
}

// appendDateTime appends t as mysqlDateTime does: the fraction to the
// microsecond, without trailing zeros, and none if it is zero.
func appendDateTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.AppendFormat(b, mysqlDateTime)
	}
	b = appendDate(b, t)
	h, mi, s := t.Clock()
	b = appendDigits(append(b, ' '), h, 2)
	b = appendDigits(append(b, ':'), mi, 2)
	b = appendDigits(append(b, ':'), s, 2)
	us, width := t.Nanosecond()/1000, 6
	if us == 0 {
		return b
	}
	for us%10 == 0 {
		us, width = us/10, width-1
	}
	return appendDigits(append(b, '.'), us, width)
}

// appendDigits appends n (not negative) in width digits, zero-padded.
func appendDigits(b []byte, n, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:width]...)
}

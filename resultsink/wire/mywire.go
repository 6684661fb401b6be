package wire

import (
	"strconv"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// myWire passes a MySQL source's values through to MySQL results: the
// driver hands every value out as text, and LOAD DATA reads text, so
// integers, dates, timestamps and decimals whose column holds them go as
// they came, and text, JSON and bytes only get LOAD DATA's escapes. Floats,
// and values the fast checks do not recognise, take the typed path
// (decoded, then written as AppendMySQLValue writes them), which also
// refuses what decoding refuses.
type myWire struct {
	*rawRows
	enc []wireEncoder // LOAD DATA fields
}

// newMyWire returns the pass-through for src, or nil when it is nil or its
// rows do not come from MySQL. cols are the results table's columns (the
// source's, then the row number).
func newMyWire(src *Source, cols []sqlexec.Column) *myWire {
	raw := newRawRows(src, sqlexec.MySQL, cols)
	if raw == nil {
		return nil
	}
	w := &myWire{rawRows: raw}
	for i, c := range cols[:len(cols)-1] {
		w.enc = append(w.enc, myWireEncoderFor(c, raw.src, i))
	}
	return w
}

// appendNext appends the source's next row, and its number, as a LOAD DATA
// line; it reports false at the end of the rows.
func (w *myWire) appendNext(buf []byte) ([]byte, bool, error) {
	raw, n, ok := w.next()
	if !ok {
		return buf, false, nil
	}
	for i, b := range raw {
		if i > 0 {
			buf = append(buf, '\t')
		}
		if b == nil {
			buf = append(buf, `\N`...)
			continue
		}
		var err error
		if buf, err = w.enc[i](buf, b); err != nil {
			return buf, false, w.fieldError(i, err)
		}
	}
	buf = strconv.AppendInt(append(buf, '\t'), n, 10)
	return append(buf, '\n'), true, nil
}

func myWireEncoderFor(c sqlexec.Column, src sqlexec.WireRows, i int) wireEncoder {
	typed := func(buf, b []byte) ([]byte, error) {
		v, err := src.DecodeWire(i, b)
		if err != nil {
			return buf, err
		}
		return AppendMySQLValue(buf, c, v)
	}
	// verbatim passes values that pass ok as they are: none has a
	// character LOAD DATA would need escaped.
	verbatim := func(ok func(b []byte) bool) wireEncoder {
		return func(buf, b []byte) ([]byte, error) {
			if !ok(b) {
				return typed(buf, b)
			}
			return append(buf, b...), nil
		}
	}
	switch c.Type {
	case sqlexec.TypeInt64, sqlexec.TypeUint64:
		return verbatim(isInteger)
	case sqlexec.TypeDecimal:
		if MySQLDecimalFits(c) {
			// As the typed path: the column holds any value of the
			// source's (of its precision and scale).
			return verbatim(isDecimal)
		}
	case sqlexec.TypeDate:
		return verbatim(func(b []byte) bool { _, ok := sqlexec.ParseDateTime(b, false); return ok })
	case sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
		// At most microseconds ("2006-01-02 15:04:05.999999").
		return verbatim(func(b []byte) bool { _, ok := sqlexec.ParseDateTime(b, true); return ok && len(b) <= 26 })
	case sqlexec.TypeText, sqlexec.TypeJSON, sqlexec.TypeBytes:
		return func(buf, b []byte) ([]byte, error) { return appendLoadDataEscaped(buf, b), nil }
	}
	return typed
}

// isInteger: an optional minus and digits.
func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	return len(b) > 0 && allDigits(b)
}

// isDecimal: an optional minus, digits, and an optional point and digits.
func isDecimal(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	for i, c := range b {
		if c == '.' {
			return i > 0 && i < len(b)-1 && allDigits(b[:i]) && allDigits(b[i+1:])
		}
	}
	return len(b) > 0 && allDigits(b)
}

package wire

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// pgWire passes a PostgreSQL source's values through to a PostgreSQL
// results table as the source sent them, where the binary COPY form of the
// results column is that same form: integers (widened to bigint), floats,
// booleans, bytea, dates and timestamps arrive in binary; text and JSON in
// text, which is also their binary form. Numerics arrive as exact text and
// are re-encoded without allocating; any other column is decoded and
// encoded as the typed path does. Nothing is decoded into Go values, which
// is most of what a row cost the server.
type pgWire struct {
	*rawRows
	enc []wireEncoder // binary COPY fields
}

// newPgWire returns the pass-through for src, or nil when it is nil or its
// rows do not come from PostgreSQL. cols are the results table's columns
// (the source's, then the row number) and enc their typed encoders.
func newPgWire(src *Source, cols []sqlexec.Column, enc []pgEncoder) *pgWire {
	raw := newRawRows(src, sqlexec.Postgres, cols)
	if raw == nil {
		return nil
	}
	w := &pgWire{rawRows: raw}
	for i, wc := range raw.cols {
		w.enc = append(w.enc, pgWireEncoderFor(wc, cols[i].Type, raw.src, i, enc[i]))
	}
	return w
}

// encodeNext appends the source's next row, and its number, to buf; it
// reports false at the end of the rows.
func (w *pgWire) encodeNext(buf []byte) ([]byte, bool, error) {
	raw, n, ok := w.next()
	if !ok {
		return buf, false, nil
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(raw)+1))
	for i, b := range raw {
		if b == nil {
			buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32) // -1: NULL
			continue
		}
		var err error
		if buf, err = w.enc[i](buf, b); err != nil {
			return buf, false, w.fieldError(i, err)
		}
	}
	buf = binary.BigEndian.AppendUint64(appendLen(buf, 8), uint64(n))
	return buf, true, nil
}

func pgWireEncoderFor(wc sqlexec.WireColumn, t sqlexec.Type, src sqlexec.WireRows, i int, typed pgEncoder) wireEncoder {
	// decoded is the typed path, for what has no shortcut: it also
	// refuses what the decoder refuses (infinite dates, say).
	decoded := func(buf, b []byte) ([]byte, error) {
		v, err := src.DecodeWire(i, b)
		if err != nil {
			return buf, err
		}
		return typed(buf, v)
	}
	if wc.Binary {
		return pgBinaryPassThrough(wc, t, decoded)
	}
	switch {
	case wc.OID == pgtype.NumericOID && t == sqlexec.TypeDecimal:
		return func(buf, b []byte) ([]byte, error) {
			// The string lives only while it is parsed and encoded;
			// errors quote it into a copy.
			d, err := parsePgDecimal(unsafe.String(unsafe.SliceData(b), len(b)))
			if err != nil {
				return buf, err
			}
			return d.appendBinary(buf), nil
		}
	case t == sqlexec.TypeText || t == sqlexec.TypeJSON && (wc.OID == pgtype.JSONOID || wc.OID == pgtype.JSONBOID):
		// json's binary form is its text; jsonb arrives as text too.
		return sameBytes(0, decoded)
	}
	return decoded
}

// sameBytes passes a value through as it came, if it has size bytes (any,
// for 0); else decoded says what is wrong with it.
func sameBytes(size int, decoded wireEncoder) wireEncoder {
	return func(buf, b []byte) ([]byte, error) {
		if size > 0 && len(b) != size {
			return decoded(buf, b)
		}
		return append(appendLen(buf, len(b)), b...), nil
	}
}

// pgBinaryPassThrough is the encoder of a column the source sent in binary:
// as it came where the results column's binary form is the same (widened,
// for smaller integers), else decoded.
func pgBinaryPassThrough(wc sqlexec.WireColumn, t sqlexec.Type, decoded wireEncoder) wireEncoder {
	switch {
	case wc.OID == pgtype.Int8OID && t == sqlexec.TypeInt64,
		wc.OID == pgtype.Float8OID && t == sqlexec.TypeFloat64:
		return sameBytes(8, decoded)
	case wc.OID == pgtype.BoolOID && t == sqlexec.TypeBool:
		return sameBytes(1, decoded)
	case wc.OID == pgtype.ByteaOID && t == sqlexec.TypeBytes:
		return sameBytes(0, decoded)
	case (wc.OID == pgtype.Int2OID || wc.OID == pgtype.Int4OID) && t == sqlexec.TypeInt64:
		return func(buf, b []byte) ([]byte, error) {
			var x int64
			switch len(b) {
			case 2:
				x = int64(int16(binary.BigEndian.Uint16(b)))
			case 4:
				x = int64(int32(binary.BigEndian.Uint32(b)))
			default:
				return decoded(buf, b)
			}
			return binary.BigEndian.AppendUint64(appendLen(buf, 8), uint64(x)), nil
		}
	case wc.OID == pgtype.DateOID && t == sqlexec.TypeDate:
		return func(buf, b []byte) ([]byte, error) {
			// Infinity has no portable form: the decoder refuses it.
			if len(b) != 4 {
				return decoded(buf, b)
			}
			if days := int32(binary.BigEndian.Uint32(b)); days == math.MaxInt32 || days == math.MinInt32 {
				return decoded(buf, b)
			}
			return append(appendLen(buf, 4), b...), nil
		}
	case wc.OID == pgtype.TimestampOID && t == sqlexec.TypeTimestamp,
		wc.OID == pgtype.TimestamptzOID && t == sqlexec.TypeTimestampTZ:
		return func(buf, b []byte) ([]byte, error) {
			if len(b) != 8 {
				return decoded(buf, b)
			}
			if us := int64(binary.BigEndian.Uint64(b)); us == math.MaxInt64 || us == math.MinInt64 {
				return decoded(buf, b)
			}
			return append(appendLen(buf, 8), b...), nil
		}
	}
	return decoded
}

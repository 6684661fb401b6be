package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// PostgreSQL's binary COPY format, written by PgCopyReader: a header, each
// row as its field count then each field as its length (-1 for NULL) and
// its value in the type's binary form, and a trailer (a field count of -1).
const (
	pgCopyHeader = "PGCOPY\n\xff\r\n\x00" +
		"\x00\x00\x00\x00" + // flags: no OIDs
		"\x00\x00\x00\x00" // no header extension
	pgCopyTrailer = "\xff\xff"
)

// pgCopyBufKeep is the largest encoding buffer kept between reads: a huge
// row is encoded in a buffer of its own size, which is let go afterwards
// rather than held for the rest of the stream.
const pgCopyBufKeep = 4 << 20

// errPgCopyStopped ends a Read after Stop.
var errPgCopyStopped = errors.New("copy stopped")

// PgCopyReader streams rows as a PostgreSQL binary COPY (FORMAT binary),
// encoding them as they are read into one buffer reused from read to read,
// so that a row costs no allocation of its own.
//
// The COPY's client (pgconn's CopyFrom) may call Read from a goroutine of
// its own, which can outlive the copy when the connection fails; Stop waits
// for a Read under way and ends the stream, so that the rows are no longer
// touched once it returns.
type PgCopyReader struct {
	mu   sync.Mutex
	rows sqlexec.Rows
	cols []sqlexec.Column
	enc  []pgEncoder
	wire *pgWire // when the rows come from PostgreSQL: see pgWire

	buf     []byte // encoded bytes, buf[off:] not yet read
	off     int
	started bool
	done    bool  // the trailer is in buf, or err is set
	err     error // why the stream ended early
}

// NewPgCopyReader returns the COPY stream of rows into columns cols, each
// value typed as sqlexec.Rows types its column. src, if not nil, is the
// same rows as their database sent them: when that is PostgreSQL, the
// rows are passed through (see Source), and the last of cols is their row
// number.
func NewPgCopyReader(rows sqlexec.Rows, cols []sqlexec.Column, src *Source) *PgCopyReader {
	r := &PgCopyReader{rows: rows, cols: cols, enc: make([]pgEncoder, len(cols))}
	for i, c := range cols {
		r.enc[i] = pgEncoderFor(c.Type)
	}
	r.wire = newPgWire(src, cols, r.enc)
	return r
}

func (r *PgCopyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for {
		c := copy(p[n:], r.buf[r.off:])
		n += c
		r.off += c
		if n == len(p) {
			return n, nil
		}
		if r.done {
			if r.err != nil {
				return n, r.err
			}
			return n, io.EOF
		}
		r.fill(len(p) - n)
	}
}

// fill encodes rows into the emptied buffer until it holds at least want
// bytes or the rows end.
func (r *PgCopyReader) fill(want int) {
	if cap(r.buf) > pgCopyBufKeep {
		r.buf = nil
	}
	r.buf, r.off = r.buf[:0], 0
	if !r.started {
		r.started = true
		r.buf = append(r.buf, pgCopyHeader...)
	}
	for len(r.buf) < want {
		more, err := false, error(nil)
		if r.wire != nil && !r.wire.fromTyped() {
			r.buf, more, err = r.wire.encodeNext(r.buf)
		} else if more = r.rows.Next(); more {
			err = r.encodeRow()
		}
		if err != nil {
			r.fail(err)
			return
		}
		if !more {
			if err := r.rows.Err(); err != nil {
				r.fail(err)
				return
			}
			r.buf = append(r.buf, pgCopyTrailer...)
			r.done = true
			return
		}
	}
}

// fail ends the stream with err; what is buffered will not be sent, as
// the COPY's client answers the error by failing the copy.
func (r *PgCopyReader) fail(err error) {
	r.buf, r.off = r.buf[:0], 0
	r.err, r.done = err, true
}

func (r *PgCopyReader) encodeRow() error {
	vals := r.rows.Values()
	if len(vals) != len(r.cols) {
		return fmt.Errorf("row of %d values for %d columns", len(vals), len(r.cols))
	}
	r.buf = binary.BigEndian.AppendUint16(r.buf, uint16(len(vals)))
	for i, v := range vals {
		if v == nil {
			r.buf = binary.BigEndian.AppendUint32(r.buf, math.MaxUint32) // -1: NULL
			continue
		}
		buf, err := r.enc[i](r.buf, v)
		if err != nil {
			return fmt.Errorf("column %q: %w", r.cols[i].Name, err)
		}
		r.buf = buf
	}
	return nil
}

// Stop waits for a Read under way and makes any later one fail. It returns
// the error that ended the stream early, if any: the server only saw the
// copy fail, the reason is ours.
func (r *PgCopyReader) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	if !r.done {
		r.fail(errPgCopyStopped)
	}
	return err
}

// pgEncoder appends a non-NULL value, typed as sqlexec.Rows types its
// column, as a COPY field: its length and its binary form.
type pgEncoder func(buf []byte, v any) ([]byte, error)

func pgEncoderFor(t sqlexec.Type) pgEncoder {
	switch t {
	case sqlexec.TypeInt64:
		return pgEncodeInt8
	case sqlexec.TypeUint64:
		return pgEncodeUint64
	case sqlexec.TypeDecimal:
		return pgEncodeDecimal
	case sqlexec.TypeFloat64:
		return pgEncodeFloat8
	case sqlexec.TypeBool:
		return pgEncodeBool
	case sqlexec.TypeDate:
		return pgEncodeDate
	case sqlexec.TypeTimestamp:
		return pgEncodeTimestamp
	case sqlexec.TypeTimestampTZ:
		return pgEncodeTimestampTZ
	case sqlexec.TypeBytes:
		return pgEncodeBytes
	default:
		// TypeText; and TypeJSON, whose binary form (of json, not
		// jsonb) is its text.
		return pgEncodeText
	}
}

func appendLen(buf []byte, n int) []byte { return binary.BigEndian.AppendUint32(buf, uint32(n)) }

func pgEncodeInt8(buf []byte, v any) ([]byte, error) {
	x, ok := v.(int64)
	if !ok {
		return nil, errValueType(v, "int64")
	}
	return binary.BigEndian.AppendUint64(appendLen(buf, 8), uint64(x)), nil
}

func pgEncodeFloat8(buf []byte, v any) ([]byte, error) {
	x, ok := v.(float64)
	if !ok {
		return nil, errValueType(v, "float64")
	}
	return binary.BigEndian.AppendUint64(appendLen(buf, 8), math.Float64bits(x)), nil
}

func pgEncodeBool(buf []byte, v any) ([]byte, error) {
	x, ok := v.(bool)
	if !ok {
		return nil, errValueType(v, "bool")
	}
	b := byte(0)
	if x {
		b = 1
	}
	return append(appendLen(buf, 1), b), nil
}

// pgMaxField is the longest field the COPY format can say (its length is
// an int32); PostgreSQL itself refuses values over 1 GB.
const pgMaxField = math.MaxInt32

func pgEncodeText(buf []byte, v any) ([]byte, error) {
	x, ok := v.(string)
	if !ok {
		return nil, errValueType(v, "string")
	}
	if len(x) > pgMaxField {
		return nil, fmt.Errorf("value of %d bytes is too long for PostgreSQL", len(x))
	}
	return append(appendLen(buf, len(x)), x...), nil
}

func pgEncodeBytes(buf []byte, v any) ([]byte, error) {
	x, ok := v.([]byte)
	if !ok {
		return nil, errValueType(v, "[]byte")
	}
	if len(x) > pgMaxField {
		return nil, fmt.Errorf("value of %d bytes is too long for PostgreSQL", len(x))
	}
	return append(appendLen(buf, len(x)), x...), nil
}

// PostgreSQL counts dates and timestamps from 2000-01-01 (UTC), and keeps
// dates from 4714-11-24 BC (Julian day 0) to 5874897-12-31 and timestamps
// from 4714-11-24 BC to before 294277-01-01 (IS_VALID_DATE,
// IS_VALID_TIMESTAMP); binary input outside those is refused.
const (
	pgEpochUnix        = 946_684_800 // 2000-01-01 in Unix seconds
	pgMinDay           = -2_451_545
	pgEndDay           = 2_145_031_949
	pgMinTimestampSec  = pgMinDay * 86400
	pgEndTimestampSec  = 9_223_371_331_200
	pgMinYear          = -4713 // 4714 BC: Go counts 1 BC as year 0
	pgMaxYear          = 5_874_897
	pgUnixSecondsBound = 1 << 50 // far beyond PostgreSQL's range, far from overflow
)

func pgEncodeDate(buf []byte, v any) ([]byte, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, errValueType(v, "time.Time")
	}
	// The calendar date where the time is, which is what pgx sent before
	// this encoder (a date column's values are midnight UTC anyway, so
	// only a caller's other zone sees the difference).
	y, m, d := t.Date()
	if y < pgMinYear || y > pgMaxYear {
		return nil, fmt.Errorf("date %s is out of PostgreSQL's range", t.Format(time.DateOnly))
	}
	// Midnight UTC is a whole number of days from the Unix epoch (and
	// from PostgreSQL's): the division is exact either side of it.
	days := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()/86400 - pgEpochUnix/86400
	if days < pgMinDay || days >= pgEndDay {
		return nil, fmt.Errorf("date %s is out of PostgreSQL's range", t.Format(time.DateOnly))
	}
	return binary.BigEndian.AppendUint32(appendLen(buf, 4), uint32(int32(days))), nil
}

// pgEncodeTimestamp sends a timestamp without time zone: the wall clock
// where the time is, read as if in UTC, which is what pgx sent before this
// encoder (the column's values are in UTC anyway).
func pgEncodeTimestamp(buf []byte, v any) ([]byte, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, errValueType(v, "time.Time")
	}
	_, offset := t.Zone()
	return appendPgTimestamp(buf, t, int64(offset))
}

// pgEncodeTimestampTZ sends the instant.
func pgEncodeTimestampTZ(buf []byte, v any) ([]byte, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, errValueType(v, "time.Time")
	}
	return appendPgTimestamp(buf, t, 0)
}

// appendPgTimestamp appends t, shifted by offset seconds, as microseconds
// from PostgreSQL's epoch.
func appendPgTimestamp(buf []byte, t time.Time, offset int64) ([]byte, error) {
	if err := CheckMicroseconds(t); err != nil {
		return nil, err
	}
	sec := t.Unix()
	if sec < -pgUnixSecondsBound || sec > pgUnixSecondsBound || offset < -pgUnixSecondsBound || offset > pgUnixSecondsBound {
		return nil, fmt.Errorf("timestamp %s is out of PostgreSQL's range", t.Format(time.RFC3339Nano))
	}
	sec += offset - pgEpochUnix
	if sec < pgMinTimestampSec || sec >= pgEndTimestampSec {
		return nil, fmt.Errorf("timestamp %s is out of PostgreSQL's range", t.Format(time.RFC3339Nano))
	}
	us := sec*1_000_000 + int64(t.Nanosecond()/1000)
	return binary.BigEndian.AppendUint64(appendLen(buf, 8), uint64(us)), nil
}

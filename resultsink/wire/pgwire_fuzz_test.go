package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// decodingRows stand in for a PostgreSQL source, decoding a raw value as
// sqlexec does by the documented formats, for the typed path.
type decodingRows struct {
	sqlexec.WireRows
	decode func(b []byte) (any, error)
}

func (r decodingRows) DecodeWire(_ int, b []byte) (any, error) { return r.decode(b) }

var errRawSize = errors.New("raw value of the wrong size")

func decodeRawInt(b []byte) (any, error) {
	switch len(b) {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b))), nil
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	case 8:
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return nil, errRawSize
}

func decodeRawFloat8(b []byte) (any, error) {
	if len(b) != 8 {
		return nil, errRawSize
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}

func decodeRawBool(b []byte) (any, error) {
	if len(b) != 1 {
		return nil, errRawSize
	}
	return b[0] != 0, nil
}

func decodeRawDate(b []byte) (any, error) {
	if len(b) != 4 {
		return nil, errRawSize
	}
	days := int32(binary.BigEndian.Uint32(b))
	if days == math.MaxInt32 || days == math.MinInt32 {
		return nil, errors.New("infinite date")
	}
	return time.Date(2000, 1, 1+int(days), 0, 0, 0, 0, time.UTC), nil
}

func decodeRawTimestamp(b []byte) (any, error) {
	if len(b) != 8 {
		return nil, errRawSize
	}
	if us := int64(binary.BigEndian.Uint64(b)); us == math.MaxInt64 || us == math.MinInt64 {
		return nil, errors.New("infinite timestamp")
	}
	return pgTimeOf(b), nil
}

func decodeRawText(b []byte) (any, error) { return string(b), nil }

func decodeRawBytes(b []byte) (any, error) { return bytes.Clone(b), nil }

// pgWireCases are the source columns a pass-through has a shortcut for,
// and one it has none for.
var pgWireCases = []struct {
	wc     sqlexec.WireColumn
	typ    sqlexec.Type
	decode func([]byte) (any, error)
}{
	{sqlexec.WireColumn{OID: pgtype.Int2OID, Binary: true}, sqlexec.TypeInt64, decodeRawInt},
	{sqlexec.WireColumn{OID: pgtype.Int4OID, Binary: true}, sqlexec.TypeInt64, decodeRawInt},
	{sqlexec.WireColumn{OID: pgtype.Int8OID, Binary: true}, sqlexec.TypeInt64, decodeRawInt},
	{sqlexec.WireColumn{OID: pgtype.Float8OID, Binary: true}, sqlexec.TypeFloat64, decodeRawFloat8},
	{sqlexec.WireColumn{OID: pgtype.BoolOID, Binary: true}, sqlexec.TypeBool, decodeRawBool},
	{sqlexec.WireColumn{OID: pgtype.ByteaOID, Binary: true}, sqlexec.TypeBytes, decodeRawBytes},
	{sqlexec.WireColumn{OID: pgtype.DateOID, Binary: true}, sqlexec.TypeDate, decodeRawDate},
	{sqlexec.WireColumn{OID: pgtype.TimestampOID, Binary: true}, sqlexec.TypeTimestamp, decodeRawTimestamp},
	{sqlexec.WireColumn{OID: pgtype.TimestamptzOID, Binary: true}, sqlexec.TypeTimestampTZ, decodeRawTimestamp},
	{sqlexec.WireColumn{OID: pgtype.NumericOID}, sqlexec.TypeDecimal, decodeRawText},
	{sqlexec.WireColumn{OID: pgtype.TextOID}, sqlexec.TypeText, decodeRawText},
	{sqlexec.WireColumn{OID: pgtype.JSONOID}, sqlexec.TypeJSON, decodeRawText},
	{sqlexec.WireColumn{OID: pgtype.JSONBOID}, sqlexec.TypeJSON, decodeRawText},
	{sqlexec.WireColumn{OID: pgtype.UUIDOID}, sqlexec.TypeText, decodeRawText},
}

// FuzzPgWireField: whatever raw value a PostgreSQL source sends, the field
// the pass-through writes is the one the typed path (decode, then encode)
// writes, or means the same to PostgreSQL (a boolean's nonzero byte is
// true); where the typed path refuses the value, so does the pass-through,
// or it sends a date or timestamp that PostgreSQL refuses as out of range.
func FuzzPgWireField(f *testing.F) {
	f.Add(uint8(0), []byte{0x80, 0})
	f.Add(uint8(4), []byte{2})
	f.Add(uint8(6), []byte{0x80, 0, 0, 1})
	f.Add(uint8(7), []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe})
	f.Add(uint8(9), []byte("-00012.3400"))
	f.Add(uint8(9), []byte("1e5"))
	f.Add(uint8(10), []byte("a'b\x00"))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		tc := pgWireCases[int(which)%len(pgWireCases)]
		typed := pgEncoderFor(tc.typ)
		got, err := pgWireEncoderFor(tc.wc, tc.typ, decodingRows{decode: tc.decode}, 0, typed)(nil, b)
		var want []byte
		v, terr := tc.decode(b)
		if terr == nil {
			want, terr = typed(nil, v)
		}
		switch {
		case terr == nil && err == nil:
			if bytes.Equal(got, want) || tc.typ == sqlexec.TypeBool && len(got) == 5 && (got[4] != 0) == (want[4] != 0) {
				return
			}
		case terr != nil && err != nil:
			return
		case terr != nil && pgRefusesRaw(tc.typ, b):
			return
		}
		t.Fatalf("OID %d %x: passes through as %x (%v), typed %x (%v)", tc.wc.OID, b, got, err, want, terr)
	})
}

// pgRefusesRaw reports whether PostgreSQL refuses a raw binary date or
// timestamp as out of its range.
func pgRefusesRaw(typ sqlexec.Type, b []byte) bool {
	switch {
	case typ == sqlexec.TypeDate && len(b) == 4:
		days := int64(int32(binary.BigEndian.Uint32(b)))
		return days < pgMinDay || days >= pgEndDay
	case (typ == sqlexec.TypeTimestamp || typ == sqlexec.TypeTimestampTZ) && len(b) == 8:
		us := int64(binary.BigEndian.Uint64(b))
		return us < pgMinTimestampSec*1_000_000 || us >= pgEndTimestampSec*1_000_000
	}
	return false
}

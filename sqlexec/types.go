package sqlexec

import "fmt"

// Type is the portable type of a result column. Every source type maps to one
// of these without losing data; every results dialect maps each of these to a
// column type that holds every value of it.
type Type uint8

// Column types, and the Go type a Rows value of that column has (or nil for
// SQL NULL).
const (
	TypeText        Type = iota // string
	TypeInt64                   // int64
	TypeUint64                  // uint64 (only for values that may exceed int64)
	TypeDecimal                 // string: an exact decimal literal, e.g. "-12.50"
	TypeFloat64                 // float64
	TypeBool                    // bool
	TypeDate                    // time.Time, midnight UTC
	TypeTimestamp               // time.Time, wall clock stored as UTC
	TypeTimestampTZ             // time.Time, an instant
	TypeJSON                    // string: JSON text, byte for byte as the source had it
	TypeBytes                   // []byte
)

var typeNames = [...]string{
	TypeText:        "text",
	TypeInt64:       "int64",
	TypeUint64:      "uint64",
	TypeDecimal:     "decimal",
	TypeFloat64:     "float64",
	TypeBool:        "bool",
	TypeDate:        "date",
	TypeTimestamp:   "timestamp",
	TypeTimestampTZ: "timestamptz",
	TypeJSON:        "json",
	TypeBytes:       "bytes",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Column describes one result column.
type Column struct {
	Name string
	Type Type

	// Precision and Scale describe a TypeDecimal column. Precision 0 means
	// the source did not constrain it (e.g. PostgreSQL numeric without a
	// type modifier, or the result of SUM over a numeric).
	Precision int
	Scale     int
}

// Rows is a forward-only stream of typed rows. It is not safe for concurrent
// use.
type Rows interface {
	// Columns describes the columns. It is valid before the first Next.
	Columns() []Column
	// Next advances to the next row and reports whether there is one. It
	// returns false at the end of the rows or on error; check Err.
	Next() bool
	// Values returns the current row, one value per column, typed as the
	// Type constants document. The slice is reused by the next call to Next.
	Values() []any
	// Err returns the error that ended iteration, if any.
	Err() error
	// Close releases the rows and their connection. It is safe to call more
	// than once.
	Close() error
}

// WireRows are Rows that can also be read as their database sent them, so
// that a writer to the same kind of database can pass values through
// without decoding them into Go values and encoding them again. A caller
// may mix NextWire and Next from row to row.
type WireRows interface {
	Rows
	// Wire tells which kind of database sent the rows and how each
	// column's values arrive.
	Wire() (Dialect, []WireColumn)
	// NextWire advances like Next, without decoding the row.
	NextWire() bool
	// WireValues returns the row NextWire advanced to, as sent (nil is
	// NULL). The slices are reused by the next call to NextWire or Next.
	WireValues() [][]byte
	// DecodeWire decodes column i's non-NULL value from its wire form
	// into what Values would hold, or refuses it as Next would (the
	// error does not name the column).
	DecodeWire(i int, b []byte) (any, error)
}

// WireColumn is how a column's values arrive.
type WireColumn struct {
	// OID is the PostgreSQL type's OID (0 from MySQL).
	OID uint32
	// Binary: the values are in the type's binary form (PostgreSQL),
	// else in its text form (always, from MySQL).
	Binary bool
}

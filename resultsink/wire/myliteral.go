package wire

import (
	"encoding/hex"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// AppendMySQLLiteral appends v, typed as sqlexec.Rows types column c, as a
// MySQL literal that its results column reads back as v: NULL; text as a
// quoted string; bytes in hex; every other value as the quoted text that
// LOAD DATA would read (AppendMySQLValue), which MySQL converts to the
// column's type as LOAD DATA does, refusing (in strict mode) what the
// column would not keep. The escapes assume backslashes escape, as they do
// on the results connections (their sql_mode has no
// NO_BACKSLASH_ESCAPES).
func AppendMySQLLiteral(b []byte, c sqlexec.Column, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "NULL"...), nil
	case []byte:
		b = append(b, "X'"...)
		b = hex.AppendEncode(b, x)
		return append(b, '\''), nil
	}
	if c.Type == sqlexec.TypeText || c.Type == sqlexec.TypeJSON {
		if s, ok := v.(string); ok {
			return appendMySQLQuoted(b, s), nil
		}
	}
	b = append(b, '\'')
	b, err := AppendMySQLValue(b, c, v)
	if err != nil {
		return b, err
	}
	return append(b, '\''), nil
}

// appendMySQLQuoted appends s as a quoted string literal with the escapes
// that make it read back byte for byte, in utf8mb4 whatever the
// connection's character set.
func appendMySQLQuoted(b []byte, s string) []byte {
	b = append(b, "_utf8mb4'"...)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b = append(b, '\'', '\'')
		case '\\':
			b = append(b, '\\', '\\')
		case 0:
			b = append(b, '\\', '0')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0x1a:
			b = append(b, '\\', 'Z')
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}

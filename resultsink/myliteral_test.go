package resultsink_test

import (
	"context"
	"testing"
	"unicode/utf8"

	"github.com/sql-jobber/sql-jobber/resultsink/wire"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// FuzzMySQLLiterals: the literals of the one-statement publication of small
// results on MySQL read back, on the real server, byte for byte as the text
// and the bytes they were made of, whatever quotes, backslashes, NULs or
// control characters those hold.
func FuzzMySQLLiterals(f *testing.F) {
	for _, s := range []string{"", "'", "''", `\`, `\'`, "a'; DROP TABLE t; --", "\x00", "\x1a", "\r\n\t", `\N`, "Grüße \"x\" 日本 🎉", "%_", "$1 ?"} {
		f.Add(s, []byte(s))
	}
	f.Add("x", []byte{0, 0xff, 0x27, 0x5c, 0x1a})
	db := sqlexectest.Open(f, sqlexec.MySQL, "res", sqlexec.OpenOptions{Results: true})
	f.Fuzz(func(t *testing.T, text string, raw []byte) {
		if !utf8.ValidString(text) {
			// A text column holds UTF-8 only: strict mode refuses the
			// rest, which is what a job then reports.
			return
		}
		t1, err := wire.AppendMySQLLiteral(nil, sqlexec.Column{Type: sqlexec.TypeText}, text)
		if err != nil {
			t.Fatal(err)
		}
		b1, err := wire.AppendMySQLLiteral(nil, sqlexec.Column{Type: sqlexec.TypeBytes}, raw)
		if err != nil {
			t.Fatal(err)
		}
		var gotText string
		var gotRaw []byte
		if err := db.SQL().QueryRowContext(context.Background(), "SELECT "+string(t1)+", "+string(b1)).Scan(&gotText, &gotRaw); err != nil {
			t.Fatalf("SELECT %s, %s: %v", t1, b1, err)
		}
		if gotText != text || string(gotRaw) != string(raw) {
			t.Fatalf("read back %q and %x, want %q and %x", gotText, gotRaw, text, raw)
		}
	})
}

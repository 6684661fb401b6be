package sqlexec

import (
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestPlaceholderHint(t *testing.T) {
	pgSyntax := &pgconn.PgError{Code: "42601", Message: `syntax error at or near ";"`}
	mySyntax := &mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"}
	for _, c := range []struct {
		d     Dialect
		query string
		err   error
		hint  bool
	}{
		{Postgres, "SELECT * FROM entries WHERE user_id = ?", pgSyntax, true},
		{Postgres, "SELECT * FROM entries WHERE user_id = ?", &pgconn.PgError{Code: "42P01"}, false},
		{Postgres, "SELECT * FROM entries WHERE user_id = $1", pgSyntax, false},
		{Postgres, "SELECT '?' AS q, \"a?\" FROM t -- why?\nWHERE x = $1 /* ? */", pgSyntax, false},
		{Postgres, "SELECT 'it''s ?' FROM t WHERE a = ?", pgSyntax, true},
		{Postgres, "SELECT 'unterminated ?", pgSyntax, false},
		{MySQL, "SELECT * FROM entries WHERE user_id = $1", mySyntax, true},
		{MySQL, "SELECT * FROM entries WHERE user_id = ?", mySyntax, false},
		{MySQL, "SELECT '$1', `$2` FROM t WHERE a = ?", mySyntax, false},
		{SQLite, "SELECT * FROM t WHERE a = ?", pgSyntax, false},
	} {
		if got := placeholderHint(c.d, c.query, c.err) != ""; got != c.hint {
			t.Errorf("%s %q: hint %v, want %v", c.d, c.query, got, c.hint)
		}
	}
}

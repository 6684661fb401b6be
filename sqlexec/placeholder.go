package sqlexec

import (
	"errors"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// placeholderHint explains a query that failed to prepare on dialect d with
// a syntax error when it uses the other dialect's parameter style, as task
// files copied between a MySQL and a PostgreSQL deployment do: PostgreSQL's
// syntax error does not say that ? is not a parameter there (nor MySQL's
// "unknown column" that $1 is not one). It is "" for other errors, and
// when the query's parameters match the dialect.
func placeholderHint(d Dialect, query string, err error) string {
	var (
		pgErr *pgconn.PgError
		myErr *mysql.MySQLError
	)
	switch {
	case d == Postgres && errors.As(err, &pgErr) && pgErr.Code == "42601" && strings.Contains(outsideLiterals(query), "?"):
		return " (PostgreSQL numbers its parameters: write $1, $2, ... where the query says ?)"
	case d == MySQL && errors.As(err, &myErr) && (myErr.Number == 1064 || myErr.Number == 1054) && dollarParam.MatchString(outsideLiterals(query)):
		return " (MySQL takes ? for each parameter, in order: write ? where the query says $1, $2, ...)"
	}
	return ""
}

var dollarParam = regexp.MustCompile(`\$[0-9]+`)

// outsideLiterals is query with its string literals, quoted identifiers and
// comments blanked out, so that a ? or $1 inside them is not taken for a
// parameter.
func outsideLiterals(query string) string {
	var b strings.Builder
	for i := 0; i < len(query); i++ {
		c := query[i]
		var end string
		switch {
		case c == '\'' || c == '"' || c == '`':
			end = string(c)
		case strings.HasPrefix(query[i:], "--"):
			end = "\n"
		case strings.HasPrefix(query[i:], "/*"):
			end = "*/"
		default:
			b.WriteByte(c)
			continue
		}
		j := strings.Index(query[i+1:], end)
		if j < 0 {
			break
		}
		i += j + len(end)
		b.WriteByte(' ')
	}
	return b.String()
}

package resultsink

import (
	"context"
	"fmt"
	"strings"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// dialect is what differs between results databases. The staging and
// publishing protocol around it (Backend.Write) is shared.
type dialect interface {
	// maxIdentLen is the longest table or column name the database keeps
	// as given.
	maxIdentLen() int
	quote(ident string) string
	columnType(c sqlexec.Column) string
	create(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, unlogged bool) error
	// load bulk-writes every row into table and returns the count.
	load(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error)
	// publish replaces final with staging (of count rows) in one step, if
	// the fence allows (claimFence), atomically with the fence's record;
	// it reports whether it recorded the job's SUCCESS too.
	publish(ctx context.Context, db *sqlexec.DB, staging, final string, count int64, fence Fence) (bool, error)
	// fenceTableSQL creates the fence table if it does not exist: a
	// table name, as the database compares names, and its token.
	fenceTableSQL() string
	// fenceUpsert records a table's publication token (arguments: the
	// table, the token) unless a token at least as high is recorded: it
	// changes no row then.
	fenceUpsert() string
	// fenceNameIs is the condition, with one placeholder, that a fence
	// record's table_name names the table the argument names.
	fenceNameIs() string
	// adoptTables records as published, with token 0 unless recorded,
	// the tables with a RowColumn column whose names are LIKE the first
	// argument and not LIKE the second (both with '\' as the escape).
	adoptTables() string
	drop(ctx context.Context, db *sqlexec.DB, table string) error
	// tables lists the tables whose names start with prefix.
	tables(ctx context.Context, db *sqlexec.DB, prefix string) ([]string, error)

	// Reading (see Reader).

	// readPrelude are the statements that start a read of table, before
	// the snapshot is taken.
	readPrelude(table string) []string
	// key is operand (column c, or a value compared with it) as it sorts
	// and compares: text by code point, numbers by value. whole asks for
	// all of the value; without it, the key is what the database's ORDER
	// BY sorts by, which on MySQL is a prefix of text and bytes, so that
	// the rows' order and the comparisons that continue it agree.
	key(c sqlexec.Column, operand string, whole bool) string
	// nullsOrder puts NULLs first in ascending order and last in
	// descending order, where that is not the database's default.
	nullsOrder(desc bool) string
	// param is the n-th placeholder (from 1), compared with column c.
	param(c sqlexec.Column, n int) string
	// bind converts a value of column c (typed as sqlexec.Rows types it)
	// to the argument that compares with the column exactly.
	bind(c sqlexec.Column, v any) (any, error)
}

func dialectFor(t sqlexec.Dialect) dialect {
	switch t {
	case sqlexec.MySQL:
		return mysqlDialect{}
	case sqlexec.SQLite:
		return sqliteDialect{}
	default:
		return postgresDialect{}
	}
}

// columnTypes names a dialect's column type for each portable type whose
// mapping does not depend on the column (decimals and, on MySQL, JSON do).
type columnTypes [sqlexec.TypeBytes + 1]string

// createTableSQL is the CREATE TABLE statement shared by the dialects.
// keyed makes RowColumn the primary key, which pages of a large table need
// to be read without sorting it; a small table (see smallWriter) is sorted
// faster than its index is created.
func createTableSQL(d dialect, prefix, table string, cols []sqlexec.Column, suffix string, keyed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE %sTABLE %s (", prefix, d.quote(table))
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quote(c.Name))
		b.WriteByte(' ')
		b.WriteString(d.columnType(c))
		if c.Name == RowColumn {
			b.WriteString(" NOT NULL")
			if keyed {
				// On SQLite, INTEGER PRIMARY KEY makes it the rowid.
				b.WriteString(" PRIMARY KEY")
			}
		}
	}
	b.WriteString(")")
	b.WriteString(suffix)
	return b.String()
}

// fenceTableSQLWith is fenceTableSQL with the name's type and what follows
// the columns.
func fenceTableSQLWith(d dialect, nameType, suffix string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (table_name %s NOT NULL PRIMARY KEY, token BIGINT NOT NULL)%s",
		d.quote(fenceTable), nameType, suffix)
}

// onConflictFenceUpsert is fenceUpsert on the dialects with ON CONFLICT.
func onConflictFenceUpsert(d dialect) string {
	return fmt.Sprintf("INSERT INTO %s AS f (table_name, token) VALUES (?, ?) ON CONFLICT (table_name) DO UPDATE SET token = excluded.token WHERE f.token < excluded.token",
		d.quote(fenceTable))
}

// likePrefix escapes prefix for a LIKE pattern with '\' as the escape.
func likePrefix(prefix string) string { return likeEscape(prefix) + "%" }

// likeEscape escapes s to match itself in a LIKE pattern with '\' as the
// escape.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// sqliteDriver keeps the ledger in SQLite, which has one writer at a time:
// a statement is its own lock. Times are stored as sortable text in UTC.
type sqliteDriver struct{ onConflict }

var _ driver = sqliteDriver{}

// sqliteTime is how SQLite stores ledger times.
const sqliteTime = "2006-01-02 15:04:05.000000"

func (sqliteDriver) quote(ident string) string { return sqlexec.SQLite.Quote(ident) }
func (sqliteDriver) timeArg(t time.Time) any   { return t.Format(sqliteTime) }

func (sqliteDriver) types() columnTypes {
	return columnTypes{text: "TEXT", short: "TEXT", ts: "TEXT", key: "TEXT", bigint: "INTEGER"}
}

func (sqliteDriver) partialIndexes() bool { return true }

func (sqliteDriver) lockRows() string { return "" }

// lockMigration: SQLite's DDL takes the database's write lock.
func (sqliteDriver) lockMigration(context.Context, *Ledger) (func(), error) { return func() {}, nil }

func (d sqliteDriver) createIndexes(ctx context.Context, l *Ledger, want []index, replaced []string) error {
	for _, r := range replaced {
		if _, err := l.q.Exec(ctx, "DROP INDEX IF EXISTS "+d.quote(r)); err != nil {
			return err
		}
	}
	for _, idx := range want {
		if _, err := l.q.Exec(ctx, fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s (%s)%s", uniqueness(idx), d.quote(idx.name), idx.table, idx.cols, idx.where)); err != nil {
			return err
		}
	}
	return nil
}

func (sqliteDriver) claim(ctx context.Context, l *Ledger, set string, setArgs []any, pick string, pickArgs []any) ([]*Job, error) {
	return returningClaim(ctx, l, "", set, setArgs, pick, pickArgs)
}

// claimTx: the transaction is immediate (see sqlexec), the one writer.
func (sqliteDriver) claimTx(ctx context.Context, l *Ledger, fn func(q sqlexec.Querier) error) error {
	return l.db.InTx(ctx, fn)
}

func (sqliteDriver) skipLocked() string { return "" }

func (sqliteDriver) runID() string { return "lower(hex(randomblob(8)))" }

func (sqliteDriver) greatest(a, b string) string { return "MAX(" + a + ", " + b + ")" }

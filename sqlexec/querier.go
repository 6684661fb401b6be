package sqlexec

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs sql-jobber's own statements (the ledger's, the fence's) on a
// pool, a connection or inside a transaction, whichever the dialect's
// driver: pgx for PostgreSQL, database/sql for the others. Statements are
// written once with ? placeholders; on PostgreSQL they become $1, $2, ...
// (Rebind).
type Querier interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query and calls scan for each row, with the function
	// that scans the row's columns.
	Query(ctx context.Context, query string, scan func(scanRow func(dest ...any) error) error, args ...any) error
}

// Querier runs statements on the pool.
func (db *DB) Querier() Querier { return db.src.querier() }

// InTx runs fn in a transaction, committing if it returns nil and rolling
// back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(Querier) error) error { return db.src.inTx(ctx, fn) }

// SQLQuerier runs statements on a database/sql pool, connection or
// transaction.
func SQLQuerier(q interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) Querier {
	return sqlQuerier{q: q}
}

type pgQuerier struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (p pgQuerier) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, Rebind(q), args...)
	return tag.RowsAffected(), err
}

func (p pgQuerier) Query(ctx context.Context, q string, scan func(func(...any) error) error, args ...any) error {
	rows, err := p.q.Query(ctx, Rebind(q), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, scan)
}

type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
}

func (s sqlQuerier) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlQuerier) Query(ctx context.Context, q string, scan func(func(...any) error) error, args ...any) error {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, scan)
}

// eachRow calls scan for each row of rows (pgx's or database/sql's).
func eachRow(rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}, scan func(func(...any) error) error) error {
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Placeholders is n ? placeholders separated by commas.
func Placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Rebind turns ? placeholders into PostgreSQL's $1, $2, ... Only for
// sql-jobber's own statements, which have no ? inside literals or
// identifiers.
func Rebind(q string) string {
	n := strings.Count(q, "?")
	if n == 0 {
		return q
	}
	b := make([]byte, 0, len(q)+2*n)
	n = 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b = strconv.AppendInt(append(b, '$'), int64(n), 10)
			continue
		}
		b = append(b, q[i])
	}
	return string(b)
}

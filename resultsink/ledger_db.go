package resultsink

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// querier runs the ledger's statements on a pool or inside a transaction,
// whichever the dialect's driver. Statements use ? placeholders; the
// PostgreSQL querier rewrites them.
type querier interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, scan func(func(...any) error) error, args ...any) error
}

type pgQuerier struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (p pgQuerier) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, rebind(q), args...)
	return tag.RowsAffected(), err
}

func (p pgQuerier) query(ctx context.Context, q string, scan func(func(...any) error) error, args ...any) error {
	rows, err := p.q.Query(ctx, rebind(q), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
}

func (s sqlQuerier) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlQuerier) query(ctx context.Context, q string, scan func(func(...any) error) error, args ...any) error {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func poolQuerier(db *sqlexec.DB) querier {
	if p := db.Postgres(); p != nil {
		return pgQuerier{q: p}
	}
	return sqlQuerier{q: db.SQL()}
}

// inTx runs fn in a transaction on db, committing if it returns nil.
func inTx(ctx context.Context, db *sqlexec.DB, fn func(querier) error) error {
	if p := db.Postgres(); p != nil {
		return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error { return fn(pgQuerier{q: tx}) })
	}
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(sqlQuerier{q: tx}); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// rebind turns ? placeholders into PostgreSQL's $n. Only for the ledger's own
// statements, which have no ? in literals.
func rebind(q string) string {
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

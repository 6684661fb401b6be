package sqlexec

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReadTx is a read-only transaction on one connection of a DB: every query
// in it reads the same committed state of the database, whatever other
// sessions commit meanwhile. Its queries run one at a time: close one's Rows
// before the next query. It is not safe for concurrent use.
type ReadTx struct {
	db  *DB
	ctx context.Context // for clean-up once the caller's context has ended

	pg      *pgxpool.Conn
	conn    *sql.Conn
	mysqlID int64
	// killed: a KILL QUERY may be on its way to the MySQL connection,
	// which therefore must not be reused.
	killed bool
	closed bool
}

// readTxCleanupTimeout bounds the rollback that ends a ReadTx.
const readTxCleanupTimeout = 10 * time.Second

// BeginRead starts a read-only transaction and runs prelude in it.
//
// The transaction's snapshot is taken by its first query, after prelude:
// on PostgreSQL, whose catalog is not versioned like its rows, a prelude of
// "LOCK TABLE t IN ACCESS SHARE MODE" makes sure that a table replaced by
// another transaction just before is read whole, as the new table.
func (db *DB) BeginRead(ctx context.Context, prelude ...string) (*ReadTx, error) {
	tx := &ReadTx{db: db, ctx: context.WithoutCancel(ctx)}
	var begin []string
	var err error
	switch db.Dialect {
	case Postgres:
		if tx.pg, err = db.pg.Acquire(ctx); err != nil {
			return nil, err
		}
		begin = []string{"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"}
	default:
		if tx.conn, err = db.sql.Conn(ctx); err != nil {
			return nil, err
		}
		// SQLite: query_only refuses writes; a deferred transaction
		// reads one snapshot from its first read on.
		begin = []string{"PRAGMA query_only = 1", "BEGIN"}
		if db.Dialect == MySQL {
			if tx.mysqlID, err = mysqlConnectionID(ctx, tx.conn); err != nil {
				tx.Close()
				return nil, err
			}
			// Without WITH CONSISTENT SNAPSHOT, the snapshot is taken
			// by the first read, after its table is opened.
			begin = []string{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION READ ONLY"}
		}
	}
	for _, stmt := range append(begin, prelude...) {
		if err := tx.exec(ctx, stmt); err != nil {
			tx.Close()
			return nil, err
		}
	}
	return tx, nil
}

func (tx *ReadTx) exec(ctx context.Context, stmt string) error {
	if tx.pg != nil {
		_, err := tx.pg.Exec(ctx, stmt)
		return err
	}
	_, err := tx.conn.ExecContext(ctx, stmt)
	return err
}

// Query runs query with args in the transaction and returns its typed rows,
// decoded as a task's rows are. Placeholders are the database's own. The
// query is cancelled at the database when ctx ends.
func (tx *ReadTx) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	if tx.closed {
		return nil, errors.New("read transaction is closed")
	}
	switch tx.db.Dialect {
	case Postgres:
		return pgQuery(ctx, tx.pg, query, pgx.QueryExecModeDescribeExec, args, nil)
	case MySQL:
		return tx.db.mysqlQuery(ctx, tx.conn, tx.mysqlID, query, args, true, func(killed bool) error {
			tx.killed = tx.killed || killed
			return nil
		})
	}
	return querySQLiteRows(ctx, tx.conn, query, args)
}

// Close ends the transaction and gives its connection back to the pool (or
// closes it, if it may not be reused). It is safe to call more than once.
func (tx *ReadTx) Close() error {
	if tx.closed {
		return nil
	}
	tx.closed = true
	ctx, cancel := context.WithTimeout(tx.ctx, readTxCleanupTimeout)
	defer cancel()
	if tx.pg != nil {
		_, err := tx.pg.Exec(ctx, "ROLLBACK")
		// The pool closes a connection left inside a transaction.
		tx.pg.Release()
		return err
	}
	var err error
	if !tx.killed {
		_, err = tx.conn.ExecContext(ctx, "ROLLBACK")
	}
	if err == nil && tx.db.Dialect == SQLite {
		_, err = tx.conn.ExecContext(ctx, "PRAGMA query_only = 0")
	}
	if tx.killed || err != nil {
		_ = tx.conn.Raw(func(any) error { return errBadConn })
	}
	return errors.Join(err, tx.conn.Close())
}

package sqlexec

import (
	"context"
	"errors"
	"time"
)

// ReadTx is a read-only transaction on one connection of a DB: every query
// in it reads the same committed state of the database, whatever other
// sessions commit meanwhile. Its queries run one at a time: close one's Rows
// before the next query. It is not safe for concurrent use.
type ReadTx struct {
	conn   readConn
	ctx    context.Context // for clean-up once the caller's context has ended
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
	conn, err := db.src.readConn(ctx)
	if err != nil {
		return nil, err
	}
	tx := &ReadTx{conn: conn, ctx: context.WithoutCancel(ctx)}
	err = conn.begin(ctx)
	if err == nil {
		err = execEach(ctx, conn, prelude...)
	}
	if err != nil {
		tx.Close()
		return nil, err
	}
	return tx, nil
}

// execEach runs stmts on c in order, up to the first that fails.
func execEach(ctx context.Context, c readConn, stmts ...string) error {
	for _, stmt := range stmts {
		if err := c.exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// Query runs query with args in the transaction and returns its typed rows,
// decoded as a task's rows are. Placeholders are the database's own. The
// query is cancelled at the database when ctx ends.
func (tx *ReadTx) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	if tx.closed {
		return nil, errors.New("read transaction is closed")
	}
	return tx.conn.query(ctx, query, args)
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
	return tx.conn.end(ctx)
}

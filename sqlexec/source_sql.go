package sqlexec

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
)

// errBadConn tells database/sql to discard a connection.
var errBadConn = driver.ErrBadConn

// sqlSource is the part of a source that database/sql gives MySQL and
// SQLite alike; mysqlSource and sqliteSource embed it and add what differs.
type sqlSource struct{ pool *sql.DB }

func (s sqlSource) pgxPool() *pgxpool.Pool { return nil }
func (s sqlSource) sqlPool() *sql.DB       { return s.pool }

func (s sqlSource) ping(ctx context.Context) error { return s.pool.PingContext(ctx) }

func (s sqlSource) stats() PoolStats {
	st := s.pool.Stats()
	return PoolStats{Open: st.OpenConnections, InUse: st.InUse, Idle: st.Idle}
}

func (s sqlSource) close() { s.pool.Close() }

// prepare asks the driver for the number of arguments, which SQLite's may
// not know (-1).
func (s sqlSource) prepare(ctx context.Context, query string) (int, error) {
	conn, err := s.pool.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n := -1
	err = conn.Raw(func(dc any) error {
		var (
			st  driver.Stmt
			err error
		)
		if p, ok := dc.(driver.ConnPrepareContext); ok {
			st, err = p.PrepareContext(ctx, query)
		} else {
			st, err = dc.(driver.Conn).Prepare(query)
		}
		if err != nil {
			return err
		}
		n = st.NumInput()
		return st.Close()
	})
	return n, err
}

func (s sqlSource) querier() Querier { return SQLQuerier(s.pool) }

func (s sqlSource) inTx(ctx context.Context, fn func(Querier) error) error {
	tx, err := s.pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(SQLQuerier(tx)); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// sqlReadConn is the part of a ReadTx's connection that database/sql gives
// MySQL and SQLite alike.
type sqlReadConn struct {
	conn *sql.Conn
	// restore, if set, puts back after the rollback a session setting
	// that begin changed.
	restore string
	// killed: a KILL QUERY may be on its way to the connection, which
	// therefore must not be reused.
	killed bool
}

func (c *sqlReadConn) exec(ctx context.Context, stmt string) error {
	_, err := c.conn.ExecContext(ctx, stmt)
	return err
}

func (c *sqlReadConn) end(ctx context.Context) error {
	var err error
	if !c.killed {
		err = c.exec(ctx, "ROLLBACK")
	}
	if err == nil && c.restore != "" {
		err = c.exec(ctx, c.restore)
	}
	if c.killed || err != nil {
		_ = c.conn.Raw(func(any) error { return errBadConn })
	}
	return errors.Join(err, c.conn.Close())
}

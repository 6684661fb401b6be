package sqlexec

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
)

// A MySQL query that is cancelled keeps running on the server unless a KILL
// QUERY, sent on another connection, names its connection's ID. Asking each
// connection its ID before every query cost a round trip a job; idConnector
// asks once, when the connection opens, and the connection carries it.

// idConnector opens connections that know their server-side ID.
type idConnector struct{ driver.Connector }

func (c idConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	id, err := askConnectionID(ctx, conn)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("connection ID: %w", err), conn.Close())
	}
	return &idConn{Conn: conn, id: id}, nil
}

// askConnectionID runs SELECT CONNECTION_ID() on a new driver connection.
func askConnectionID(ctx context.Context, conn driver.Conn) (int64, error) {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return 0, errors.New("the MySQL driver's connection cannot run a query")
	}
	rows, err := q.QueryContext(ctx, "SELECT CONNECTION_ID()", nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	vals := make([]driver.Value, 1)
	if err := rows.Next(vals); err != nil {
		if err == io.EOF {
			err = errors.New("no row")
		}
		return 0, err
	}
	var id sql.NullInt64
	if err := id.Scan(vals[0]); err != nil {
		return 0, err
	}
	return id.Int64, nil
}

// idConn is a MySQL driver connection with its ID. It passes on every
// optional interface of the driver's connection that database/sql looks
// for, so that the pool uses it as it would the driver's own.
type idConn struct {
	driver.Conn
	id int64
	// stmts are the statements the connection keeps prepared (see
	// PrepareContext), the most recently used last. database/sql uses a
	// connection from one goroutine at a time, so they need no lock.
	stmts []*keptStmt
}

var (
	_ driver.ConnBeginTx        = (*idConn)(nil)
	_ driver.ConnPrepareContext = (*idConn)(nil)
	_ driver.ExecerContext      = (*idConn)(nil)
	_ driver.QueryerContext     = (*idConn)(nil)
	_ driver.Pinger             = (*idConn)(nil)
	_ driver.SessionResetter    = (*idConn)(nil)
	_ driver.Validator          = (*idConn)(nil)
	_ driver.NamedValueChecker  = (*idConn)(nil)
	_ driver.Connector          = idConnector{}
)

func (c *idConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

// keptStmtsMax is how many prepared statements a connection keeps. A
// server holds a bounded number for all its clients (MySQL's
// max_prepared_stmt_count, 16,382 by default): a pool of 20 connections
// keeps at most 160.
const keptStmtsMax = 8

// PrepareContext prepares query, or hands out the statement of the same text
// that the connection prepared before and keeps. A task's query is prepared
// (see mysqlQuery) and runs again and again: preparing it each time cost a
// one-row job a round trip and the server a parse, and closing it a packet.
// The server sends a kept statement's columns again when they changed (a
// table altered since), and prepares it again itself when its tables
// change; a connection that breaks takes its statements with it.
func (c *idConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	for i, k := range c.stmts {
		if k.query == query && !k.busy {
			copy(c.stmts[i:], c.stmts[i+1:])
			c.stmts[len(c.stmts)-1] = k
			k.busy = true
			return k, nil
		}
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if !keepable(st) {
		return st, nil
	}
	if len(c.stmts) >= keptStmtsMax {
		i := slices.IndexFunc(c.stmts, func(k *keptStmt) bool { return !k.busy })
		if i < 0 {
			// Every kept statement is in use (a query inside another's
			// rows): this one is not kept.
			return st, nil
		}
		// The least recently used goes. Should the close not reach the
		// server, the connection is broken, and its next statement
		// finds that out.
		_ = c.stmts[i].Stmt.Close()
		c.stmts = slices.Delete(c.stmts, i, i+1)
	}
	k := &keptStmt{Stmt: st, query: query, busy: true}
	c.stmts = append(c.stmts, k)
	return k, nil
}

// keptStmt is a statement that its connection keeps prepared: closing it
// hands it back to the connection.
type keptStmt struct {
	driver.Stmt
	query string
	busy  bool // handed out and not closed since
}

var (
	_ driver.StmtQueryContext  = (*keptStmt)(nil)
	_ driver.StmtExecContext   = (*keptStmt)(nil)
	_ driver.NamedValueChecker = (*keptStmt)(nil)
)

// keepable reports whether st has every optional interface that keptStmt
// passes on, so that database/sql uses a kept statement as it would st.
func keepable(st driver.Stmt) bool {
	_, q := st.(driver.StmtQueryContext)
	_, e := st.(driver.StmtExecContext)
	_, n := st.(driver.NamedValueChecker)
	return q && e && n
}

func (k *keptStmt) Close() error {
	k.busy = false
	return nil
}

func (k *keptStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return k.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (k *keptStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return k.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (k *keptStmt) CheckNamedValue(nv *driver.NamedValue) error {
	return k.Stmt.(driver.NamedValueChecker).CheckNamedValue(nv)
}

func (c *idConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := c.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *idConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := c.Conn.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *idConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *idConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *idConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *idConn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.Conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// connectionID is the ID of conn's connection on the server.
func connectionID(ctx context.Context, conn *sql.Conn) (int64, error) {
	var id int64
	known := false
	if err := conn.Raw(func(dc any) error {
		if c, ok := dc.(*idConn); ok {
			id, known = c.id, true
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if known {
		return id, nil
	}
	err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id)
	return id, err
}

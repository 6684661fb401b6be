package sqlexec

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlSource reads from MySQL or MariaDB through database/sql.
type mysqlSource struct {
	sqlSource
	// mariaDB: the server is MariaDB, whose statement timeout differs
	// from MySQL's.
	mariaDB bool
	// scripts, on a results pool, is a pool of its own whose statements
	// may be several separated by semicolons, sent in one round trip
	// (see DB.Scripts); nil where the driver does not interpolate.
	scripts *sql.DB
}

// scriptsMaxActive bounds the connections of a MySQL results pool's
// scripts pool, beyond max_active.
const scriptsMaxActive = 2

func (s *mysqlSource) close() {
	s.pool.Close()
	if s.scripts != nil {
		s.scripts.Close()
	}
}

var _ source = (*mysqlSource)(nil)

// openMySQL opens a database/sql pool, checks that the server answers and
// asks it whether it is MariaDB.
func openMySQL(ctx context.Context, cfg DBConfig, opts OpenOptions) (*mysqlSource, error) {
	mcfg, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, &KeyError{Key: "dsn", Err: fmt.Errorf("invalid MySQL DSN: %w", redact(err))}
	}
	// Rows are parsed from their text form by sqlexec, in UTC.
	mcfg.ParseTime = false
	mcfg.Loc = time.UTC
	mcfg.Timeout = cfg.ConnectTimeout
	if opts.Results {
		// The ledger's conditional writes read "0 rows changed" as "refused".
		mcfg.ClientFoundRows = false
		if mcfg.Params == nil {
			mcfg.Params = map[string]string{}
		}
		mcfg.Params["time_zone"] = "'+00:00'"
		mcfg.Params["sql_mode"] = "'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
	}
	if opts.Results {
		// The ledger's and the results' statements then take one round
		// trip each, not three (prepare, execute, close). The driver
		// refuses it under a few multi-byte character sets, where
		// escaping is not safe: those keep prepared statements.
		icfg := mcfg.Clone()
		icfg.InterpolateParams = true
		if conn, err := mysql.NewConnector(icfg); err == nil {
			s, err := openMySQLPool(ctx, cfg, conn)
			if err != nil {
				return nil, err
			}
			scfg := icfg.Clone()
			scfg.MultiStatements = true
			if sconn, err := mysql.NewConnector(scfg); err == nil {
				// Connected on first use, as a pool is. Its users (a
				// ledger's claims) hold a connection for a moment.
				s.scripts = sql.OpenDB(idConnector{sconn})
				s.scripts.SetMaxOpenConns(scriptsMaxActive)
				s.scripts.SetMaxIdleConns(scriptsMaxActive)
				s.scripts.SetConnMaxIdleTime(5 * time.Minute)
			}
			return s, nil
		}
	}
	conn, err := mysql.NewConnector(mcfg)
	if err != nil {
		return nil, &KeyError{Key: "dsn", Err: fmt.Errorf("invalid MySQL DSN: %w", redact(err))}
	}
	return openMySQLPool(ctx, cfg, conn)
}

// openMySQLPool opens the pool of conn, checks that the server answers and
// asks it whether it is MariaDB.
func openMySQLPool(ctx context.Context, cfg DBConfig, conn driver.Connector) (*mysqlSource, error) {
	pool := sql.OpenDB(idConnector{conn})
	pool.SetMaxOpenConns(cfg.MaxActive)
	pool.SetMaxIdleConns(cfg.MaxIdle)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	s := &mysqlSource{sqlSource: sqlSource{pool: pool}}
	err := connect(ctx, cfg, s, func(ctx context.Context) error {
		var version string
		if err := pool.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			return fmt.Errorf("server version: %w", err)
		}
		s.mariaDB = strings.Contains(strings.ToLower(version), "mariadb")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *mysqlSource) query(ctx context.Context, t *Task, args []any) (Rows, error) {
	conn, err := s.pool.Conn(ctx)
	if err != nil {
		return nil, err
	}
	connID, err := connectionID(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cleanupCtx := context.WithoutCancel(ctx)
	reset := "" // the statement that undoes per-query session settings
	release := func(killed bool) error {
		// A kill that was sent (or is on its way) must not hit the next
		// query on this connection, so the connection goes.
		discard := killed
		if reset != "" && !discard {
			ctx, cancel := context.WithTimeout(cleanupCtx, killTimeout)
			_, err := conn.ExecContext(ctx, reset)
			cancel()
			// Else the session setting would outlive this query.
			discard = err != nil
		}
		if discard {
			_ = conn.Raw(func(any) error { return errBadConn })
		}
		return conn.Close()
	}
	query := t.SQL
	if t.Timeout > 0 {
		if s.mariaDB {
			// Scoped to the one statement: nothing to reset afterwards.
			query = fmt.Sprintf("SET STATEMENT max_statement_time=%s FOR %s",
				strconv.FormatFloat(t.Timeout.Seconds(), 'f', -1, 64), query)
		} else {
			if _, err := conn.ExecContext(ctx, "SET SESSION max_execution_time = ?", t.Timeout.Milliseconds()); err != nil {
				_ = release(false)
				return nil, err
			}
			reset = "SET SESSION max_execution_time = DEFAULT"
		}
	}
	return s.mysqlQuery(ctx, conn, connID, query, args, !t.Raw, release)
}

// mysqlQuery runs query on conn, whose connection ID is connID, and returns
// its typed rows. With prepare, the query is a prepared statement, which
// answers in the binary protocol: it carries FLOAT and DOUBLE exactly,
// where the text protocol (what a query without arguments would use) rounds
// FLOAT to 6 digits. release runs when the rows are closed, or at once if
// the query fails; killed says whether a KILL QUERY was sent to conn.
func (s *mysqlSource) mysqlQuery(ctx context.Context, conn *sql.Conn, connID int64, query string, args []any, prepare bool,
	release func(killed bool) error) (*sqlRows, error) {
	r := &sqlRows{release: release}
	// Cancelling the context only closes the client's socket; the server
	// would run the query to its end. KILL QUERY, sent on another
	// connection, stops it there.
	kill := func() {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		_, _ = s.pool.ExecContext(kctx, "KILL QUERY "+strconv.FormatInt(connID, 10))
	}
	r.stopKill = context.AfterFunc(ctx, kill)
	r.killIfEnded = func() bool {
		if ctx.Err() == nil {
			return false
		}
		kill()
		return true
	}
	var err error
	if prepare {
		r.stmt, err = conn.PrepareContext(ctx, query)
		if err == nil {
			r.rows, err = r.stmt.QueryContext(ctx, args...)
		}
	} else {
		r.rows, err = conn.QueryContext(ctx, query, args...)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	cts, err := r.rows.ColumnTypes()
	if err != nil {
		r.Close()
		return nil, err
	}
	r.decodedRow = decodedRow{cols: make([]Column, len(cts)), dec: make([]decoder, len(cts)), vals: make([]any, len(cts))}
	for i, ct := range cts {
		r.cols[i], r.dec[i] = mysqlColumn(ct)
	}
	r.raw = make([]sql.RawBytes, len(cts))
	r.wire = make([][]byte, len(cts))
	r.ptrs = make([]any, len(cts))
	for i := range r.raw {
		r.ptrs[i] = &r.raw[i]
	}
	return r, nil
}

// mysqlReadConn is a ReadTx's connection to MySQL.
type mysqlReadConn struct {
	sqlReadConn
	src *mysqlSource
	id  int64 // the connection's ID, for KILL QUERY
}

func (s *mysqlSource) readConn(ctx context.Context) (readConn, error) {
	conn, err := s.pool.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &mysqlReadConn{sqlReadConn: sqlReadConn{conn: conn}, src: s}, nil
}

func (c *mysqlReadConn) begin(ctx context.Context) error {
	var err error
	if c.id, err = connectionID(ctx, c.conn); err != nil {
		return err
	}
	// Without WITH CONSISTENT SNAPSHOT, the snapshot is taken by the
	// first read, after its table is opened.
	return execEach(ctx, c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION READ ONLY")
}

func (c *mysqlReadConn) query(ctx context.Context, query string, args []any) (Rows, error) {
	return c.src.mysqlQuery(ctx, c.conn, c.id, query, args, true, func(killed bool) error {
		c.killed = c.killed || killed
		return nil
	})
}

// killTimeout bounds the KILL QUERY that stops a cancelled query.
const killTimeout = 10 * time.Second

// mysqlColumn maps a MySQL result column to its portable type and the decoder
// of its text form.
func mysqlColumn(ct *sql.ColumnType) (Column, decoder) {
	col := Column{Name: ct.Name()}
	name := ct.DatabaseTypeName()
	switch name {
	case "UNSIGNED BIGINT":
		col.Type = TypeUint64
		return col, textUint
	case "DECIMAL":
		col.Type = TypeDecimal
		if p, s, ok := ct.DecimalSize(); ok {
			// The driver assumes a sign character when it derives the
			// precision from the display length, so an UNSIGNED column
			// (which it cannot tell us about) comes out one digit short.
			// One digit more is always enough (65 is MySQL's most).
			col.Precision, col.Scale = min(int(p)+1, 65), int(s)
		}
		return col, textString
	case "FLOAT", "DOUBLE":
		col.Type = TypeFloat64
		return col, textFloat
	case "DATE":
		col.Type = TypeDate
		return col, textDate
	case "DATETIME", "TIMESTAMP":
		// TIMESTAMP is read as the wall-clock time of the source session's
		// time_zone, which is what the query means by it.
		col.Type = TypeTimestamp
		return col, textTimestamp
	case "JSON":
		col.Type = TypeJSON
		return col, textString
	case "BIT", "BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB", "GEOMETRY":
		col.Type = TypeBytes
		return col, copyBytes
	}
	if strings.HasSuffix(name, "INT") || name == "YEAR" {
		col.Type = TypeInt64
		return col, textInt
	}
	col.Type = TypeText
	return col, textString
}

// sqlRows reads a database/sql result whose values arrive as text
// (sql.RawBytes), decoding each column with its own decoder.
type sqlRows struct {
	decodedRow
	stmt *sql.Stmt
	rows *sql.Rows
	// stopKill disarms the KILL QUERY that a cancelled context sends;
	// killIfEnded sends it now if the context has ended, and reports
	// whether it did.
	stopKill    func() bool
	killIfEnded func() bool
	release     func(killed bool) error
	closed      bool
	raw         []sql.RawBytes
	wire        [][]byte // raw, as WireValues hands it out
	ptrs        []any
}

func (r *sqlRows) Next() bool {
	return r.scan() && decode(&r.decodedRow, r.raw)
}

// scan reads the next row's text into raw.
func (r *sqlRows) scan() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = err
		return false
	}
	return true
}

var _ WireRows = (*sqlRows)(nil)

// Wire: the driver hands out every value as text (sql.RawBytes).
func (r *sqlRows) Wire() (Dialect, []WireColumn) { return MySQL, make([]WireColumn, len(r.cols)) }

func (r *sqlRows) NextWire() bool {
	if !r.scan() {
		return false
	}
	for i, b := range r.raw {
		r.wire[i] = b
	}
	return true
}

func (r *sqlRows) WireValues() [][]byte { return r.wire }

func (r *sqlRows) DecodeWire(i int, b []byte) (any, error) { return r.dec[i](b) }

func (r *sqlRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if r.rows != nil {
		return r.rows.Err()
	}
	return nil
}

func (r *sqlRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.rows != nil {
		r.rows.Close()
	}
	if r.stmt != nil {
		r.stmt.Close()
	}
	// A context's Done closes before its AfterFuncs start: the driver can
	// see the cancellation and end the rows, and Close disarm the kill,
	// before the kill is sent. Then Close sends it, or the query would
	// run on at the server.
	killed := r.stopKill != nil && (!r.stopKill() || r.killIfEnded())
	if r.release != nil {
		return r.release(killed)
	}
	return nil
}

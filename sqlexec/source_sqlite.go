package sqlexec

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// sqliteSource reads from a SQLite file through database/sql.
type sqliteSource struct{ sqlSource }

var _ source = (*sqliteSource)(nil)

// openSQLite opens a SQLite file. The DSN is a path or a file: URI; WAL, a
// busy timeout and immediate write transactions are added unless the DSN sets
// its own pragmas, so that concurrent jobs wait for the write lock instead of
// failing with SQLITE_BUSY.
func openSQLite(ctx context.Context, cfg DBConfig) (*sqliteSource, error) {
	dsn := cfg.DSN
	path, query, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	if path != "" && path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, &KeyError{Key: "dsn", Err: fmt.Errorf("create directory for SQLite file: %w", err)}
		}
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, &KeyError{Key: "dsn", Err: fmt.Errorf("invalid SQLite DSN query: %w", err)}
	}
	if _, ok := params["_pragma"]; !ok {
		params.Add("_pragma", "busy_timeout(30000)")
		params.Add("_pragma", "journal_mode(WAL)")
		params.Add("_pragma", "synchronous(NORMAL)")
	}
	if _, ok := params["_txlock"]; !ok {
		params.Set("_txlock", "immediate")
	}
	pool := sql.OpenDB(sqliteConnector{dsn: "file:" + path + "?" + params.Encode()})
	pool.SetMaxOpenConns(cfg.MaxActive)
	pool.SetMaxIdleConns(cfg.MaxIdle)
	s := &sqliteSource{sqlSource{pool: pool}}
	if err := connect(ctx, cfg, s, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// sqliteDriver opens sqlexec's SQLite connections. It is a driver of its
// own, not the one modernc.org/sqlite registers for the whole process, so
// that its collation reaches only sqlexec's connections. It is set up once
// and never changes.
var sqliteDriver = func() *sqlite.Driver {
	d := &sqlite.Driver{}
	d.MustRegisterCollationUtf8(SQLiteDecimalCollation, CompareDecimal)
	return d
}()

// sqliteConnector connects to one SQLite DSN through sqliteDriver.
type sqliteConnector struct{ dsn string }

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	return sqliteDriver.Open(c.dsn)
}
func (c sqliteConnector) Driver() driver.Driver { return sqliteDriver }

// prepare falls back to counting the parameters in query where the driver
// cannot tell.
func (s *sqliteSource) prepare(ctx context.Context, query string) (int, error) {
	n, err := s.sqlSource.prepare(ctx, query)
	if err == nil && n < 0 {
		n = sqliteParamCount(query)
	}
	return n, err
}

func (s *sqliteSource) query(ctx context.Context, t *Task, args []any) (Rows, error) {
	if t.Timeout > 0 {
		// SQLite has no server-side timeout; the driver interrupts the
		// statement when the context ends.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		r, err := querySQLiteRows(ctx, s.pool, t.SQL, args)
		if err != nil {
			cancel()
			return nil, err
		}
		r.cancel = cancel
		return r, nil
	}
	return querySQLiteRows(ctx, s.pool, t.SQL, args)
}

// sqlQueryer is a database/sql pool or one of its connections.
type sqlQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func querySQLiteRows(ctx context.Context, q sqlQueryer, query string, args []any) (*sqliteRows, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	r := &sqliteRows{rows: rows}
	cts, err := rows.ColumnTypes()
	if err != nil {
		r.Close()
		return nil, err
	}
	r.cols = make([]Column, len(cts))
	r.raw = make([]any, len(cts))
	r.ptrs = make([]any, len(cts))
	for i := range r.raw {
		r.ptrs[i] = &r.raw[i]
	}
	r.vals = make([]any, len(cts))
	var infer []int
	for i, ct := range cts {
		var ok bool
		r.cols[i], ok = SQLiteColumn(ct.Name(), ct.DatabaseTypeName())
		if !ok {
			infer = append(infer, i)
		}
	}
	if len(infer) > 0 {
		// Columns without a declared type (expressions, aggregates) take
		// the type of their first value, so the first row is read now.
		r.peeked = r.scan()
		for _, i := range infer {
			if r.peeked {
				r.cols[i].Type = sqliteInfer(r.raw[i])
			}
		}
	}
	return r, nil
}

// sqliteReadConn is a ReadTx's connection to SQLite.
type sqliteReadConn struct{ sqlReadConn }

func (s *sqliteSource) readConn(ctx context.Context) (readConn, error) {
	conn, err := s.pool.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &sqliteReadConn{sqlReadConn{conn: conn, restore: "PRAGMA query_only = 0"}}, nil
}

// begin: query_only refuses writes; a deferred transaction reads one
// snapshot from its first read on.
func (c *sqliteReadConn) begin(ctx context.Context) error {
	return execEach(ctx, c, "PRAGMA query_only = 1", "BEGIN")
}

func (c *sqliteReadConn) query(ctx context.Context, query string, args []any) (Rows, error) {
	return querySQLiteRows(ctx, c.conn, query, args)
}

var sqliteDecimalRe = regexp.MustCompile(`^(DECIMAL_TEXT|DECIMAL|NUMERIC)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$`)

// SQLiteColumn maps a declared SQLite column type to a portable type,
// recognising the names sql-jobber itself gives results columns. ok is false
// when the declared type says nothing (an expression) or is not one SQLite
// knows, and the type is to be inferred from the values.
func SQLiteColumn(name, decl string) (col Column, ok bool) {
	col = Column{Name: name}
	d := strings.ToUpper(strings.TrimSpace(decl))
	if m := sqliteDecimalRe.FindStringSubmatch(d); m != nil {
		col.Type = TypeDecimal
		// SQLite does not enforce a declared DECIMAL(p,s) (the values
		// are integers or floats of any size), so only sql-jobber's own
		// exact-text columns keep their precision and scale.
		if m[1] == "DECIMAL_TEXT" {
			col.Precision, _ = strconv.Atoi(m[2])
			col.Scale, _ = strconv.Atoi(m[3])
		}
		return col, true
	}
	switch d {
	case "":
		return col, false
	case "UNSIGNED_TEXT":
		col.Type = TypeUint64
	case "JSON", "JSON_TEXT", "JSONB":
		col.Type = TypeJSON
	case "BOOL", "BOOLEAN":
		col.Type = TypeBool
	case "DATE":
		col.Type = TypeDate
	case "DATETIME", "TIMESTAMP":
		col.Type = TypeTimestamp
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		col.Type = TypeTimestampTZ
	default:
		// SQLite's own affinity rules, in its order.
		switch {
		case strings.Contains(d, "INT"):
			col.Type = TypeInt64
		case strings.Contains(d, "CHAR"), strings.Contains(d, "CLOB"), strings.Contains(d, "TEXT"):
			col.Type = TypeText
		case strings.Contains(d, "BLOB"):
			col.Type = TypeBytes
		case strings.Contains(d, "REAL"), strings.Contains(d, "FLOA"), strings.Contains(d, "DOUB"):
			col.Type = TypeFloat64
		default:
			return col, false
		}
	}
	return col, true
}

func sqliteInfer(v any) Type {
	switch v.(type) {
	case int64:
		return TypeInt64
	case float64:
		return TypeFloat64
	case []byte:
		return TypeBytes
	case time.Time:
		return TypeTimestamp
	}
	return TypeText
}

type sqliteRows struct {
	rows   *sql.Rows
	cancel context.CancelFunc
	cols   []Column
	raw    []any
	ptrs   []any
	vals   []any
	peeked bool // raw holds a row read ahead that Next has not returned
	err    error
}

func (r *sqliteRows) Columns() []Column { return r.cols }
func (r *sqliteRows) Values() []any     { return r.vals }

func (r *sqliteRows) scan() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = err
		return false
	}
	return true
}

func (r *sqliteRows) Next() bool {
	if r.peeked {
		r.peeked = false
	} else if !r.scan() {
		return false
	}
	for i, v := range r.raw {
		if v == nil {
			r.vals[i] = nil
			continue
		}
		out, err := sqliteConvert(r.cols[i].Type, v)
		if err != nil {
			r.err = fmt.Errorf("column %q: %w", r.cols[i].Name, err)
			return false
		}
		r.vals[i] = out
	}
	return true
}

func (r *sqliteRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *sqliteRows) Close() error {
	err := r.rows.Close()
	if r.cancel != nil {
		r.cancel()
	}
	return err
}

// sqliteConvert turns a value of any SQLite storage class into the Go type of
// the column's portable type, refusing what would lose data.
func sqliteConvert(t Type, v any) (any, error) {
	switch t {
	case TypeInt64, TypeUint64, TypeFloat64, TypeDecimal:
		return sqliteNumber(t, v)
	case TypeBool:
		switch x := v.(type) {
		case int64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case string:
			return textBool([]byte(x))
		}
	case TypeDate, TypeTimestamp, TypeTimestampTZ:
		switch x := v.(type) {
		case time.Time:
			if t == TypeDate {
				y, m, d := x.Date()
				return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
			}
			return x, nil
		case string:
			if t == TypeDate {
				return textDate([]byte(x))
			}
			return textTimestamp([]byte(x))
		}
	case TypeBytes:
		switch x := v.(type) {
		case []byte:
			return copyBytes(x)
		case string:
			return []byte(x), nil
		}
	default: // TypeText, TypeJSON
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case time.Time:
			return x.Format(time.RFC3339Nano), nil
		}
	}
	return nil, errSQLiteFit(t, v)
}

// sqliteNumber is sqliteConvert for the numeric types.
func sqliteNumber(t Type, v any) (any, error) {
	switch x := v.(type) {
	case int64:
		switch {
		case t == TypeInt64:
			return x, nil
		case t == TypeUint64 && x >= 0:
			return uint64(x), nil
		case t == TypeFloat64 && int64(float64(x)) == x:
			return float64(x), nil
		case t == TypeDecimal:
			return strconv.FormatInt(x, 10), nil
		}
	case float64:
		switch {
		case t == TypeInt64 && x == math.Trunc(x) && math.Abs(x) < 1<<63:
			return int64(x), nil
		case t == TypeFloat64:
			return x, nil
		case t == TypeDecimal && !math.IsInf(x, 0) && !math.IsNaN(x):
			return strconv.FormatFloat(x, 'f', -1, 64), nil
		}
	case string:
		switch t {
		case TypeInt64:
			return textInt([]byte(x))
		case TypeUint64:
			return textUint([]byte(x))
		case TypeFloat64:
			return textFloat([]byte(x))
		case TypeDecimal:
			if _, _, err := ParseDecimal(x); err != nil {
				return nil, err
			}
			return x, nil
		}
	}
	return nil, errSQLiteFit(t, v)
}

// errSQLiteFit says that v cannot be a value of a column of type t.
func errSQLiteFit(t Type, v any) error {
	return fmt.Errorf("value %v (%T) does not fit the column's type %s; CAST it in the task", v, v, t)
}

// ErrArgs is returned when a job's arguments do not match its task.
var ErrArgs = errors.New("wrong number of arguments")

package resultsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// mysqlDialect writes to MySQL or MariaDB.
type mysqlDialect struct {
	// mariaDB: MariaDB's JSON keeps the text as written; MySQL's is a
	// binary format that reorders keys and drops duplicates.
	mariaDB bool
}

var _ dialect = mysqlDialect{}

// mysqlPublishLockTimeout bounds the wait for another publication of the
// same table.
const mysqlPublishLockTimeout = 2 * time.Minute

func fnv64(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// MySQL's DECIMAL holds at most 65 digits, 30 of them after the point.
const (
	mysqlMaxPrecision = 65
	mysqlMaxScale     = 30
)

func (mysqlDialect) maxIdentLen() int          { return 64 }
func (mysqlDialect) quote(ident string) string { return quoteWith("`", ident) }

var mysqlColumnTypes = columnTypes{
	sqlexec.TypeText:    "LONGTEXT",
	sqlexec.TypeInt64:   "BIGINT",
	sqlexec.TypeUint64:  "BIGINT UNSIGNED",
	sqlexec.TypeFloat64: "DOUBLE",
	sqlexec.TypeBool:    "BOOLEAN",
	sqlexec.TypeDate:    "DATE",
	// TIMESTAMP would end in 2038; instants are stored in UTC.
	sqlexec.TypeTimestamp:   "DATETIME(6)",
	sqlexec.TypeTimestampTZ: "DATETIME(6)",
	sqlexec.TypeJSON:        "JSON",
	sqlexec.TypeBytes:       "LONGBLOB",
}

func (d mysqlDialect) columnType(c sqlexec.Column) string {
	switch {
	case c.Type == sqlexec.TypeDecimal && mysqlDecimalFits(c):
		return fmt.Sprintf("DECIMAL(%d,%d)", c.Precision, c.Scale)
	case c.Type == sqlexec.TypeDecimal:
		// Unconstrained or wider than MySQL allows: the widest DECIMAL,
		// with every value checked to fit before it is sent (a bare
		// DECIMAL would round to 0 places).
		return fmt.Sprintf("DECIMAL(%d,%d)", mysqlMaxPrecision, mysqlMaxScale)
	case c.Type == sqlexec.TypeJSON && !d.mariaDB:
		return fmt.Sprintf("LONGTEXT CHECK (JSON_VALID(%s))", d.quote(c.Name))
	}
	return mysqlColumnTypes[c.Type]
}

func mysqlDecimalFits(c sqlexec.Column) bool {
	return c.Precision > 0 && c.Precision <= mysqlMaxPrecision && c.Scale <= mysqlMaxScale
}

func (d mysqlDialect) create(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, _ bool) error {
	_, err := db.SQL().ExecContext(ctx, createTableSQL(d, "", table, cols, " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", true))
	return err
}

// load streams the rows through LOAD DATA LOCAL INFILE from a reader that
// encodes rows on demand, so no file and no whole result set exist.
func (d mysqlDialect) load(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error) {
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()

	r := &loadDataReader{rows: rows, cols: cols, wire: newMyWire(rows, cols)}
	// The driver's registry is global; the table name (a staging name with
	// the run ID) makes the handler's name unique.
	handler := "sqljobber/" + table
	mysql.RegisterReaderHandler(handler, func() io.Reader { return r })
	defer mysql.DeregisterReaderHandler(handler)

	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = d.quote(c.Name)
	}
	q := fmt.Sprintf(`LOAD DATA LOCAL INFILE 'Reader::%s' INTO TABLE %s CHARACTER SET utf8mb4 `+
		`FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' (%s)`,
		handler, d.quote(table), strings.Join(names, ", "))
	res, err := conn.ExecContext(ctx, q)
	if r.err != nil {
		return 0, r.err
	}
	if err != nil {
		return 0, err
	}
	// LOCAL turns data errors into warnings (the server cannot stop the
	// client mid-file), so any warning means a value did not arrive as
	// sent.
	var level, message string
	var code int
	switch err := conn.QueryRowContext(ctx, "SHOW WARNINGS LIMIT 1").Scan(&level, &code, &message); {
	case err == nil:
		return 0, fmt.Errorf("MySQL changed a value while loading (%s %d: %s)", level, code, message)
	case !errors.Is(err, sql.ErrNoRows):
		return 0, err
	}
	if n, err := res.RowsAffected(); err == nil && n != r.count {
		return 0, fmt.Errorf("MySQL loaded %d rows of %d", n, r.count)
	}
	return r.count, nil
}

// loadDataReader encodes rows in LOAD DATA's tab-separated text format, with
// backslash escapes and \N for NULL.
type loadDataReader struct {
	rows  sqlexec.Rows
	cols  []sqlexec.Column
	wire  *myWire // when the rows come from MySQL: see myWire
	buf   []byte
	off   int
	count int64
	done  bool
	err   error
}

const loadDataChunk = 256 << 10

func (r *loadDataReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for len(r.buf) < loadDataChunk {
			more, err := false, error(nil)
			if r.wire != nil && r.wire.ready() {
				r.buf, more, err = r.wire.appendNext(r.buf)
			} else if more = r.rows.Next(); more {
				err = r.appendRow()
			}
			if err != nil {
				r.err = err
				break
			}
			if !more {
				r.done = true
				r.err = r.rows.Err()
				break
			}
			r.count++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *loadDataReader) appendRow() error {
	for i, v := range r.rows.Values() {
		if i > 0 {
			r.buf = append(r.buf, '\t')
		}
		if v == nil {
			r.buf = append(r.buf, `\N`...)
			continue
		}
		var err error
		r.buf, err = appendMySQLValue(r.buf, r.cols[i], v)
		if err != nil {
			return fmt.Errorf("column %q: %w", r.cols[i].Name, err)
		}
	}
	r.buf = append(r.buf, '\n')
	return nil
}

const mysqlDateTime = "2006-01-02 15:04:05.999999"

func appendMySQLValue(b []byte, c sqlexec.Column, v any) ([]byte, error) {
	switch c.Type {
	case sqlexec.TypeInt64:
		return strconv.AppendInt(b, v.(int64), 10), nil
	case sqlexec.TypeUint64:
		return strconv.AppendUint(b, v.(uint64), 10), nil
	case sqlexec.TypeDecimal:
		s := v.(string)
		if !mysqlDecimalFits(c) {
			whole, frac, err := sqlexec.ParseDecimal(s)
			if err != nil {
				return b, err
			}
			if whole > mysqlMaxPrecision-mysqlMaxScale || frac > mysqlMaxScale {
				return b, fmt.Errorf("decimal %s does not fit MySQL's DECIMAL(65,30)", s)
			}
		}
		return append(b, s...), nil
	case sqlexec.TypeFloat64:
		f := v.(float64)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, fmt.Errorf("MySQL cannot store %v", f)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64), nil
	case sqlexec.TypeBool:
		if v.(bool) {
			return append(b, '1'), nil
		}
		return append(b, '0'), nil
	case sqlexec.TypeDate:
		return appendDate(b, v.(time.Time)), nil
	case sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
		t := v.(time.Time)
		if err := microseconds(t); err != nil {
			return b, err
		}
		return appendDateTime(b, t.UTC()), nil
	case sqlexec.TypeBytes:
		return appendLoadDataEscaped(b, v.([]byte)), nil
	default:
		return appendLoadDataEscaped(b, v.(string)), nil
	}
}

func appendLoadDataEscaped[T string | []byte](b []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return b
}

func (d mysqlDialect) publish(ctx context.Context, db *sqlexec.DB, staging, final string, _ int64, fence Fence) (bool, error) {
	return false, d.publishFenced(ctx, db, staging, final, fence)
}

// publishFenced swaps the table in under the fence. MySQL's DDL commits on
// its own, so the job's SUCCESS is recorded after, on its own.
func (d mysqlDialect) publishFenced(ctx context.Context, db *sqlexec.DB, staging, final string, fence Fence) error {
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// MySQL's DDL commits on its own, so the fence check and the swap are
	// made one step by a named lock that every publisher of the table
	// takes.
	lock := fmt.Sprintf("sqljobber:%x", fnv64(final))
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lock, int(mysqlPublishLockTimeout.Seconds())).Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return fmt.Errorf("another publication of %s holds its lock", final)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, _ = conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", lock)
	}()
	if err := claimFence(ctx, sqlexec.SQLQuerier(conn), db, d, final, fence); err != nil {
		return err
	}
	var exists int
	err = conn.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", final).Scan(&exists)
	if err != nil {
		return err
	}
	if exists == 0 {
		_, err = conn.ExecContext(ctx, fmt.Sprintf("RENAME TABLE %s TO %s", d.quote(staging), d.quote(final)))
		return err
	}
	// A multi-table RENAME is atomic: readers see the old table or the
	// new one. The old one keeps the staging prefix until it is dropped,
	// so a crash in between leaves it to DropStaging.
	old := staging + "_old"
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("RENAME TABLE %s TO %s, %s TO %s",
		d.quote(final), d.quote(old), d.quote(staging), d.quote(final))); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+d.quote(old))
	return err
}

func (d mysqlDialect) fenceUpsert() string {
	return fmt.Sprintf("INSERT INTO %s (table_name, token) VALUES (?, ?) ON DUPLICATE KEY UPDATE token = IF(token < VALUES(token), VALUES(token), token)",
		d.quote(fenceTable))
}

func (d mysqlDialect) drop(ctx context.Context, db *sqlexec.DB, table string) error {
	_, err := db.SQL().ExecContext(ctx, "DROP TABLE IF EXISTS "+d.quote(table))
	return err
}

func (mysqlDialect) tables(ctx context.Context, db *sqlexec.DB, prefix string) ([]string, error) {
	return queryStrings(ctx, db.SQL(),
		`SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE ?`, likePrefix(prefix))
}

func queryStrings(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (mysqlDialect) readPrelude(string) []string { return nil }

func (mysqlDialect) key(c sqlexec.Column, operand string, whole bool) string {
	if c.Type != sqlexec.TypeText && c.Type != sqlexec.TypeBytes {
		return operand
	}
	// Bytes of UTF-8, in code point order, and no trailing-space padding
	// (which the _bin collations apply).
	k := "CAST(" + operand + " AS BINARY)"
	if !whole {
		// ORDER BY sorts text and blobs by their first max_sort_length
		// bytes only.
		k = "SUBSTRING(" + k + ", 1, @@max_sort_length)"
	}
	return k
}

// nullsOrder: MySQL sorts NULLs as the smallest values.
func (mysqlDialect) nullsOrder(bool) string { return "" }

func (mysqlDialect) param(c sqlexec.Column, _ int) string {
	if c.Type == sqlexec.TypeDecimal {
		// A string compared with a DECIMAL would be compared as a
		// double.
		return fmt.Sprintf("CAST(? AS DECIMAL(%d,%d))", mysqlMaxPrecision, mysqlMaxScale)
	}
	return "?"
}

func (mysqlDialect) bind(c sqlexec.Column, v any) (any, error) {
	switch c.Type {
	case sqlexec.TypeDecimal:
		whole, frac, err := sqlexec.ParseDecimal(v.(string))
		if err != nil || whole > mysqlMaxPrecision-mysqlMaxScale || frac > mysqlMaxScale {
			return nil, fmt.Errorf("%q does not fit MySQL's DECIMAL(%d,%d), which it is compared as", v, mysqlMaxPrecision, mysqlMaxScale)
		}
	case sqlexec.TypeDate, sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
		b, err := appendMySQLValue(nil, c, v)
		return string(b), err
	}
	return v, nil
}

// appendDate appends t's date as time.DateOnly does, without its generality
// (a large share of a row's cost otherwise).
func appendDate(b []byte, t time.Time) []byte {
	y, m, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, time.DateOnly)
	}
	b = appendDigits(b, y, 4)
	b = appendDigits(append(b, '-'), int(m), 2)
	return appendDigits(append(b, '-'), d, 2)
}

// appendDateTime appends t as mysqlDateTime does: the fraction to the
// microsecond, without trailing zeros, and none if it is zero.
func appendDateTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.AppendFormat(b, mysqlDateTime)
	}
	b = appendDate(b, t)
	h, mi, s := t.Clock()
	b = appendDigits(append(b, ' '), h, 2)
	b = appendDigits(append(b, ':'), mi, 2)
	b = appendDigits(append(b, ':'), s, 2)
	us, width := t.Nanosecond()/1000, 6
	if us == 0 {
		return b
	}
	for us%10 == 0 {
		us, width = us/10, width-1
	}
	return appendDigits(append(b, '.'), us, width)
}

// appendDigits appends n (not negative) in width digits, zero-padded.
func appendDigits(b []byte, n, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:width]...)
}

package resultsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sql-jobber/sql-jobber/resultsink/wire"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// mysqlDialect writes to MySQL or MariaDB.
type mysqlDialect struct {
	// mariaDB: MariaDB's JSON keeps the text as written; MySQL's is a
	// binary format that reorders keys and drops duplicates.
	mariaDB bool
	// records batches the first fence records of small results (nil:
	// each inserted alone).
	records *firstRecords
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

func (mysqlDialect) maxIdentLen() int          { return 64 }
func (mysqlDialect) quote(ident string) string { return sqlexec.MySQL.Quote(ident) }

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
	case c.Type == sqlexec.TypeDecimal && wire.MySQLDecimalFits(c):
		return fmt.Sprintf("DECIMAL(%d,%d)", c.Precision, c.Scale)
	case c.Type == sqlexec.TypeDecimal:
		// Unconstrained or wider than MySQL allows: the widest DECIMAL,
		// with every value checked to fit before it is sent (a bare
		// DECIMAL would round to 0 places).
		return fmt.Sprintf("DECIMAL(%d,%d)", wire.MySQLMaxPrecision, wire.MySQLMaxScale)
	case c.Type == sqlexec.TypeJSON && !d.mariaDB:
		return fmt.Sprintf("LONGTEXT CHECK (JSON_VALID(%s))", d.quote(c.Name))
	}
	return mysqlColumnTypes[c.Type]
}

func (d mysqlDialect) create(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, _ bool) error {
	_, err := db.SQL().ExecContext(ctx, createTableSQL(d, "", table, cols, " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", true))
	return err
}

// load streams the rows through LOAD DATA LOCAL INFILE from a reader that
// encodes rows on demand (wire.LoadDataReader), so no file and no whole
// result set exist.
func (d mysqlDialect) load(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error) {
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()

	r := wire.NewLoadDataReader(rows, cols, wireSource(rows))
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
	if err := r.Err(); err != nil {
		return 0, err
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
	if n, err := res.RowsAffected(); err == nil && n != r.Count() {
		return 0, fmt.Errorf("MySQL loaded %d rows of %d", n, r.Count())
	}
	return r.Count(), nil
}

// writeSmall publishes a small result that is the first of its table name
// in one statement, CREATE TABLE ... SELECT, which readers see whole or not
// at all: no staging table, no LOAD DATA, no RENAME, no named lock (the
// staged path's publication costs eight more round trips, and MySQL's DDL
// is slow). The name's first fence record, inserted before it, is what
// makes it safe without the lock: a later run of the job finds the record
// and takes the staged path, whose lock and fence order the publications;
// a table of the name that exists with no record is a user's, refused.
// A name published before (a run of the same job ID, or a run racing this
// one) gives errStage: the rows go through the staged path.
func (d mysqlDialect) writeSmall(ctx context.Context, db *sqlexec.DB, final string, cols []sqlexec.Column, rows [][]any, _ bool, fence Fence) (bool, error) {
	create, err := d.createSelect(final, cols, rows)
	if err != nil {
		return false, err
	}
	// The record first, only while the run owns its job.
	if err := d.recordFirst(ctx, db, final, fence); err != nil {
		return false, err
	}
	_, err = db.Querier().Exec(ctx, create)
	if err == nil {
		return false, nil
	}
	// Take the record back, unless a newer publication of the name has
	// replaced it: a table of the name then is that one's.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	n, derr := db.Querier().Exec(cctx, fmt.Sprintf("DELETE FROM %s WHERE table_name = ? AND token = ?", d.quote(fenceTable)), final, fence.Token)
	if derr != nil {
		return false, errors.Join(err, derr)
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == 1050 { // ER_TABLE_EXISTS_ERROR
		if n == 0 {
			return false, ErrFenced
		}
		return false, foreignTable(final)
	}
	return false, err
}

// createSelect is the CREATE TABLE ... SELECT that creates final with its
// rows, each value a literal that its column reads back as it is.
func (d mysqlDialect) createSelect(final string, cols []sqlexec.Column, rows [][]any) (string, error) {
	b := []byte(createTableSQL(d, "", final, cols, " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", true))
	for r, row := range rows {
		if r == 0 {
			b = append(b, " SELECT "...)
		} else {
			b = append(b, " UNION ALL SELECT "...)
		}
		for i, v := range row {
			if i > 0 {
				b = append(b, ", "...)
			}
			var err error
			if b, err = wire.AppendMySQLLiteral(b, cols[i], v); err != nil {
				return "", fmt.Errorf("column %q (row %d): %w", cols[i].Name, r+1, err)
			}
			if r == 0 {
				// The first row's names say which column each
				// value fills.
				b = append(b, " AS "...)
				b = append(b, d.quote(cols[i].Name)...)
			}
		}
	}
	return string(b), nil
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
	// Whether a table of the name exists, and whether sql-jobber
	// published it (before claimFence records this publication): a
	// user's table is never replaced.
	var exists, ours int
	err = conn.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?), "+
			"(SELECT COUNT(*) FROM %s WHERE %s)", d.quote(fenceTable), d.fenceNameIs()), final, final).Scan(&exists, &ours)
	if err != nil {
		return err
	}
	if exists > 0 && ours == 0 {
		return foreignTable(final)
	}
	if err := claimFence(ctx, sqlexec.SQLQuerier(conn), db, d, final, fence); err != nil {
		return err
	}
	if exists == 0 {
		_, err = conn.ExecContext(ctx, fmt.Sprintf("RENAME TABLE %s TO %s", d.quote(staging), d.quote(final)))
		var myErr *mysql.MySQLError
		if !errors.As(err, &myErr) || myErr.Number != 1050 { // ER_TABLE_EXISTS_ERROR
			return err
		}
		// An earlier run of the job, taken over as it published by the
		// one-statement path (which takes no lock), created the table
		// since: this run's fence is above its, so this run replaces it.
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

func (d mysqlDialect) fenceTableSQL() string {
	return fenceTableSQLWith(d, "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
}

func (d mysqlDialect) fenceUpsert() string {
	return fmt.Sprintf("INSERT INTO %s (table_name, token) VALUES (?, ?) ON DUPLICATE KEY UPDATE token = IF(token < VALUES(token), VALUES(token), token)",
		d.quote(fenceTable))
}

func (mysqlDialect) fenceNameIs() string { return "table_name = ?" }

func (d mysqlDialect) adoptTables() string {
	return fmt.Sprintf(`INSERT IGNORE INTO %s (table_name, token) SELECT table_name, 0 FROM information_schema.columns `+
		`WHERE table_schema = DATABASE() AND column_name = '%s' AND table_name LIKE ? AND table_name NOT LIKE ?`, d.quote(fenceTable), RowColumn)
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
		return fmt.Sprintf("CAST(? AS DECIMAL(%d,%d))", wire.MySQLMaxPrecision, wire.MySQLMaxScale)
	}
	return "?"
}

func (mysqlDialect) bind(c sqlexec.Column, v any) (any, error) {
	switch c.Type {
	case sqlexec.TypeDecimal:
		whole, frac, err := sqlexec.ParseDecimal(v.(string))
		if err != nil || whole > wire.MySQLMaxPrecision-wire.MySQLMaxScale || frac > wire.MySQLMaxScale {
			return nil, fmt.Errorf("%q does not fit MySQL's DECIMAL(%d,%d), which it is compared as", v, wire.MySQLMaxPrecision, wire.MySQLMaxScale)
		}
	case sqlexec.TypeDate, sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
		b, err := wire.AppendMySQLValue(nil, c, v)
		return string(b), err
	}
	return v, nil
}

package resultsink

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

type sqliteDialect struct{}

var _ dialect = sqliteDialect{}

// SQLite has no identifier limit; this one keeps names usable by every
// client.
func (sqliteDialect) maxIdentLen() int          { return 128 }
func (sqliteDialect) quote(ident string) string { return sqlexec.SQLite.Quote(ident) }

// columnType gives SQLite declared types whose affinity keeps the value as
// written: exact decimals, unsigned 64-bit integers and JSON carry "TEXT" in
// the name (TEXT affinity), which NUMERIC affinity would turn into lossy
// floats (and none of them contains "INT", which would win). sqlexec.SQLiteColumn
// reads these names back.
func (sqliteDialect) columnType(c sqlexec.Column) string {
	if c.Type == sqlexec.TypeDecimal {
		if c.Precision > 0 {
			return fmt.Sprintf("DECIMAL_TEXT(%d,%d)", c.Precision, c.Scale)
		}
		return "DECIMAL_TEXT"
	}
	return sqliteColumnTypes[c.Type]
}

var sqliteColumnTypes = columnTypes{
	sqlexec.TypeText:        "TEXT",
	sqlexec.TypeInt64:       "INTEGER",
	sqlexec.TypeUint64:      "UNSIGNED_TEXT",
	sqlexec.TypeFloat64:     "DOUBLE",
	sqlexec.TypeBool:        "BOOLEAN",
	sqlexec.TypeDate:        "DATE",
	sqlexec.TypeTimestamp:   "TIMESTAMP",
	sqlexec.TypeTimestampTZ: "TIMESTAMPTZ",
	sqlexec.TypeJSON:        "JSON_TEXT",
	sqlexec.TypeBytes:       "BLOB",
}

func (d sqliteDialect) create(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, _ bool) error {
	_, err := db.SQL().ExecContext(ctx, createTableSQL(d, "", table, cols, "", true))
	return err
}

// SQLite allows 32766 bound parameters per statement.
const (
	sqliteMaxParams = 32766
	sqliteMaxBatch  = 256
	// A write transaction ends after this many rows or this long, so that
	// other writers of the file (the ledger, other jobs) get their turn
	// even while a slow source trickles rows in.
	sqliteCommitRows = 50_000
	sqliteCommitAge  = 200 * time.Millisecond
)

// load writes the rows in multi-row INSERTs of up to sqliteMaxBatch rows,
// in transactions of up to sqliteCommitRows rows or sqliteCommitAge.
func (d sqliteDialect) load(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = d.quote(c.Name)
	}
	l := &sqliteLoader{db: db, ncols: len(cols), batch: max(1, min(sqliteMaxBatch, sqliteMaxParams/len(cols))),
		head: fmt.Sprintf("INSERT INTO %s (%s) VALUES ", d.quote(table), strings.Join(names, ", "))}
	l.args = make([]any, 0, l.batch*len(cols))
	defer l.rollback()
	for rows.Next() {
		for i, v := range rows.Values() {
			sv, err := sqliteValue(cols[i], v)
			if err != nil {
				return 0, fmt.Errorf("column %q: %w", cols[i].Name, err)
			}
			l.args = append(l.args, sv)
		}
		if len(l.args) == cap(l.args) {
			if err := l.flush(ctx, false); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if err := l.flush(ctx, true); err != nil {
		return 0, err
	}
	return l.count, nil
}

// sqliteLoader writes rows into a table, a batch at a time.
type sqliteLoader struct {
	db           *sqlexec.DB
	head         string // INSERT INTO t (cols) VALUES
	ncols, batch int
	args         []any // the values of the rows not written yet
	count        int64 // rows written
	tx           *sql.Tx
	stmt         *sql.Stmt // a full batch's INSERT, in tx
	txStart      time.Time
	uncommitted  int
}

// insertSQL inserts n rows.
func (l *sqliteLoader) insertSQL(n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", l.ncols), ",") + ")"
	return l.head + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
}

// flush writes the rows held in args, and commits if final or if the
// transaction is old or large enough.
func (l *sqliteLoader) flush(ctx context.Context, final bool) error {
	n := len(l.args) / l.ncols
	if n > 0 {
		if err := l.write(ctx, n); err != nil {
			return err
		}
	}
	if l.tx == nil || !final && l.uncommitted < sqliteCommitRows && time.Since(l.txStart) < sqliteCommitAge {
		return nil
	}
	err := l.tx.Commit()
	l.tx, l.uncommitted = nil, 0
	return err
}

func (l *sqliteLoader) write(ctx context.Context, n int) error {
	var err error
	if l.tx == nil {
		if l.tx, err = l.db.SQL().BeginTx(ctx, nil); err != nil {
			return err
		}
		l.txStart = time.Now()
		if l.stmt, err = l.tx.PrepareContext(ctx, l.insertSQL(l.batch)); err != nil {
			return err
		}
	}
	if n == l.batch {
		_, err = l.stmt.ExecContext(ctx, l.args...)
	} else {
		_, err = l.tx.ExecContext(ctx, l.insertSQL(n), l.args...)
	}
	if err != nil {
		return err
	}
	l.count += int64(n)
	l.uncommitted += n
	l.args = l.args[:0]
	return nil
}

// rollback ends a transaction that an error left open.
func (l *sqliteLoader) rollback() {
	if l.tx != nil {
		_ = l.tx.Rollback()
	}
}

const (
	sqliteTimestamp   = "2006-01-02 15:04:05.999999999"
	sqliteTimestampTZ = "2006-01-02 15:04:05.999999999-07:00"
)

func sqliteValue(c sqlexec.Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.Type {
	case sqlexec.TypeUint64:
		return strconv.FormatUint(v.(uint64), 10), nil
	case sqlexec.TypeFloat64:
		if math.IsNaN(v.(float64)) {
			// SQLite would store NaN as NULL.
			return nil, fmt.Errorf("SQLite cannot store NaN")
		}
	case sqlexec.TypeBool:
		if v.(bool) {
			return int64(1), nil
		}
		return int64(0), nil
	case sqlexec.TypeDate:
		return v.(time.Time).Format(time.DateOnly), nil
	case sqlexec.TypeTimestamp:
		return v.(time.Time).Format(sqliteTimestamp), nil
	case sqlexec.TypeTimestampTZ:
		return v.(time.Time).UTC().Format(sqliteTimestampTZ), nil
	}
	return v, nil
}

func (d sqliteDialect) publish(ctx context.Context, db *sqlexec.DB, staging, final string, count int64, fence Fence) (bool, error) {
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	q := sqlexec.SQLQuerier(tx)
	// Whether a table of the name exists, and whether sql-jobber published
	// it (before this publication records itself): a user's table is
	// never replaced. This replaces the DROP TABLE IF EXISTS of before,
	// and is no more work for the common case of no table.
	var exists, ours bool
	err = tx.QueryRowContext(ctx, fmt.Sprintf(
		"SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE), EXISTS (SELECT 1 FROM %s WHERE %s)",
		d.quote(fenceTable), strings.Replace(d.fenceNameIs(), "?", "?1", 1)), final).Scan(&exists, &ours)
	if err != nil {
		return false, err
	}
	if exists && !ours {
		return false, foreignTable(final)
	}
	here := fence.here(db)
	if here {
		// The ledger is in this database: its SUCCESS commits with the
		// table, and records only if the run owns its job.
		stmt, args := fence.Owner.Success(count)
		n, err := q.Exec(ctx, stmt, args...)
		if err != nil {
			return false, err
		}
		if n != 1 {
			return false, fmt.Errorf("%w: the run no longer owns its job", ErrFenced)
		}
		// The table's record, which makes it sql-jobber's: the token
		// needs no check here.
		if _, err := q.Exec(ctx, d.fenceUpsert(), final, fence.Token); err != nil {
			return false, err
		}
	} else if err := claimFence(ctx, q, db, d, final, fence); err != nil {
		// Without the ledger in this transaction the token orders the
		// runs; with it, ownership (checked above) already does.
		return false, err
	}
	if exists {
		if _, err := tx.ExecContext(ctx, "DROP TABLE "+d.quote(final)); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", d.quote(staging), d.quote(final))); err != nil {
		return false, err
	}
	return here, tx.Commit()
}

func (d sqliteDialect) fenceTableSQL() string { return fenceTableSQLWith(d, "TEXT", "") }

func (d sqliteDialect) fenceUpsert() string { return onConflictFenceUpsert(d) }

// fenceNameIs compares as SQLite compares table names: ASCII letters
// without case.
func (sqliteDialect) fenceNameIs() string { return "table_name = ? COLLATE NOCASE" }

func (d sqliteDialect) adoptTables() string {
	return fmt.Sprintf(`INSERT OR IGNORE INTO %s (table_name, token) SELECT m.name, 0 FROM sqlite_master m JOIN pragma_table_info(m.name) p `+
		`WHERE m.type = 'table' AND p.name = '%s' AND m.name LIKE ? ESCAPE '\' AND m.name NOT LIKE ? ESCAPE '\'`, d.quote(fenceTable), RowColumn)
}

func (d sqliteDialect) drop(ctx context.Context, db *sqlexec.DB, table string) error {
	_, err := db.SQL().ExecContext(ctx, "DROP TABLE IF EXISTS "+d.quote(table))
	return err
}

func (sqliteDialect) tables(ctx context.Context, db *sqlexec.DB, prefix string) ([]string, error) {
	return queryStrings(ctx, db.SQL(),
		`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ESCAPE '\'`, likePrefix(prefix))
}

func (sqliteDialect) readPrelude(string) []string { return nil }

func (sqliteDialect) key(c sqlexec.Column, operand string, _ bool) string {
	if c.Type == sqlexec.TypeDecimal || c.Type == sqlexec.TypeUint64 {
		// Stored as text; compared by value.
		return operand + " COLLATE " + sqlexec.SQLiteDecimalCollation
	}
	return operand
}

// nullsOrder: SQLite sorts NULLs as the smallest values.
func (sqliteDialect) nullsOrder(bool) string { return "" }

func (sqliteDialect) param(sqlexec.Column, int) string { return "?" }

// bind stores v as the writer stores it, so that it compares with what the
// column holds.
func (sqliteDialect) bind(c sqlexec.Column, v any) (any, error) { return sqliteValue(c, v) }

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
func (sqliteDialect) quote(ident string) string { return quoteWith(`"`, ident) }

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

func (d sqliteDialect) load(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error) {
	batch := max(1, min(sqliteMaxBatch, sqliteMaxParams/len(cols)))
	insertSQL := func(n int) string {
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = d.quote(c.Name)
		}
		row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
		return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", d.quote(table), strings.Join(names, ", "),
			strings.TrimSuffix(strings.Repeat(row+",", n), ","))
	}
	fullSQL := insertSQL(batch)

	var (
		count       int64
		uncommitted int
		txStart     time.Time
		args        = make([]any, 0, batch*len(cols))
		tx          *sql.Tx
		stmt        *sql.Stmt
	)
	defer func() {
		if tx != nil {
			_ = tx.Rollback()
		}
	}()
	flush := func(final bool) error {
		n := len(args) / len(cols)
		if n == 0 {
			return nil
		}
		var err error
		if tx == nil {
			if tx, err = db.SQL().BeginTx(ctx, nil); err != nil {
				return err
			}
			txStart = time.Now()
			if stmt, err = tx.PrepareContext(ctx, fullSQL); err != nil {
				return err
			}
		}
		if n == batch {
			_, err = stmt.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(n), args...)
		}
		if err != nil {
			return err
		}
		count += int64(n)
		uncommitted += n
		args = args[:0]
		if final || uncommitted >= sqliteCommitRows || time.Since(txStart) >= sqliteCommitAge {
			err = tx.Commit()
			tx, uncommitted = nil, 0
		}
		return err
	}
	for rows.Next() {
		for i, v := range rows.Values() {
			sv, err := sqliteValue(cols[i], v)
			if err != nil {
				return 0, fmt.Errorf("column %q: %w", cols[i].Name, err)
			}
			args = append(args, sv)
		}
		if len(args) == cap(args) {
			if err := flush(false); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if err := flush(true); err != nil {
		return 0, err
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			return 0, err
		}
		tx = nil
	}
	return count, nil
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
	} else if err := claimFence(ctx, q, db, d, final, fence); err != nil {
		// Without the ledger in this transaction the token orders the
		// runs; with it, ownership (checked above) already does.
		return false, err
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+d.quote(final)); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", d.quote(staging), d.quote(final))); err != nil {
		return false, err
	}
	return here, tx.Commit()
}

func (d sqliteDialect) fenceUpsert() string { return onConflictFenceUpsert(d) }

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

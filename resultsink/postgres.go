package resultsink

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

type postgresDialect struct{}

// pgPublishLockTimeout bounds how long a publish waits for readers of the
// table it replaces.
const pgPublishLockTimeout = "2min"

var _ dialect = postgresDialect{}

func (postgresDialect) maxIdentLen() int          { return 63 }
func (postgresDialect) quote(ident string) string { return quoteWith(`"`, ident) }

var pgColumnTypes = columnTypes{
	sqlexec.TypeText:        "TEXT",
	sqlexec.TypeInt64:       "BIGINT",
	sqlexec.TypeUint64:      "NUMERIC(20,0)",
	sqlexec.TypeFloat64:     "DOUBLE PRECISION",
	sqlexec.TypeBool:        "BOOLEAN",
	sqlexec.TypeDate:        "DATE",
	sqlexec.TypeTimestamp:   "TIMESTAMP",
	sqlexec.TypeTimestampTZ: "TIMESTAMPTZ",
	// json, not jsonb: jsonb would reorder keys and drop duplicates.
	sqlexec.TypeJSON:  "JSON",
	sqlexec.TypeBytes: "BYTEA",
}

func (postgresDialect) columnType(c sqlexec.Column) string {
	if c.Type == sqlexec.TypeDecimal {
		if c.Precision > 0 && c.Precision <= 1000 {
			return fmt.Sprintf("NUMERIC(%d,%d)", c.Precision, c.Scale)
		}
		return "NUMERIC"
	}
	return pgColumnTypes[c.Type]
}

func (d postgresDialect) create(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, unlogged bool) error {
	prefix := ""
	if unlogged {
		prefix = "UNLOGGED "
	}
	_, err := db.Postgres().Exec(ctx, createTableSQL(d, prefix, table, cols, ""))
	return err
}

func (postgresDialect) load(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	src := &pgCopySource{rows: rows, cols: cols, out: make([]any, len(cols))}
	return db.Postgres().CopyFrom(ctx, pgx.Identifier{table}, names, src)
}

// pgCopySource adapts Rows to pgx's COPY, converting the values pgx would not
// encode exactly by itself.
type pgCopySource struct {
	rows sqlexec.Rows
	cols []sqlexec.Column
	out  []any
}

func (s *pgCopySource) Next() bool { return s.rows.Next() }
func (s *pgCopySource) Err() error { return s.rows.Err() }

func (s *pgCopySource) Values() ([]any, error) {
	for i, v := range s.rows.Values() {
		if v == nil {
			s.out[i] = nil
			continue
		}
		switch s.cols[i].Type {
		case sqlexec.TypeDecimal:
			n, err := pgNumeric(v.(string))
			if err != nil {
				return nil, fmt.Errorf("column %q: %w", s.cols[i].Name, err)
			}
			s.out[i] = n
		case sqlexec.TypeUint64:
			s.out[i] = pgtype.Numeric{Int: new(big.Int).SetUint64(v.(uint64)), Valid: true}
		case sqlexec.TypeJSON:
			// pgx would marshal a Go string as a JSON string; the value
			// already is JSON text.
			s.out[i] = []byte(v.(string))
		case sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
			if err := microseconds(v.(time.Time)); err != nil {
				return nil, fmt.Errorf("column %q: %w", s.cols[i].Name, err)
			}
			s.out[i] = v
		default:
			s.out[i] = v
		}
	}
	return s.out, nil
}

// microseconds refuses a time finer than PostgreSQL and MySQL keep.
func microseconds(t time.Time) error {
	if t.Nanosecond()%1000 != 0 {
		return fmt.Errorf("%s has sub-microsecond digits that the results database would drop", t.Format(time.RFC3339Nano))
	}
	return nil
}

// pgNumeric converts an exact decimal literal to pgtype.Numeric, keeping its
// scale (trailing zeros included).
func pgNumeric(s string) (pgtype.Numeric, error) {
	switch s {
	case "NaN":
		return pgtype.Numeric{NaN: true, Valid: true}, nil
	case "Infinity":
		return pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}, nil
	case "-Infinity":
		return pgtype.Numeric{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, nil
	}
	if _, _, err := sqlexec.ParseDecimal(s); err != nil {
		return pgtype.Numeric{}, err
	}
	whole, frac, _ := strings.Cut(s, ".")
	i, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return pgtype.Numeric{}, fmt.Errorf("invalid decimal %q", s)
	}
	return pgtype.Numeric{Int: i, Exp: -int32(len(frac)), Valid: true}, nil
}

func (d postgresDialect) publish(ctx context.Context, db *sqlexec.DB, staging, final string) error {
	// PostgreSQL DDL is transactional: readers of final wait on its lock
	// and then see the new table.
	return pgx.BeginFunc(ctx, db.Postgres(), func(tx pgx.Tx) error {
		// Readers of the old table hold the swap up, and new readers
		// queue behind it: bound the wait rather than stall both.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+pgPublishLockTimeout+"'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+d.quote(final)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", d.quote(staging), d.quote(final)))
		return err
	})
}

func (d postgresDialect) drop(ctx context.Context, db *sqlexec.DB, table string) error {
	_, err := db.Postgres().Exec(ctx, "DROP TABLE IF EXISTS "+d.quote(table))
	return err
}

func (postgresDialect) tables(ctx context.Context, db *sqlexec.DB, prefix string) ([]string, error) {
	rows, err := db.Postgres().Query(ctx,
		`SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE $1`, likePrefix(prefix))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (d postgresDialect) readPrelude(table string) []string {
	// The snapshot is taken by the first query, after the lock: a table
	// replaced just before is read whole.
	return []string{"LOCK TABLE " + d.quote(table) + " IN ACCESS SHARE MODE"}
}

func (postgresDialect) key(c sqlexec.Column, operand string, _ bool) string {
	if c.Type == sqlexec.TypeText {
		return operand + ` COLLATE "C"`
	}
	return operand
}

func (postgresDialect) nullsOrder(desc bool) string {
	if desc {
		return " NULLS LAST"
	}
	return " NULLS FIRST"
}

func (postgresDialect) param(c sqlexec.Column, n int) string {
	if c.Type == sqlexec.TypeDecimal {
		return fmt.Sprintf("CAST($%d AS numeric)", n)
	}
	return fmt.Sprintf("$%d", n)
}

func (postgresDialect) bind(c sqlexec.Column, v any) (any, error) {
	if t, ok := v.(time.Time); ok && c.Type != sqlexec.TypeDate {
		return v, microseconds(t)
	}
	return v, nil
}

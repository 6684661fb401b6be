package resultsink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/resultsink/wire"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

type postgresDialect struct {
	// group makes small publications together (see pgPublications);
	// nil: each alone.
	group *pgPublications
}

// pgPublishLockTimeout bounds how long a publish waits for readers of the
// table it replaces.
const pgPublishLockTimeout = "2min"

var _ dialect = postgresDialect{}

func (postgresDialect) maxIdentLen() int          { return 63 }
func (postgresDialect) quote(ident string) string { return sqlexec.Postgres.Quote(ident) }

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

// create makes the staging table without its key: load builds the key
// once the rows are in (see load).
func (d postgresDialect) create(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, unlogged bool) error {
	prefix := ""
	if unlogged {
		prefix = "UNLOGGED "
	}
	_, err := db.Postgres().Exec(ctx, createTableSQL(d, prefix, table, cols, "", false))
	return err
}

// load streams the rows through a binary COPY that wire.PgCopyReader
// encodes, then adds the table's key. Building the key from the loaded rows
// in one sort costs PostgreSQL less than keeping it up to date row by row
// through the COPY: for a million rows of the bench's entries, 0.78 s of
// COPY and 0.42 s of key against 1.53 s of COPY into the keyed table (see
// BENCHMARKS.md). The key is built before the publication, so that the
// publication's transaction, which a reader of the old table waits on,
// stays short.
func (d postgresDialect) load(ctx context.Context, db *sqlexec.DB, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error) {
	conn, err := db.Postgres().Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var b strings.Builder
	b.WriteString("COPY " + d.quote(table) + " (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quote(c.Name))
	}
	b.WriteString(") FROM STDIN (FORMAT binary)")
	r := wire.NewPgCopyReader(rows, cols, wireSource(rows))
	tag, err := conn.Conn().PgConn().CopyFrom(ctx, r, b.String())
	if rerr := r.Stop(); rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, pgCopyError(err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s)", d.quote(table), d.quote(RowColumn))); err != nil {
		return 0, fmt.Errorf("add the key: %w", err)
	}
	return tag.RowsAffected(), nil
}

// pgCopyError names the column and row of a value PostgreSQL refused during
// a COPY, which its error context gives ("COPY t, line 3, column note"; a
// text-format COPY would quote the value after a colon, left out here).
func pgCopyError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	_, rest, ok := strings.Cut(pgErr.Where, ", line ")
	if !ok {
		return err
	}
	line, rest, ok := strings.Cut(rest, ", column ")
	if !ok {
		return err
	}
	col, _, _ := strings.Cut(rest, ":")
	return fmt.Errorf("column %q (row %s): %w", col, line, err)
}

func (d postgresDialect) publish(ctx context.Context, db *sqlexec.DB, staging, final string, count int64, fence Fence) (bool, error) {
	return d.swap(ctx, db, final, count, fence, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", d.quote(staging), d.quote(final)))
}

// swap replaces final (of count rows), in one transaction sent in one round
// trip: the fence (the table's fence token, and the run's ownership of its
// job: checked, when the ledger is in this database, by recording the job's
// SUCCESS in the same transaction), the drop of the old table, then the
// statements that make the new one. PostgreSQL DDL is transactional:
// readers of final wait on its lock and then see the new table. It reports
// whether it recorded the SUCCESS.
func (d postgresDialect) swap(ctx context.Context, db *sqlexec.DB, final string, count int64, fence Fence, create ...string) (bool, error) {
	here := fence.here(db)
	if fence.Owner != nil && !here {
		if err := checkOwner(ctx, nil, db, fence); err != nil {
			return false, err
		}
	}
	// The first run of a job ID (fence token 1) almost never finds a
	// table of its name: it goes without the drop, and without the lock
	// timeout that only the drop needs, which for a one-row result is an
	// eighth of the database's work. Should the name be taken after all,
	// the transaction fails whole, and is sent again with the drop.
	if fence.Token == 1 {
		recorded, err := d.swapOnce(ctx, db, final, count, fence, here, false, create)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P07" { // duplicate_table
			return recorded, err
		}
	}
	return d.swapOnce(ctx, db, final, count, fence, here, true, create)
}

// swapOnce is one try of swap; replace drops a table of the name first.
func (d postgresDialect) swapOnce(ctx context.Context, db *sqlexec.DB, final string, count int64, fence Fence, here, replace bool, create []string) (bool, error) {
	conn, err := db.Postgres().Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	stmts, fenceAt, oursAt := d.swapStatements(final, count, fence, here, replace, create)
	b := &pgconn.Batch{}
	b.ExecParams("BEGIN", nil, nil, nil, nil)
	for _, s := range stmts {
		if err := s.addTo(ctx, conn.Conn(), b); err != nil {
			return false, err
		}
	}
	b.ExecParams("COMMIT", nil, nil, nil, nil)
	// The results' indexes count BEGIN.
	fenceAt++
	if oursAt >= 0 {
		oursAt++
	}
	rr := conn.Conn().PgConn().ExecBatch(ctx, b)
	var failed error
	for i := 0; rr.NextResult(); i++ {
		if _, err := rr.ResultReader().Close(); err != nil && failed == nil {
			failed = err
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "22012" { // division_by_zero
				switch i {
				case fenceAt:
					failed = ErrFenced
				case oursAt:
					failed = foreignTable(final)
				}
			}
		}
	}
	if err := rr.Close(); err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		// An error leaves the explicit transaction open and aborted.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			conn.Conn().PgConn().Close(context.WithoutCancel(ctx))
		}
		return false, failed
	}
	return here, nil
}

// swapStatements are the statements of a swap's transaction, BEGIN and
// COMMIT aside, and the indexes of the one that fails unless the run may
// publish and of the one that fails if a table of the name is not
// sql-jobber's (-1: none).
func (d postgresDialect) swapStatements(final string, count int64, fence Fence, here, replace bool, create []string) (stmts []pgStatement, fenceAt, oursAt int) {
	add := func(sql string, params ...[]byte) {
		stmts = append(stmts, pgStatement{sql: sql, params: params})
	}
	if replace {
		// Readers of the old table hold the swap up, and new readers
		// queue behind it: bound the wait rather than stall both.
		add("SET LOCAL lock_timeout = '" + pgPublishLockTimeout + "'")
	}
	// The statement that fails (division by zero) if a table of the name
	// exists that sql-jobber did not publish. Only a replacement needs it:
	// without the drop, the CREATE or RENAME fails on any table of the
	// name, and swap tries again with the drop.
	oursAt = -1
	if replace {
		oursAt = len(stmts)
		add(fmt.Sprintf("SELECT 1 / (CASE WHEN to_regclass(quote_ident($1)) IS NULL OR EXISTS (SELECT 1 FROM %s WHERE table_name = $1) THEN 1 ELSE 0 END)",
			d.quote(fenceTable)), []byte(final))
	}
	// The statement that fails (division by zero) unless the run may
	// publish.
	fenceAt = len(stmts)
	if here {
		// The run's SUCCESS, changed only if it still owns its job.
		stmt, args := fence.Owner.Success(count)
		params := make([][]byte, len(args))
		for i, a := range args {
			params[i] = pgText(a)
		}
		add("WITH u AS ("+sqlexec.Rebind(stmt)+" RETURNING 1) SELECT 1 / COUNT(*) FROM u", params...)
		// The table's record, which makes it sql-jobber's: the token
		// needs no check here.
		add(sqlexec.Rebind(d.fenceUpsert()), []byte(final), []byte(strconv.FormatInt(fence.Token, 10)))
	} else {
		// This run's token, recorded only if above the last one
		// published. With the ledger in this transaction there is no
		// need: the run's ownership of the job, checked under the job
		// row's lock, already excludes every other run.
		add("WITH f AS ("+sqlexec.Rebind(d.fenceUpsert())+" RETURNING 1) SELECT 1 / COUNT(*) FROM f",
			[]byte(final), []byte(strconv.FormatInt(fence.Token, 10)))
	}
	if replace {
		add("DROP TABLE IF EXISTS " + d.quote(final))
	}
	for _, m := range create {
		add(m)
	}
	return stmts, fenceAt, oursAt
}

// pgText is a ledger argument in PostgreSQL's text format (nil is NULL).
func pgText(v any) []byte {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return []byte(x)
	case int64:
		return strconv.AppendInt(nil, x, 10)
	case time.Time:
		return []byte(x.UTC().Format(time.RFC3339Nano))
	}
	return []byte(fmt.Sprint(v))
}

func (d postgresDialect) fenceTableSQL() string { return fenceTableSQLWith(d, "TEXT", "") }

func (d postgresDialect) fenceUpsert() string { return onConflictFenceUpsert(d) }

func (postgresDialect) fenceNameIs() string { return "table_name = ?" }

func (d postgresDialect) adoptTables() string {
	return fmt.Sprintf(`INSERT INTO %s (table_name, token) SELECT table_name::text, 0 FROM information_schema.columns `+
		`WHERE table_schema = current_schema() AND column_name = '%s' AND table_name LIKE ? AND table_name NOT LIKE ? `+
		`ON CONFLICT (table_name) DO NOTHING`, d.quote(fenceTable), RowColumn)
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
		return v, wire.CheckMicroseconds(t)
	}
	return v, nil
}

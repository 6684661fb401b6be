package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// driver is what differs between the databases a ledger can live in: types
// and DDL, the forms of an upsert and a claim, and a few expressions. The
// ledger's logic around them (ledger.go, admit.go, run.go, ...) is written
// once, in statements with ? placeholders (see sqlexec.Querier).
type driver interface {
	quote(ident string) string
	// timeArg is a ledger time (UTC, to the microsecond) as the database
	// stores it.
	timeArg(t time.Time) any

	// types are the column types of the ledger's tables.
	types() columnTypes
	// partialIndexes reports whether indexes may have a WHERE clause,
	// which lets each hold only the rows its queries look for.
	partialIndexes() bool
	// lockRows is what a SELECT in a transaction ends with to lock the
	// rows it reads until the transaction ends ("" where a write
	// transaction locks the whole database).
	lockRows() string
	// lockMigration keeps the other nodes from migrating the same ledger
	// until unlock is called.
	lockMigration(ctx context.Context, l *Ledger) (unlock func(), err error)
	// createIndexes creates the indexes that do not exist yet and drops
	// those they replace.
	createIndexes(ctx context.Context, l *Ledger, want []index, replaced []string) error

	// upsertSQL inserts one row of cols into table (its key being key, the
	// first of cols), or replaces every other column of the row the key
	// names.
	upsertSQL(table string, cols []string) string
	// insertIfAbsentSQL inserts one row of cols into table unless a row
	// of its key (the first of cols) is there; it changes no row then.
	insertIfAbsentSQL(table string, cols []string) string
	// admitSQL inserts n admissions into table; a row whose ID an
	// unfinished job or another owner's job holds is left as it is, and an
	// admission's fence is added to the one the ID already has (see
	// Ledger.admitOne).
	admitSQL(table string, n int) string
	// admitOne runs admitSQL(table, 1) with args (j's) and reports whether
	// it wrote j, setting j.Fence to the row's fence.
	admitOne(ctx context.Context, l *Ledger, q sqlexec.Querier, stmt string, args []any, j *Job) (bool, error)
	// claim marks the jobs that pick selects (up to n IDs) with set and
	// returns them as they are then, so that concurrent claims never take
	// the same job. setArgs are set's arguments, pickArgs pick's.
	claim(ctx context.Context, l *Ledger, set string, setArgs []any, pick string, pickArgs []any) ([]*Job, error)
	// claimTx runs fn in the transaction of a claim on a ledger with
	// capped databases, where each statement sees what was committed
	// before it began (READ COMMITTED, or SQLite's one writer).
	claimTx(ctx context.Context, l *Ledger, fn func(q sqlexec.Querier) error) error
	// skipLocked is what a SELECT in a claim's transaction ends with to
	// lock the rows it reads, passing over those that others locked (""
	// where a write transaction locks the whole database).
	skipLocked() string
	// runID is an expression, evaluated per row, for a new run's ID:
	// random, 16 hex digits.
	runID() string
	// greatest is the later of two times.
	greatest(a, b string) string

	// generated are the columns of the jobs table that the driver's
	// indexes need, if any: without partial indexes, a column that is
	// NULL outside the rows a partial index would hold stands in for its
	// condition (an index holds the NULLs, which no query looks for).
	generated() []generatedColumn
	// pending is a condition, with one ? for a queue, that holds of that
	// queue's jobs not started (PENDING or RETRY), read from the index of
	// waiting jobs (_pending) in the order they start.
	pending() string
	// waiting is what names a job's queue while it waits to start, and
	// the condition that holds of the jobs waiting, for statements that
	// count a ledger's waiting jobs by queue from the index of waiting
	// jobs.
	waiting() (queue, cond string)
	// leads is a condition, with one ? for a flight, that holds of the
	// unfinished job that leads that flight, read from the index that
	// lets a flight have one (_flight).
	leads() string
	// flightTx runs fn in a transaction that reads committed rows and
	// locks only the rows it reads FOR UPDATE (lockRows), not the gaps
	// between them, in the durable pool (see flight.go).
	flightTx(ctx context.Context, l *Ledger, fn func(sqlexec.Querier) error) error
}

// driverFor returns the driver of db's dialect.
func driverFor(db *sqlexec.DB) driver {
	switch db.Dialect {
	case sqlexec.Postgres:
		return postgresDriver{}
	case sqlexec.MySQL:
		return mysqlDriver{}
	default:
		return sqliteDriver{}
	}
}

// columnTypes are the column types a driver gives the ledger's tables, and
// what follows a CREATE TABLE.
type columnTypes struct {
	text, short, ts, key, bigint, suffix string
}

// onConflict is the form of upserts and admissions shared by PostgreSQL and
// SQLite: INSERT ... ON CONFLICT DO UPDATE, and RETURNING.
type onConflict struct{}

func (onConflict) upsertSQL(table string, cols []string) string {
	set := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		set = append(set, c+" = excluded."+c)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s",
		table, strings.Join(cols, ", "), sqlexec.Placeholders(len(cols)), cols[0], strings.Join(set, ", "))
}

func (onConflict) insertIfAbsentSQL(table string, cols []string) string {
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO NOTHING",
		table, strings.Join(cols, ", "), sqlexec.Placeholders(len(cols)), cols[0])
}

func (onConflict) admitSQL(table string, n int) string {
	var set []string
	for _, c := range jobColumnList[1:] {
		if c != "fence" {
			set = append(set, fmt.Sprintf("%s = excluded.%s", c, c))
		}
	}
	set = append(set, "fence = j.fence + excluded.fence")
	return fmt.Sprintf("INSERT INTO %s AS j (%s) VALUES %s ON CONFLICT (job_id) DO UPDATE SET %s WHERE j.state NOT IN %s AND j.owner = excluded.owner RETURNING job_id, fence",
		table, jobColumns, rowsOf(len(jobColumnList), n), strings.Join(set, ", "), activeStates)
}

// onConflictDriver is a driver whose admitSQL returns the rows it wrote,
// so that one statement may admit many.
type onConflictDriver interface{ returnsAdmitted() }

func (onConflict) returnsAdmitted() {}

func (onConflict) admitOne(ctx context.Context, _ *Ledger, q sqlexec.Querier, stmt string, args []any, j *Job) (bool, error) {
	written := false
	err := q.Query(ctx, stmt, func(scan func(...any) error) error {
		written = true
		var id string
		return scan(&id, &j.Fence)
	}, args...)
	return written, err
}

// generated: partial indexes need no column of their own.
func (onConflict) generated() []generatedColumn { return nil }

// pending repeats the partial index's condition, for the planners.
func (onConflict) pending() string { return "queue = ? AND " + pendingCond }

func (onConflict) waiting() (string, string) { return "queue", pendingCond }

// leads repeats the partial index's condition, for the planners.
func (onConflict) leads() string { return "flight = ? AND " + leadingCond }

// flightTx: PostgreSQL's transactions read committed rows, and SQLite's
// (begun IMMEDIATE) write alone.
func (onConflict) flightTx(ctx context.Context, l *Ledger, fn func(sqlexec.Querier) error) error {
	return l.durable.InTx(ctx, fn)
}

// returningClaim is a claim in one UPDATE ... RETURNING whose pick locks
// the rows it picks with lock ("" where the statement is the lock).
func returningClaim(ctx context.Context, l *Ledger, lock, set string, setArgs []any, pick string, pickArgs []any) ([]*Job, error) {
	return l.jobs(ctx, l.q, fmt.Sprintf("%s WHERE job_id IN (%s%s) AND "+pendingCond+" RETURNING %s", set, pick, lock, jobColumns),
		append(setArgs, pickArgs...)...)
}

// generatedColumn is a generated column of the jobs table: its name and
// its declaration ({...} are the driver's types).
type generatedColumn struct{ name, decl string }

// rowsOf is n rows of cols placeholders, for a multi-row VALUES.
func rowsOf(cols, n int) string {
	return strings.TrimSuffix(strings.Repeat("("+sqlexec.Placeholders(cols)+"), ", n), ", ")
}

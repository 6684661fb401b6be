package ledger

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// mysqlDriver keeps the ledger in MySQL or MariaDB: no partial indexes, no
// RETURNING, and upserts that say ON DUPLICATE KEY.
type mysqlDriver struct{}

var (
	_ driver        = mysqlDriver{}
	_ batchAdmitter = mysqlDriver{}
	_ batchFinisher = mysqlDriver{}
)

func (mysqlDriver) quote(ident string) string { return sqlexec.MySQL.Quote(ident) }
func (mysqlDriver) timeArg(t time.Time) any   { return t }

func (mysqlDriver) types() columnTypes {
	// Job IDs are ASCII and case-sensitive. Whatever the database's
	// default, error texts and arguments are any Unicode.
	return columnTypes{text: "LONGTEXT", short: "VARCHAR(255)", ts: "DATETIME(6)", key: "VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin",
		bigint: "BIGINT", suffix: " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"}
}

func (mysqlDriver) partialIndexes() bool { return false }

func (mysqlDriver) lockRows() string { return " FOR UPDATE" }

func (mysqlDriver) lockMigration(context.Context, *Ledger) (func(), error) { return func() {}, nil }

// createIndexes creates each index, then drops those they replace; MySQL
// has no IF NOT EXISTS or IF EXISTS for them, so an index that exists (or,
// dropped, does not) is the error to pass over: another node may be
// migrating the same ledger.
func (d mysqlDriver) createIndexes(ctx context.Context, l *Ledger, want []index, replaced []string) error {
	for _, idx := range want {
		_, err := l.q.Exec(ctx, fmt.Sprintf("CREATE %sINDEX %s ON %s (%s)", uniqueness(idx), d.quote(idx.name), idx.table, idx.cols))
		var myErr *mysql.MySQLError
		if err != nil && (!errors.As(err, &myErr) || myErr.Number != 1061) { // ER_DUP_KEYNAME
			return err
		}
	}
	for _, name := range replaced {
		_, err := l.q.Exec(ctx, fmt.Sprintf("DROP INDEX %s ON %s", d.quote(name), l.table))
		var myErr *mysql.MySQLError
		if err != nil && (!errors.As(err, &myErr) || myErr.Number != 1091) { // ER_CANT_DROP_FIELD_OR_KEY
			return err
		}
	}
	return nil
}

func (mysqlDriver) upsertSQL(table string, cols []string) string {
	set := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		set = append(set, fmt.Sprintf("%s = VALUES(%s)", c, c))
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s",
		table, strings.Join(cols, ", "), sqlexec.Placeholders(len(cols)), strings.Join(set, ", "))
}

func (mysqlDriver) insertIfAbsentSQL(table string, cols []string) string {
	// A no-op update, not INSERT IGNORE, which would turn other errors
	// into warnings too.
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s = %s",
		table, strings.Join(cols, ", "), sqlexec.Placeholders(len(cols)), cols[0], cols[0])
}

func (mysqlDriver) admitSQL(table string, n int) string {
	// Every column keeps its old value while the old job is active or
	// another owner's; state goes last so that the others still see the
	// old state, and owner never changes (it is the same when replaced).
	keep := fmt.Sprintf("state IN %s OR owner <> VALUES(owner)", activeStates)
	var set []string
	for _, c := range jobColumnList[1:] {
		if c != "state" && c != "fence" && c != "owner" {
			set = append(set, fmt.Sprintf("%s = IF(%s, %s, VALUES(%s))", c, keep, c, c))
		}
	}
	set = append(set, fmt.Sprintf("fence = IF(%s, fence, fence + VALUES(fence))", keep))
	set = append(set, fmt.Sprintf("state = IF(%s, state, VALUES(state))", keep))
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s ON DUPLICATE KEY UPDATE %s",
		table, jobColumns, rowsOf(len(jobColumnList), n), strings.Join(set, ", "))
}

// admitOne learns from the rows affected whether the admission was written:
// 1 for a new row, 2 for one that replaced a finished job, 0 for none. Only
// a replaced row's fence is not the admission's own: a run (Start) reads it
// back.
func (mysqlDriver) admitOne(ctx context.Context, l *Ledger, q sqlexec.Querier, stmt string, args []any, j *Job) (bool, error) {
	n, err := q.Exec(ctx, stmt, args...)
	if err != nil || n != 2 || j.RunID == "" {
		return n > 0, err
	}
	found := false
	err = q.Query(ctx, fmt.Sprintf("SELECT fence FROM %s WHERE job_id = ? AND run_id = ?", l.table),
		func(scan func(...any) error) error { found = true; return scan(&j.Fence) }, j.ID, j.RunID)
	if err == nil && !found {
		err = fmt.Errorf("job %s: its run %s is not in the ledger it was just written to", j.ID, j.RunID)
	}
	return true, err
}

// claim picks and locks the jobs, marks them, and reads them back, in one
// transaction: MySQL's UPDATE cannot return rows. Where the ledger's pool
// can send scripts, the transaction takes two round trips (scriptedClaim),
// else five.
func (mysqlDriver) claim(ctx context.Context, l *Ledger, set string, setArgs []any, pick string, pickArgs []any) ([]*Job, error) {
	if pool := l.db.Scripts(); pool != nil {
		return scriptedClaim(ctx, l, pool, set, setArgs, pick, pickArgs)
	}
	var claimed []*Job
	err := l.db.InTx(ctx, func(q sqlexec.Querier) error {
		var ids []any
		if err := q.Query(ctx, pick+" FOR UPDATE SKIP LOCKED", func(scan func(...any) error) error {
			var id string
			err := scan(&id)
			ids = append(ids, id)
			return err
		}, pickArgs...); err != nil || len(ids) == 0 {
			return err
		}
		in := sqlexec.Placeholders(len(ids))
		if _, err := q.Exec(ctx, fmt.Sprintf("%s WHERE job_id IN (%s)", set, in), append(setArgs, ids...)...); err != nil {
			return err
		}
		var err error
		claimed, err = l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE job_id IN (%s)", jobColumns, l.table, in), ids...)
		return err
	})
	return claimed, err
}

// leaderColumnName is, on MySQL, the generated column that the index of
// flight leaders holds: a job's flight while it leads it unfinished, else
// NULL. MySQL has no partial indexes, and a unique index holds any number
// of NULLs.
const leaderColumnName = "flight_leader"

// pendingColumnName is, on MySQL, the generated column that the index of
// waiting jobs holds: a job's queue while it waits to start, else NULL.
// Where it stood, an index of (queue, state, held, ready_at) had two
// ranges of state to merge: a claim read and sorted every waiting job of
// its queue to take the first few, hundreds of rows a job in a burst.
const pendingColumnName = "pending_queue"

func (mysqlDriver) generated() []generatedColumn {
	return []generatedColumn{
		{leaderColumnName, "{key} GENERATED ALWAYS AS (CASE WHEN " + leadingCond + " THEN flight END) VIRTUAL"},
		{pendingColumnName, "{short} GENERATED ALWAYS AS (CASE WHEN " + pendingCond + " THEN queue END) VIRTUAL"},
	}
}

func (mysqlDriver) pending() string { return pendingColumnName + " = ?" }

func (mysqlDriver) waiting() (string, string) {
	return pendingColumnName, pendingColumnName + " IS NOT NULL"
}

func (mysqlDriver) leads() string { return leaderColumnName + " = ?" }

// flightTx reads committed rows: a locking read of a flight that has no
// leader then takes no lock on the gap where one would go, so that two
// transactions that both found none do not deadlock inserting one; the
// unique index lets one of them in.
func (mysqlDriver) flightTx(ctx context.Context, l *Ledger, fn func(sqlexec.Querier) error) error {
	return readCommitted(ctx, l.durable.SQL(), fn)
}

// claimTx reads committed rows: under MySQL's default (REPEATABLE READ)
// the count of a database's running jobs, read after its cap's row is
// locked, could come from a snapshot taken before the claim that last
// held the lock committed.
func (mysqlDriver) claimTx(ctx context.Context, l *Ledger, fn func(q sqlexec.Querier) error) error {
	return readCommitted(ctx, l.db.SQL(), fn)
}

// readCommitted runs fn in a READ COMMITTED transaction on pool.
func readCommitted(ctx context.Context, pool *sql.DB, fn func(sqlexec.Querier) error) error {
	tx, err := pool.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	if err := fn(sqlexec.SQLQuerier(tx)); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func (mysqlDriver) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

func (mysqlDriver) runID() string { return "SUBSTR(MD5(CONCAT(RAND(), UUID(), job_id)), 1, 16)" }

func (mysqlDriver) greatest(a, b string) string { return "GREATEST(" + a + ", " + b + ")" }

// admitBatch writes the admissions of a batch in one transaction and one
// commit. MySQL does not say which rows of a multi-row upsert it wrote, so
// the batch first reads, locked, what holds its IDs, and writes only the
// admissions that this shows will be written; the rows changed confirm it,
// and anything else (a row that another node inserted meanwhile) rolls the
// batch back, its jobs to be admitted alone. The transaction reads committed
// rows, which takes no locks on the gaps between IDs: two nodes' batches of
// free IDs then do not deadlock. A row that another transaction holds (a job
// of that ID being published, say) fails the batch at once (NOWAIT) rather
// than stall every admission queued behind it.
//
// On MariaDB a batch of new IDs, even of one, is first tried as one INSERT
// (mariaDBAdmitNew), written by the batch's writer: the admissions that
// arrive meanwhile wait for the next batch and share its commit, where each
// written alone took a commit of its own. Otherwise a batch of one is left
// to be admitted alone, in one autocommitted statement: fewer round trips
// than a transaction, and one that waits for a lock holds up no other
// admission.
func (mysqlDriver) admitBatch(ctx context.Context, l *Ledger, jobs []*Job) (map[string]admitted, error) {
	if written, ok, err := mariaDBAdmitNew(ctx, l, jobs); ok || err != nil {
		return written, err
	}
	if len(jobs) < 2 {
		return nil, nil
	}
	tx, err := l.durable.SQL().BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("admit batch: %w", err)
	}
	written, err := mysqlAdmitBatch(ctx, l, sqlexec.SQLQuerier(tx), jobs)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("admit batch: %w", err), tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("admit batch: %w", err)
	}
	return written, nil
}

// mariaDBAdmitNew writes a batch whose IDs are all new, the most common
// kind, in one autocommitted INSERT: one round trip, where the transaction
// takes five. If any ID is in the ledger already, the INSERT writes nothing
// (ER_DUP_ENTRY) and reports !ok: the batch takes the transaction. Checking
// an ID against a row that another transaction holds waits for it, at
// most a second (MariaDB's SET STATEMENT; MySQL has no such bound on an
// INSERT, so there every batch takes the transaction, whose read does not
// wait at all).
func mariaDBAdmitNew(ctx context.Context, l *Ledger, jobs []*Job) (map[string]admitted, bool, error) {
	if !l.durable.MariaDB {
		return nil, false, nil
	}
	args := make([]any, 0, len(jobs)*len(jobColumnList))
	for _, j := range jobs {
		args = append(args, l.jobArgs(j)...)
	}
	n, err := l.dq.Exec(ctx, fmt.Sprintf("SET STATEMENT innodb_lock_wait_timeout = 1 FOR INSERT INTO %s (%s) VALUES %s",
		l.table, jobColumns, rowsOf(len(jobColumnList), len(jobs))), args...)
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &myErr) && myErr.Number == 1062: // ER_DUP_ENTRY
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("admit batch: %w", err)
	case n != int64(len(jobs)):
		return nil, false, fmt.Errorf("admit batch: %d rows inserted of %d", n, len(jobs))
	}
	written := make(map[string]admitted, len(jobs))
	for _, j := range jobs {
		written[j.ID] = admitted{fence: j.Fence}
	}
	return written, true, nil
}

// mysqlAdmitBatch is admitBatch's work inside its transaction q.
func mysqlAdmitBatch(ctx context.Context, l *Ledger, q sqlexec.Querier, jobs []*Job) (map[string]admitted, error) {
	type holder struct {
		active bool
		owner  string
		fence  int64
	}
	ids := make([]any, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	held := make(map[string]holder, len(jobs))
	err := q.Query(ctx, fmt.Sprintf("SELECT job_id, state, owner, fence FROM %s WHERE job_id IN (%s) FOR UPDATE NOWAIT", l.table, sqlexec.Placeholders(len(ids))),
		func(scan func(...any) error) error {
			var (
				id, state string
				h         holder
			)
			if err := scan(&id, &state, &h.owner, &h.fence); err != nil {
				return err
			}
			h.active = sqljobber.State(state).Active()
			held[id] = h
			return nil
		}, ids...)
	if err != nil {
		return nil, err
	}
	// A new row counts 1 row changed, a replaced one 2 (ClientFoundRows is
	// off on the ledger's connections).
	var (
		write   []*Job
		args    []any
		changed int64
		written = make(map[string]admitted, len(jobs))
	)
	for _, j := range jobs {
		h, ok := held[j.ID]
		switch {
		case !ok:
			changed++
			written[j.ID] = admitted{fence: j.Fence}
		case !h.active && h.owner == j.Owner:
			changed += 2
			written[j.ID] = admitted{fence: h.fence + j.Fence}
		default:
			continue
		}
		write = append(write, j)
		args = append(args, l.jobArgs(j)...)
	}
	if len(write) == 0 {
		return written, nil
	}
	n, err := q.Exec(ctx, l.d.admitSQL(l.table, len(write)), args...)
	if err != nil {
		return nil, err
	}
	if n != changed {
		return nil, fmt.Errorf("%d rows changed where %d were expected: IDs changed hands meanwhile", n, changed)
	}
	return written, nil
}

// finishBatch records the runs' SUCCESS in one autocommitted UPDATE, each
// row's own values picked by its job ID: one round trip and one commit. A
// run that no longer owns its job changes no row; when fewer rows change
// than there are runs, the rows are read back to learn which runs wrote
// theirs (this batch's time is on them, and their run's ID).
func (mysqlDriver) finishBatch(ctx context.Context, l *Ledger, t time.Time, runs []*pendingFinish) (map[string]bool, error) {
	n := len(runs)
	counts, expiries, runIDs, ids := make([]any, 0, 2*n), make([]any, 0, 2*n), make([]any, 0, 2*n), make([]any, 0, n)
	for _, p := range runs {
		counts = append(counts, p.id, p.o.Count)
		expiries = append(expiries, p.id, l.expiry(t, p.o.TTL))
		runIDs = append(runIDs, p.id, p.runID)
		ids = append(ids, p.id)
	}
	whens := strings.Repeat(" WHEN ? THEN ?", n)
	in := sqlexec.Placeholders(n)
	stmt := fmt.Sprintf(`UPDATE %s SET state = 'SUCCESS', count = CASE job_id%s END, error = '', lease_until = NULL, finished_at = ?,
	updated_at = ?, expires_at = CASE job_id%s END WHERE job_id IN (%s) AND run_id = CASE job_id%s END AND state = 'STARTED'`,
		l.table, whens, whens, in, whens)
	args := slices.Concat(counts, []any{l.timeArg(t), l.timeArg(t)}, expiries, ids, runIDs)
	changed, err := l.q.Exec(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("finish jobs: %w", err)
	}
	written := make(map[string]bool, n)
	if changed == int64(n) {
		for _, p := range runs {
			written[p.id] = true
		}
		return written, nil
	}
	runOf := make(map[string]string, n)
	for _, p := range runs {
		runOf[p.id] = p.runID
	}
	err = l.q.Query(ctx, fmt.Sprintf("SELECT job_id, run_id FROM %s WHERE job_id IN (%s) AND state = 'SUCCESS' AND updated_at = ?", l.table, in),
		func(scan func(...any) error) error {
			var id, runID string
			if err := scan(&id, &runID); err != nil {
				return err
			}
			written[id] = written[id] || runOf[id] == runID
			return nil
		}, append(ids, l.timeArg(t))...)
	if err != nil {
		return nil, fmt.Errorf("finish jobs: %w", err)
	}
	return written, nil
}

// scriptedClaim is claim in two round trips, each a script of statements:
// START TRANSACTION and the pick, which locks the jobs it returns and skips
// those that others hold; then the UPDATE that marks them, the read back
// and COMMIT. A script stops at its first failing statement, leaving the
// transaction open: it is rolled back, and a connection that cannot say it
// was is closed rather than returned to the pool mid-transaction.
func scriptedClaim(ctx context.Context, l *Ledger, pool *sql.DB, set string, setArgs []any, pick string, pickArgs []any) (claimed []*Job, err error) {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, err
	}
	open := true // the transaction may be open
	defer func() {
		if open {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			if _, rerr := conn.ExecContext(rctx, "ROLLBACK"); rerr != nil {
				_ = conn.Raw(func(any) error { return sqldriver.ErrBadConn })
			}
			cancel()
		}
		conn.Close()
	}()
	var ids []any
	err = script(ctx, conn, "START TRANSACTION; "+pick+" FOR UPDATE SKIP LOCKED", pickArgs, func(scan func(...any) error) error {
		var id string
		err := scan(&id)
		ids = append(ids, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			return nil, err
		}
		open = false
		return nil, nil
	}
	in := sqlexec.Placeholders(len(ids))
	stmts := fmt.Sprintf("%s WHERE job_id IN (%s); SELECT %s FROM %s WHERE job_id IN (%s); COMMIT", set, in, jobColumns, l.table, in)
	err = script(ctx, conn, stmts, slices.Concat(setArgs, ids, ids), func(scan func(...any) error) error {
		j, err := scanJob(scan)
		if err == nil {
			claimed = append(claimed, j)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	open = false
	return claimed, nil
}

// rollbackTimeout bounds the ROLLBACK of a failed script's transaction.
const rollbackTimeout = 5 * time.Second

// script sends stmts, several statements, in one round trip on conn, and
// calls row for each row of the result sets that have columns. It returns
// the first statement's error, after which the server ran none of the rest.
func script(ctx context.Context, conn *sql.Conn, stmts string, args []any, row func(scan func(...any) error) error) error {
	rows, err := conn.QueryContext(ctx, stmts, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for {
		for rows.Next() {
			if err := row(rows.Scan); err != nil {
				return err
			}
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

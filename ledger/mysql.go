package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// mysqlDriver keeps the ledger in MySQL or MariaDB: no partial indexes, no
// RETURNING, and upserts that say ON DUPLICATE KEY.
type mysqlDriver struct{}

var _ driver = mysqlDriver{}

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

// createIndexes creates each index; MySQL has no CREATE INDEX IF NOT EXISTS,
// so an existing one is the error to pass over.
func (d mysqlDriver) createIndexes(ctx context.Context, l *Ledger, want []index, _ []string) error {
	for _, idx := range want {
		_, err := l.q.Exec(ctx, fmt.Sprintf("CREATE INDEX %s ON %s (%s)", d.quote(idx.name), idx.table, idx.cols))
		if err != nil && !strings.Contains(err.Error(), "Duplicate key name") {
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
// transaction: MySQL's UPDATE cannot return rows.
func (mysqlDriver) claim(ctx context.Context, l *Ledger, set string, setArgs []any, pick string, pickArgs []any) ([]*Job, error) {
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

func (mysqlDriver) runID() string { return "SUBSTR(MD5(CONCAT(RAND(), UUID(), job_id)), 1, 16)" }

func (mysqlDriver) greatest(a, b string) string { return "GREATEST(" + a + ", " + b + ")" }

package ledger

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sql-jobber/sql-jobber/internal/retry"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// postgresDriver keeps the ledger in PostgreSQL. Admissions that arrive
// together are written in one round trip and one commit (see admissions).
type postgresDriver struct{ onConflict }

var (
	_ driver           = postgresDriver{}
	_ batchAdmitter    = postgresDriver{}
	_ replacedReporter = postgresDriver{}
)

// replacedReporter is a driver whose admissions return what they replaced
// (Job.Replaced).
type replacedReporter interface {
	// replacedColumn is what an admission's RETURNING adds for it: an
	// array of the replaced job's results backend, results table and
	// ReusedFrom, NULL where the row is new.
	replacedColumn(table string) string
}

// replacedColumn reads the row as it was before the statement: a subquery
// of RETURNING sees the statement's snapshot, which does not hold the
// version that the statement itself writes. A row changed in between by
// another transaction (a run finishing) keeps its backend and table, which
// only admissions set.
func (postgresDriver) replacedColumn(table string) string {
	return fmt.Sprintf(", (SELECT ARRAY[o.results_backend, o.results_table, o.reused_from] FROM %s o WHERE o.job_id = j.job_id)", table)
}

// replacedOf is Job.Replaced of what replacedColumn returned.
func replacedOf(v []string) *Replaced {
	if len(v) != 3 {
		return nil
	}
	return &Replaced{ResultsBackend: v[0], ResultsTable: v[1], ReusedFrom: v[2]}
}

// admitOne is onConflict's, with what the admission replaced.
func (d postgresDriver) admitOne(ctx context.Context, l *Ledger, q sqlexec.Querier, stmt string, args []any, j *Job) (bool, error) {
	written := false
	j.Replaced = nil
	err := q.Query(ctx, stmt+d.replacedColumn(l.table), func(scan func(...any) error) error {
		written = true
		var id string
		var replaced []string
		if err := scan(&id, &j.Fence, &replaced); err != nil {
			return err
		}
		j.Replaced = replacedOf(replaced)
		return nil
	}, args...)
	return written, err
}

func (postgresDriver) quote(ident string) string { return sqlexec.Postgres.Quote(ident) }
func (postgresDriver) timeArg(t time.Time) any   { return t }

func (postgresDriver) types() columnTypes {
	return columnTypes{text: "TEXT", short: "TEXT", ts: "TIMESTAMPTZ", key: "TEXT", bigint: "BIGINT"}
}

func (postgresDriver) partialIndexes() bool { return true }

func (postgresDriver) lockRows() string { return " FOR UPDATE" }

// lockMigration takes the session advisory lock that makes one node at a
// time migrate this ledger: nodes that start together would otherwise race
// to create the same tables, and their concurrent index builds would
// deadlock, each waiting for the others' snapshots. The lock is taken on a
// connection of its own, outside the pool, which may be as small as the one
// connection the migration needs. It polls pg_try_advisory_lock rather than
// wait in pg_advisory_lock, whose open statement would hold a snapshot that
// the holder's CREATE INDEX CONCURRENTLY then waits for.
func (postgresDriver) lockMigration(ctx context.Context, l *Ledger) (func(), error) {
	conn, err := pgx.ConnectConfig(ctx, l.db.Postgres().Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	closeConn := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// The session's end releases its lock.
		_ = conn.Close(ctx)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("sqljobber migrate " + l.cfg.Table))
	key := int64(h.Sum64())
	err = retry.Do(ctx, retry.Backoff{First: 100 * time.Millisecond}, func(ctx context.Context) (bool, error) {
		var locked bool
		err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&locked)
		return locked || err != nil, err
	})
	if err != nil {
		closeConn()
		return nil, err
	}
	return closeConn, nil
}

// createIndexes builds the indexes and drops those they replace. On a
// ledger in use, either done plainly would hold every claim and admission
// for as long as it takes (a build reads the whole table), so both are done
// CONCURRENTLY there; a concurrent build that was interrupted leaves an
// invalid index, which is built again.
func (d postgresDriver) createIndexes(ctx context.Context, l *Ledger, want []index, replaced []string) error {
	// mode is how to build or drop an index of table: CONCURRENTLY, not
	// to block its writers, if it has rows.
	modes := map[string]string{}
	mode := func(table string) (string, error) {
		if m, ok := modes[table]; ok {
			return m, nil
		}
		var used bool
		err := l.q.Query(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s)", table), func(scan func(...any) error) error {
			return scan(&used)
		})
		if err != nil {
			return "", err
		}
		modes[table] = ""
		if used {
			modes[table] = "CONCURRENTLY "
		}
		return modes[table], nil
	}
	for _, idx := range want {
		concurrently, err := mode(idx.table)
		if err != nil {
			return err
		}
		var valid []bool
		err = l.q.Query(ctx, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE c.relname = ? AND c.relnamespace = current_schema()::regnamespace`, func(scan func(...any) error) error {
			var v bool
			err := scan(&v)
			valid = append(valid, v)
			return err
		}, idx.name)
		if err != nil {
			return err
		}
		if len(valid) == 1 && valid[0] {
			continue
		}
		if len(valid) == 1 {
			if _, err := l.q.Exec(ctx, "DROP INDEX "+concurrently+"IF EXISTS "+d.quote(idx.name)); err != nil {
				return err
			}
		}
		if _, err := l.q.Exec(ctx, fmt.Sprintf("CREATE %sINDEX %sIF NOT EXISTS %s ON %s (%s)%s", uniqueness(idx), concurrently, d.quote(idx.name), idx.table, idx.cols, idx.where)); err != nil {
			return err
		}
	}
	jobs, err := mode(l.table)
	if err != nil {
		return err
	}
	for _, r := range replaced {
		if _, err := l.q.Exec(ctx, "DROP INDEX "+jobs+"IF EXISTS "+d.quote(r)); err != nil {
			return err
		}
	}
	return nil
}

func (postgresDriver) claim(ctx context.Context, l *Ledger, set string, setArgs []any, pick string, pickArgs []any) ([]*Job, error) {
	return returningClaim(ctx, l, " FOR UPDATE SKIP LOCKED", set, setArgs, pick, pickArgs)
}

// claimTx: PostgreSQL's transactions read committed by default.
func (postgresDriver) claimTx(ctx context.Context, l *Ledger, fn func(q sqlexec.Querier) error) error {
	return l.db.InTx(ctx, fn)
}

func (postgresDriver) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

func (postgresDriver) runID() string {
	return "substr(md5(random()::text || clock_timestamp()::text || job_id), 1, 16)"
}

func (postgresDriver) greatest(a, b string) string { return "GREATEST(" + a + ", " + b + ")" }

// admitBatch writes the admissions of batch in one transaction, sent in one
// round trip, and returns the IDs it wrote, with their fence tokens. A row
// that another transaction holds (a job of that ID being published, say)
// fails the batch after admitLockTimeout rather than stall every admission
// queued behind it.
func (d postgresDriver) admitBatch(ctx context.Context, l *Ledger, jobs []*Job) (map[string]admitted, error) {
	var args []any
	for _, j := range jobs {
		args = append(args, l.jobArgs(j)...)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL lock_timeout = '" + admitLockTimeout + "'")
	b.Queue(sqlexec.Rebind(l.d.admitSQL(l.table, len(jobs)))+d.replacedColumn(l.table), args...)
	b.Queue("COMMIT")
	br := l.durable.Postgres().SendBatch(ctx, b)
	written := map[string]admitted{}
	_, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		var rows pgx.Rows
		rows, err = br.Query()
		for err == nil && rows.Next() {
			var id string
			var a admitted
			var replaced []string
			err = rows.Scan(&id, &a.fence, &replaced)
			a.replaced = replacedOf(replaced)
			written[id] = a
		}
		if rows != nil {
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	if err == nil {
		_, err = br.Exec()
	}
	// A failed transaction leaves its connection in it; the pool drops
	// such a connection when it comes back.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return written, err
}

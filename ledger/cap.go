package ledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Capped source databases ([db.<name>] max_running): at most MaxRunning[db]
// jobs whose SourceDB is db are STARTED at once, across every node that
// shares the ledger. The count is the ledger's own: a run counts from the
// claim that starts it until its outcome, its hand-back, or its being
// taken back with its node (a node that dies keeps its runs counted until
// the cluster finds it gone or its lease runs out and they are taken
// back, since its queries may still run at the source until then).
//
// Claims that meet a capped database's jobs are serialised on its row in
// the caps table, locked in the claim's transaction (FOR UPDATE on
// PostgreSQL and MySQL, SQLite's one writer), so that two nodes never both
// take its last slot. Such a claim locks those rows before it locks any
// job's (it looks at the jobs it would take first, without locks), so that
// no claim skips a job that another holds only to pass over it: capped
// jobs start in order. A claim that meets no capped job takes no such
// lock; a ledger without caps claims as it always did, in one statement.

// candidate is a ready job a capped claim may take.
type candidate struct{ id, db string }

// claimCapped is Claim on a ledger with capped databases: it takes the
// oldest ready jobs of queue, as Claim does, passing over those of
// databases that run as many jobs as their cap allows.
func (l *Ledger) claimCapped(ctx context.Context, queue string, node Node, n int, lease time.Duration, except []string) ([]*Job, error) {
	t := l.now()
	var claimed []*Job
	err := l.d.claimTx(ctx, l, func(q sqlexec.Querier) error {
		var (
			// room is, once counted, how many more jobs each capped
			// database may start; nil until a capped job is met.
			room map[string]int
			full []string // capped databases with no room, passed over
			take []string // the jobs taken, in order
		)
		isCapped := func(c candidate) bool { return l.capped(c.db) }
		countRoom := func() error {
			var err error
			if room, err = l.lockRoom(ctx, q); err != nil {
				return err
			}
			for db, r := range room {
				if r <= 0 {
					full = append(full, db)
				}
			}
			slices.Sort(full)
			return nil
		}
		if l.d.skipLocked() != "" {
			// A look without locks first: a claim that locked a capped
			// job's row and then waited for the caps' rows, to pass
			// over it, would make the other claims skip it meanwhile
			// and take younger jobs first.
			peek, err := l.pickCandidates(ctx, q, queue, t, n, except, nil, nil, false)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(peek, isCapped) {
				if err := countRoom(); err != nil {
					return err
				}
			}
		}
		for len(take) < n {
			want := n - len(take)
			cands, err := l.pickCandidates(ctx, q, queue, t, want, except, full, take, true)
			if err != nil {
				return err
			}
			if room == nil && slices.ContainsFunc(cands, isCapped) {
				// A capped job became ready since the look.
				if err := countRoom(); err != nil {
					return err
				}
			}
			passed := false
			for _, c := range cands {
				if l.capped(c.db) {
					if room[c.db] <= 0 {
						if !slices.Contains(full, c.db) {
							full = append(full, c.db)
						}
						passed = true
						continue
					}
					room[c.db]--
				}
				take = append(take, c.id)
			}
			// Another round only if jobs were passed over: the
			// next ones of the other databases may follow them.
			if !passed || len(cands) < want {
				break
			}
		}
		if len(take) == 0 {
			return nil
		}
		// Started now, after the wait for the caps' rows: claims of a
		// capped database's jobs start them in the order they take them.
		now := l.now()
		args := []any{node.Name, node.ID, l.timeArg(now), l.timeArg(now.Add(lease)), l.timeArg(now)}
		for _, id := range take {
			args = append(args, id)
		}
		in := sqlexec.Placeholders(len(take))
		if _, err := q.Exec(ctx, fmt.Sprintf("%s WHERE job_id IN (%s)", l.claimSet(), in), args...); err != nil {
			return err
		}
		var err error
		claimed, err = l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE job_id IN (%s)", jobColumns, l.table, in), args[5:]...)
		return err
	})
	return claimed, err
}

// capped reports whether jobs of source database db are capped.
func (l *Ledger) capped(db string) bool {
	_, ok := l.cfg.MaxRunning[db]
	return ok
}

// pickCandidates reads, and with lock locks where rows are locked, the
// next n ready jobs of queue at t, but those of the except tasks, of the
// full databases, and those taken already.
func (l *Ledger) pickCandidates(ctx context.Context, q sqlexec.Querier, queue string, t time.Time, n int, except, full, taken []string, lock bool) ([]candidate, error) {
	locking := ""
	if lock {
		locking = l.d.skipLocked()
	}
	var cond string
	args := []any{queue, l.timeArg(t)}
	for _, not := range []struct {
		col  string
		vals []string
	}{{"task", except}, {"source_db", full}, {"job_id", taken}} {
		if len(not.vals) == 0 {
			continue
		}
		cond += fmt.Sprintf(" AND %s NOT IN (%s)", not.col, sqlexec.Placeholders(len(not.vals)))
		for _, v := range not.vals {
			args = append(args, v)
		}
	}
	var out []candidate
	err := q.Query(ctx, fmt.Sprintf(`SELECT job_id, source_db FROM %s WHERE %s AND held = 0 AND ready_at <= ?%s
	ORDER BY ready_at, enqueued_at, job_id LIMIT %d%s`, l.table, l.d.pending(), cond, n, locking), func(scan func(...any) error) error {
		var c candidate
		err := scan(&c.id, &c.db)
		out = append(out, c)
		return err
	}, args...)
	return out, err
}

// lockRoom locks the rows of every capped database, in name order (so
// that claims never wait for each other in a circle), and counts how many
// more jobs each may start.
func (l *Ledger) lockRoom(ctx context.Context, q sqlexec.Querier) (map[string]int, error) {
	dbs := slices.Sorted(maps.Keys(l.cfg.MaxRunning))
	lock := func() (int, error) {
		n := 0
		err := q.Query(ctx, fmt.Sprintf("SELECT db FROM %s WHERE db IN (%s) ORDER BY db%s", l.caps, sqlexec.Placeholders(len(dbs)), l.d.lockRows()),
			func(scan func(...any) error) error { n++; var db string; return scan(&db) }, anys(dbs)...)
		return n, err
	}
	n, err := lock()
	if err == nil && n < len(dbs) {
		// A row went missing (Migrate adds them): add it, then lock.
		if err = l.addCapRows(ctx, q, dbs); err == nil {
			n, err = lock()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lock database caps: %w", err)
	}
	if n < len(dbs) {
		return nil, fmt.Errorf("lock database caps: %d of %d rows found in %s", n, len(dbs), l.caps)
	}
	running, err := l.runningOn(ctx, q, dbs)
	if err != nil {
		return nil, err
	}
	room := make(map[string]int, len(dbs))
	for _, db := range dbs {
		room[db] = l.cfg.MaxRunning[db] - int(running[db])
	}
	return room, nil
}

// addCapRows adds the caps table's rows of dbs that are not there.
func (l *Ledger) addCapRows(ctx context.Context, q sqlexec.Querier, dbs []string) error {
	stmt := l.d.insertIfAbsentSQL(l.caps, []string{"db"})
	for _, db := range dbs {
		if _, err := q.Exec(ctx, stmt, db); err != nil {
			return err
		}
	}
	return nil
}

// runningOn counts the STARTED jobs of each of dbs (all source databases
// when dbs is empty), on every node, with q.
func (l *Ledger) runningOn(ctx context.Context, q sqlexec.Querier, dbs []string) (map[string]int64, error) {
	var cond string
	if len(dbs) > 0 {
		cond = " AND source_db IN (" + sqlexec.Placeholders(len(dbs)) + ")"
	}
	out := map[string]int64{}
	err := q.Query(ctx, fmt.Sprintf("SELECT source_db, COUNT(*) FROM %s WHERE "+runningCond+"%s GROUP BY source_db", l.table, cond),
		func(scan func(...any) error) error {
			var db string
			var n int64
			err := scan(&db, &n)
			out[db] = n
			return err
		}, anys(dbs)...)
	if err != nil {
		return nil, fmt.Errorf("count running jobs by database: %w", err)
	}
	return out, nil
}

// MaxRunning are the caps on source databases' running jobs, by name
// (Config.MaxRunning).
func (l *Ledger) MaxRunning() map[string]int { return maps.Clone(l.cfg.MaxRunning) }

// DBLoad is what runs and waits against one source database.
type DBLoad struct {
	// Running counts the STARTED jobs, on every node.
	Running int64
	// Ready counts the jobs that could start now but for a free slot or
	// the database's cap (not those waiting for their time or their
	// group).
	Ready int64
}

// DBLoads counts, by source database, the jobs running and ready, of
// every owner, or of one if owner is not nil. Jobs admitted before jobs
// recorded their database are counted under "".
func (l *Ledger) DBLoads(ctx context.Context, owner *string) (map[string]*DBLoad, error) {
	own := ""
	var ownArg []any
	if owner != nil {
		own, ownArg = " AND owner = ?", []any{*owner}
	}
	args := append(append(append([]any{}, ownArg...), l.timeArg(l.now())), ownArg...)
	stmt := fmt.Sprintf(`SELECT source_db, 1, COUNT(*) FROM %[1]s WHERE `+runningCond+`%[2]s GROUP BY source_db
UNION ALL SELECT source_db, 0, COUNT(*) FROM %[1]s WHERE `+pendingCond+` AND held = 0 AND ready_at <= ?%[2]s GROUP BY source_db`, l.table, own)
	out := map[string]*DBLoad{}
	err := l.q.Query(ctx, stmt, func(scan func(...any) error) error {
		var (
			db      string
			running int
			n       int64
		)
		if err := scan(&db, &running, &n); err != nil {
			return err
		}
		load := out[db]
		if load == nil {
			load = &DBLoad{}
			out[db] = load
		}
		if running == 1 {
			load.Running += n
		} else {
			load.Ready += n
		}
		return nil
	}, args...)
	if err != nil {
		return nil, fmt.Errorf("count jobs by database: %w", err)
	}
	return out, nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

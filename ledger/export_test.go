package ledger

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Plans are the database's plans for the ledger's queries that partial
// indexes (or, on MySQL, indexes of generated columns) serve: "claim" (the
// next jobs of queue), "group" (a group's jobs) and "expired" (jobs past
// their expiry), and more.
func Plans(ctx context.Context, l *Ledger, queue, group string) (map[string]string, error) {
	_, sqlite := l.d.(sqliteDriver)
	explain := "EXPLAIN "
	switch l.d.(type) {
	case sqliteDriver:
		explain = "EXPLAIN QUERY PLAN "
	case mysqlDriver:
		// One row: the plan as JSON, which names the index read and
		// whether the rows are sorted after (filesort).
		explain = "EXPLAIN FORMAT=JSON "
	}
	t := l.timeArg(time.Now())
	out := map[string]string{}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"claim":   {l.pickSQL(10, 0), []any{queue, t}},
		"group":   {l.groupJobsSQL(), []any{group}},
		"expired": {l.expiredSQL(10), []any{t}},
		// Finished within the last hour, of the one owner all jobs have.
		"reuse": {l.reusableSQL(1), []any{"fp", l.timeArg(time.Now().Add(-time.Hour)), "", "t", t, "new"}},
		// A flight's leader, and the jobs waiting on it.
		"flight":  {l.leaderSQL(), []any{"fp"}},
		"waiting": {l.waitingSQL(), []any{"fp"}},
		// What waits in each queue, for the metrics.
		"by queue": {l.pendingByQueueSQL(), []any{t}},
	} {
		var lines []string
		err := l.q.Query(ctx, explain+q.sql, func(scan func(...any) error) error {
			// SQLite's plan rows have four columns, PostgreSQL's one.
			if sqlite {
				var id, parent, notUsed int
				var detail string
				err := scan(&id, &parent, &notUsed, &detail)
				lines = append(lines, detail)
				return err
			}
			var line string
			err := scan(&line)
			lines = append(lines, line)
			return err
		}, q.args...)
		if err != nil {
			return nil, err
		}
		out[name] = strings.Join(lines, "\n")
	}
	return out, nil
}

// FinishTogether records the SUCCESS of the runs (job ID, run ID, outcome)
// in one batch, as SUCCESSes that arrive together are written, and returns
// the job IDs it recorded; ok is false where the driver does not batch
// them.
func FinishTogether(ctx context.Context, l *Ledger, ids, runIDs []string, outcomes []Outcome) (written map[string]bool, ok bool, err error) {
	b, ok := l.d.(batchFinisher)
	if !ok {
		return nil, false, nil
	}
	var runs []*pendingFinish
	for i, id := range ids {
		runs = append(runs, &pendingFinish{ctx: ctx, id: id, runID: runIDs[i], o: outcomes[i]})
	}
	slices.SortFunc(runs, func(x, y *pendingFinish) int { return strings.Compare(x.id, y.id) })
	written, err = b.finishBatch(ctx, l, l.now(), runs)
	return written, true, err
}

// AdmitTogether writes admissions of jobs in one batch, as admissions that
// arrive together are written, and returns the IDs it wrote with their
// fence tokens; ok is false where the driver does not batch them.
func AdmitTogether(ctx context.Context, l *Ledger, jobs []Job) (written map[string]int64, ok bool, err error) {
	b, ok := l.d.(batchAdmitter)
	if !ok {
		return nil, false, nil
	}
	var batch []*Job
	for _, j := range jobs {
		a := l.admission(j)
		batch = append(batch, &a)
	}
	slices.SortFunc(batch, func(x, y *Job) int { return strings.Compare(x.ID, y.ID) })
	a, err := b.admitBatch(ctx, l, batch)
	written = make(map[string]int64, len(a))
	for id, w := range a {
		written[id] = w.fence
	}
	return written, true, err
}

// FailingClaim runs a MySQL claim by scripts that fails at the server:
// in its second script's first statement (the UPDATE, after the pick has
// locked the jobs it picked), or, with failPick, in its first script's
// second statement (the pick, after START TRANSACTION).
func FailingClaim(ctx context.Context, l *Ledger, queue string, failPick bool) error {
	set, pick := "UPDATE "+l.table+" SET no_such_column = 1", l.pickSQL(10, 0)
	if failPick {
		set, pick = l.claimSet(), strings.Replace(pick, "SELECT job_id", "SELECT no_such_column", 1)
	}
	_, err := scriptedClaim(ctx, l, l.db.Scripts(), set, nil, pick, []any{queue, l.timeArg(l.now())})
	return err
}

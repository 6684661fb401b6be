package ledger

import (
	"context"
	"strings"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// ListPlans are the database's plans for a page of the job listing after a
// cursor, for every owner ("all") and for one ("owner"), and for the
// queues' summary ("queues").
func ListPlans(ctx context.Context, l *Ledger) (map[string]string, error) {
	_, sqlite := l.d.(sqliteDriver)
	explain := "EXPLAIN "
	if sqlite {
		explain = "EXPLAIN QUERY PLAN "
	}
	now := time.Now()
	cursor := l.encodeCursor(listCursor{CreatedAt: now.UnixMicro(), JobID: "x", Filter: listFingerprint(sqljobber.JobFilter{}, nil)})
	owner := "alice"
	ownerCursor := l.encodeCursor(listCursor{CreatedAt: now.UnixMicro(), JobID: "x", Filter: listFingerprint(sqljobber.JobFilter{}, &owner)})
	out := map[string]string{}
	// The statements are those the listing runs, put under EXPLAIN by a
	// querier that rewrites them, so that the plans are of the very SQL.
	for name, run := range map[string]func(l *Ledger) error{
		"all": func(l *Ledger) error {
			_, _, err := l.List(ctx, sqljobber.JobFilter{Cursor: cursor, Limit: 10})
			return err
		},
		"owner": func(l *Ledger) error {
			_, _, err := l.ListOf(ctx, sqljobber.JobFilter{Cursor: ownerCursor, Limit: 10}, owner)
			return err
		},
		"queues": func(l *Ledger) error {
			_, err := l.QueueCounts(ctx, time.Hour)
			return err
		},
	} {
		var lines []string
		explained, err := New(l.db, nil, l.cfg)
		if err != nil {
			return nil, err
		}
		explained.identity = l.identity
		explained.q = explainQuerier{Querier: l.q, prefix: explain, sqlite: sqlite, lines: &lines}
		if err := run(explained); err != nil {
			return nil, err
		}
		out[name] = strings.Join(lines, "\n")
	}
	return out, nil
}

// explainQuerier runs each query under EXPLAIN, collecting the plan's
// lines instead of the rows.
type explainQuerier struct {
	sqlexec.Querier
	prefix string
	sqlite bool
	lines  *[]string
}

func (q explainQuerier) Query(ctx context.Context, stmt string, _ func(func(...any) error) error, args ...any) error {
	return q.Querier.Query(ctx, q.prefix+stmt, func(scan func(...any) error) error {
		// SQLite's plan rows have four columns, PostgreSQL's one.
		if q.sqlite {
			var id, parent, notUsed int
			var detail string
			err := scan(&id, &parent, &notUsed, &detail)
			*q.lines = append(*q.lines, detail)
			return err
		}
		var line string
		err := scan(&line)
		*q.lines = append(*q.lines, line)
		return err
	}, args...)
}

package resultsink

import (
	"context"
	"strings"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// WithoutSmallPath makes b write every result through a staging table, so
// that tests cover that path with few rows too.
func WithoutSmallPath(b *Backend) { b.smallMax = 0 }

// ClaimPlan is the database's plan for the query that picks the next jobs
// of queue to claim.
func ClaimPlan(ctx context.Context, l *Ledger, queue string) (string, error) {
	explain := "EXPLAIN "
	if l.db.Dialect == sqlexec.SQLite {
		explain = "EXPLAIN QUERY PLAN "
	}
	var lines []string
	err := l.q.query(ctx, explain+l.pickSQL(10), func(scan func(...any) error) error {
		// SQLite's plan rows have four columns, PostgreSQL's one.
		if l.db.Dialect == sqlexec.SQLite {
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
	}, queue, l.timeArg(time.Now()))
	return strings.Join(lines, "\n"), err
}

package sqlexec_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestPrepareSaysWhichParameterStyleTheDatabaseTakes: a task copied from a
// MySQL deployment into a PostgreSQL one (or the other way round) fails at
// start-up with the database's syntax error and what to write instead.
func TestPrepareSaysWhichParameterStyleTheDatabaseTakes(t *testing.T) {
	for _, c := range []struct {
		d          sqlexec.Dialect
		query, say string
	}{
		{sqlexec.Postgres, "SELECT 1 AS one WHERE 'a' = ?;", "write $1, $2, ... where the query says ?"},
		{sqlexec.MySQL, "SELECT 1 AS one FROM DUAL WHERE 'a' = $1;", "write ? where the query says $1, $2, ..."},
	} {
		t.Run(string(c.d), func(t *testing.T) {
			db := sqlexectest.Open(t, c.d, "src", sqlexec.OpenOptions{})
			tasks, _, err := sqlexec.ParseTasks("reports.sql", []byte("-- name: copied\n"+c.query+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			reg, err := sqlexec.NewRegistry(tasks, []*sqlexec.DB{db}, []string{"res"})
			if err != nil {
				t.Fatal(err)
			}
			err = reg.Prepare(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.say) || !strings.Contains(err.Error(), "reports.sql:") {
				t.Fatalf("preparing %q: %v", c.query, err)
			}
		})
	}
}

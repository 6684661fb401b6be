package sqlexec_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestMySQLPoolKeepsTheConnectionsItsJobsUse: a pool whose max_idle is not
// set keeps every connection that jobs running at once used, so the next
// jobs find them open rather than each opening its own (a new MySQL
// connection cost a one-row job more than its query).
func TestMySQLPoolKeepsTheConnectionsItsJobsUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := sqlexectest.Open(t, sqlexec.MySQL, "src", sqlexec.OpenOptions{})
	ids := func() map[int64]bool {
		t.Helper()
		seen := map[int64]bool{}
		var conns []*sql.Conn
		for range 4 { // sqlexectest.Open's max_active
			conn, err := db.SQL().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
			id, err := sqlexec.ConnectionID(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			seen[id] = true
		}
		for _, c := range conns {
			c.Close()
		}
		return seen
	}
	first, again := ids(), ids()
	for id := range again {
		if !first[id] {
			t.Fatalf("connections %v, then %v: the pool closed connections its jobs had used and opened others", first, again)
		}
	}
}

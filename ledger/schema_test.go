package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

func TestLedgerRefusesATableOfAnotherLayout(t *testing.T) {
	for _, d := range sqlexectest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			db := sqlexectest.Open(t, d, "ledger", sqlexec.OpenOptions{Results: true})
			sqlexectest.Exec(t, db, "CREATE TABLE sqljobber_jobs (job_id TEXT, state TEXT)")
			l, err := ledger.New(db, nil, ledger.Config{})
			if err == nil {
				err = l.Migrate(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), "exists without the columns this version needs") {
				t.Fatalf("err %v", err)
			}
		})
	}
}

// TestLedgerQueriesReadTheirPartialIndexes: the ledger keeps finished
// jobs until their TTL, often millions of them, most in no group and many
// without expiry; picking the next jobs to claim, a group's jobs and the
// expired jobs must each read the index that holds only those rows, not
// scan the table.
func TestLedgerQueriesReadTheirPartialIndexes(t *testing.T) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := openLedger(t, d, ledger.Config{})
			for i := range 300 {
				if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: fmt.Sprintf("done-%d", i), Task: "t", Queue: "q"})); err != nil {
					t.Fatal(err)
				}
			}
			sqlexectest.Exec(t, l.db, "UPDATE sqljobber_jobs SET state = 'SUCCESS'")
			// Thirty times as many, so that reading the whole table is
			// clearly the planners' worse choice.
			copyJobs(t, l.db, 30, "state")
			// Every job its own fingerprint, as real ones have, all
			// finished lately (and the owners are few: one here).
			sqlexectest.Exec(t, l.db, "UPDATE sqljobber_jobs SET fingerprint = job_id, flight = job_id, finished_at = created_at")
			if _, err := l.AdmitGroup(ctx, ledger.Group{ID: "g", Concurrency: 1, JobIDs: []string{"g1", "g2"}},
				[]ledger.Job{jb(sqljobber.Job{ID: "g1", Task: "t", Queue: "other", GroupID: "g"}), heldJob(sqljobber.Job{ID: "g2", Task: "t", Queue: "other", GroupID: "g"})}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Admit(ctx, jb(sqljobber.Job{ID: "waiting", Task: "t", Queue: "q"})); err != nil {
				t.Fatal(err)
			}
			sqlexectest.Exec(t, l.db, "ANALYZE")
			plans, err := ledger.Plans(ctx, l.Ledger, "q", "g")
			if err != nil {
				t.Fatal(err)
			}
			for name, index := range map[string]string{"claim": "sqljobber_jobs_pending", "group": "sqljobber_jobs_grouped", "expired": "sqljobber_jobs_expiring", "reuse": "sqljobber_jobs_reusable",
				"flight": "sqljobber_jobs_flight", "waiting": "sqljobber_jobs_joined"} {
				if !strings.Contains(plans[name], index) {
					t.Errorf("the %s query does not read %s:\n%s", name, index, plans[name])
				}
			}
			if j, err := claimOne(l, "q", "n1", time.Minute); err != nil || j == nil || j.ID != "waiting" {
				t.Fatalf("claimed %v, %v; want the waiting job", j, err)
			}
		})
	}
}

// TestMySQLClaimsReadWaitingJobsInOrder: MySQL has no partial indexes; a
// claim must still read the next waiting jobs of its queue from an index
// in the order they start, not read and sort every waiting job of the
// queue (hundreds a claim in a burst of small jobs), and the other
// queries must read their indexes.
func TestMySQLClaimsReadWaitingJobsInOrder(t *testing.T) {
	ctx := context.Background()
	l := openLedger(t, sqlexec.MySQL, ledger.Config{})
	for i := range 300 {
		mustAdmit(t, l, jb(sqljobber.Job{ID: fmt.Sprintf("w%03d", i), Task: "t", Queue: "q"}))
		mustAdmit(t, l, jb(sqljobber.Job{ID: fmt.Sprintf("d%03d", i), Task: "t", Queue: "q"}))
	}
	sqlexectest.Exec(t, l.db, "UPDATE sqljobber_jobs SET state = 'SUCCESS', finished_at = created_at, fingerprint = job_id WHERE job_id LIKE 'd%'")
	sqlexectest.Exec(t, l.db, "ANALYZE TABLE sqljobber_jobs")
	plans, err := ledger.Plans(ctx, l.Ledger, "q", "g")
	if err != nil {
		t.Fatal(err)
	}
	for name, index := range map[string]string{"claim": "sqljobber_jobs_pending", "group": "sqljobber_jobs_group", "expired": "sqljobber_jobs_expiry",
		"reuse": "sqljobber_jobs_fingerprint", "waiting": "sqljobber_jobs_joined"} {
		if !strings.Contains(plans[name], `"key": "`+index+`"`) {
			t.Errorf("the %s query does not read %s:\n%s", name, index, plans[name])
		}
	}
	if strings.Contains(plans["claim"], "filesort") {
		t.Errorf("the claim sorts the waiting jobs it reads:\n%s", plans["claim"])
	}
	if !strings.Contains(plans["by queue"], `"key": "sqljobber_jobs_pending"`) || !strings.Contains(plans["by queue"], `"using_index": true`) {
		t.Errorf("the count of waiting jobs by queue does not read the index of waiting jobs alone:\n%s", plans["by queue"])
	}
	// First in, first out, from the index.
	for _, want := range []string{"w000", "w001", "w002"} {
		if j, err := claimOne(l, "q", "n1", time.Minute); err != nil || j == nil || j.ID != want {
			t.Fatalf("claimed %v, %v; want %s", j, err, want)
		}
	}
}

// TestMySQLMigrateReplacesTheIndexOfWaitingJobs: a MySQL ledger of the
// version before the generated column of waiting jobs (with _ready)
// gets the column and _pending, loses _ready, and its waiting jobs are
// claimed in order; nodes migrate it at once.
func TestMySQLMigrateReplacesTheIndexOfWaitingJobs(t *testing.T) {
	ctx := context.Background()
	l := openLedger(t, sqlexec.MySQL, ledger.Config{})
	mustAdmit(t, l, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}))
	mustAdmit(t, l, jb(sqljobber.Job{ID: "b", Task: "t", Queue: "q"}))
	for _, stmt := range []string{
		"DROP INDEX sqljobber_jobs_pending ON sqljobber_jobs",
		"ALTER TABLE sqljobber_jobs DROP COLUMN pending_queue",
		"CREATE INDEX sqljobber_jobs_ready ON sqljobber_jobs (queue, state, held, ready_at)",
	} {
		sqlexectest.Exec(t, l.db, stmt)
	}
	if err := migrateAtOnce(ctx, l.db, 4); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := l.db.Querier().Query(ctx, `SELECT index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM information_schema.statistics
	WHERE table_schema = DATABASE() AND table_name = 'sqljobber_jobs' AND index_name IN ('sqljobber_jobs_pending', 'sqljobber_jobs_ready')
	GROUP BY index_name`, func(scan func(...any) error) error {
		var name, cols string
		err := scan(&name, &cols)
		got = append(got, name+"("+cols+")")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqljobber_jobs_pending(pending_queue,held,ready_at,enqueued_at,job_id,state)"; len(got) != 1 || got[0] != want {
		t.Fatalf("indexes %v; want %s alone", got, want)
	}
	for _, want := range []string{"a", "b"} {
		if j, err := claimOne(l, "q", "n1", time.Minute); err != nil || j == nil || j.ID != want {
			t.Fatalf("claimed %v, %v; want %s", j, err, want)
		}
	}
}

// TestMigrateReplacesTheIndexesOfALedgerInUse: a ledger made by an earlier
// version (with _ready, _group and _expiry), holding jobs, gets the partial
// indexes and loses those; an invalid index (an interrupted concurrent
// build) is built again.
func TestMigrateReplacesTheIndexesOfALedgerInUse(t *testing.T) {
	ctx := context.Background()
	l := openLedger(t, sqlexec.Postgres, ledger.Config{})
	mustAdmit(t, l, jb(sqljobber.Job{ID: "a", Task: "t", Queue: "q"}))
	// Enough finished jobs that an index build takes a while.
	copyJobs(t, l.db, 50000, "'SUCCESS'")
	indexes := func() string {
		rows, err := l.db.Postgres().Query(ctx, `SELECT c.relname || ':' || i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE c.relnamespace = current_schema()::regnamespace AND i.indrelid = 'sqljobber_jobs'::regclass AND NOT i.indisprimary ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, " ")
	}
	for _, setup := range []string{
		`DROP INDEX sqljobber_jobs_pending, sqljobber_jobs_grouped, sqljobber_jobs_expiring;
	CREATE INDEX sqljobber_jobs_ready ON sqljobber_jobs (queue, state, held, ready_at);
	CREATE INDEX sqljobber_jobs_group ON sqljobber_jobs (group_id); CREATE INDEX sqljobber_jobs_expiry ON sqljobber_jobs (expires_at)`,
		"UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'sqljobber_jobs_pending'::regclass",
	} {
		if _, err := l.db.Postgres().Exec(ctx, setup); err != nil {
			t.Fatal(err)
		}
		// Every node of a cluster migrates as it starts, maybe at once.
		if err := migrateAtOnce(ctx, l.db, 4); err != nil {
			t.Fatalf("after %q: %v", setup, err)
		}
		if got := indexes(); got != "sqljobber_jobs_created:true sqljobber_jobs_expiring:true sqljobber_jobs_finished:true sqljobber_jobs_flight:true sqljobber_jobs_grouped:true sqljobber_jobs_joined:true sqljobber_jobs_owned:true sqljobber_jobs_pending:true sqljobber_jobs_reusable:true sqljobber_jobs_running:true" {
			t.Fatalf("after %q, indexes %q; want the valid partial ones and the listing's alone", setup, got)
		}
	}
	if j, err := claimOne(l, "q", "n1", time.Minute); err != nil || j == nil || j.ID != "a" {
		t.Fatalf("claimed %v, %v", j, err)
	}
}

// copyJobs adds n copies of every job in the ledger, with IDs of their own
// and state (an SQL expression over the copied row).
// migrateAtOnce migrates the ledger on db from n nodes at once, as the
// nodes of a cluster may as they start.
func migrateAtOnce(ctx context.Context, db *sqlexec.DB, n int) error {
	errs := make(chan error, n)
	for range n {
		go func() {
			node, err := ledger.New(db, nil, ledger.Config{})
			if err == nil {
				err = node.Migrate(ctx)
			}
			errs <- err
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func copyJobs(t *testing.T, db *sqlexec.DB, n int, state string) {
	t.Helper()
	sqlexectest.Exec(t, db, fmt.Sprintf(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %d)
	INSERT INTO sqljobber_jobs (job_id, task, queue, state, args, db, group_id, retries, ttl_seconds, results_backend, results_table,
		count, error, attempt, run_id, node, fence, held, enqueued_at, ready_at, created_at, updated_at)
	SELECT job_id || '-' || n, task, queue, %s, args, db, group_id, retries, ttl_seconds, results_backend, results_table,
		count, error, attempt, run_id, node, fence, held, enqueued_at, ready_at, created_at, updated_at FROM sqljobber_jobs, g`, n, state))
}

// TestMigrateAddsTheColumnsOfThisVersion: tables of the version before node
// incarnations, lost runs and owners get their columns, its rows
// keep their values and read with the new ones' defaults, and the ledger
// gets an identity, the same on every migration.
func TestMigrateAddsTheColumnsOfThisVersion(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		ctx := context.Background()
		l := openLedger(t, d, ledger.Config{})
		mustAdmit(t, l, jb(sqljobber.Job{ID: "old", Task: "t", Queue: "q"}))
		id := l.Identity()
		if len(id) != 32 {
			t.Fatalf("identity %q", id)
		}
		for _, index := range []string{"sqljobber_jobs_running", "sqljobber_jobs_owned"} {
			sqlexectest.Exec(t, l.db, "DROP INDEX "+index+map[sqlexec.Dialect]string{sqlexec.MySQL: " ON sqljobber_jobs"}[d])
		}
		if d == sqlexec.SQLite {
			// SQLite drops no column an index holds.
			for _, index := range []string{"sqljobber_jobs_reusable", "sqljobber_jobs_flight", "sqljobber_jobs_joined"} {
				sqlexectest.Exec(t, l.db, "DROP INDEX "+index)
			}
		}
		if d == sqlexec.MySQL {
			// MySQL drops no column a generated column reads.
			sqlexectest.Exec(t, l.db, "ALTER TABLE sqljobber_jobs DROP COLUMN flight_leader")
		}
		for _, c := range []string{"node_id", "lost_runs", "owner", "reused_from", "fingerprint", "joined", "flight", "source_db"} {
			sqlexectest.Exec(t, l.db, "ALTER TABLE sqljobber_jobs DROP COLUMN "+c)
		}
		for _, table := range []string{"sqljobber_jobs_groups", "sqljobber_jobs_gone"} {
			sqlexectest.Exec(t, l.db, "ALTER TABLE "+table+" DROP COLUMN owner")
		}
		sqlexectest.Exec(t, l.db, "DROP TABLE sqljobber_jobs_caps")
		again, err := ledger.New(l.db, nil, ledger.Config{MaxRunning: map[string]int{"db0": 1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := again.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		j, err := again.Get(ctx, "old")
		if err != nil || j.Task != "t" || j.NodeID != "" || j.LostRuns != 0 || j.Owner != "" || j.ReusedFrom != "" || j.Fingerprint != "" ||
			j.Joined != "" || j.Flight != "" || j.SourceDB != "" {
			t.Fatalf("a job of the old layout: %+v, %v", j, err)
		}
		if n, err := countRows(ctx, l.db, "sqljobber_jobs_caps"); err != nil || n != 1 {
			t.Fatalf("the caps' rows after the migration: %d, %v", n, err)
		}
		// The migrated ledger lets a flight have one unfinished leader,
		// whatever writes to it.
		if _, err := again.AdmitFlight(ctx, flightJob("lead", "f", 0), nil, 0); err != nil {
			t.Fatal(err)
		}
		if w, err := again.AdmitFlight(ctx, flightJob("waits", "f", 0), nil, 0); err != nil || w.Joined != "lead" {
			t.Fatalf("a job of the flight: %+v, %v", w, err)
		}
		if _, err := l.db.Querier().Exec(ctx, "UPDATE sqljobber_jobs SET joined = '' WHERE job_id = 'waits'"); !sqlexec.UniqueViolation(err) {
			t.Fatalf("a second leader of a flight: %v; want a unique violation", err)
		}
		if again.Identity() != id {
			t.Fatalf("identity %q after a second migration, was %q", again.Identity(), id)
		}
		if other := openLedger(t, d, ledger.Config{}); other.Identity() == id {
			t.Fatalf("two ledgers share the identity %q", id)
		}
	})
}

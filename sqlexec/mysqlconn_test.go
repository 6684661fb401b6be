package sqlexec_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestMySQLTaskQueriesStayPrepared: a task that runs again on a connection
// reuses the statement prepared for it the first time (one prepare, not one
// a job); a table altered in between reads back with its new columns; and a
// connection keeps a bounded number of statements, the ones it keeps still
// answering right.
func TestMySQLTaskQueriesStayPrepared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One connection: every query and every status read is on it.
	db, err := sqlexec.Open(ctx, sqlexec.DBConfig{Name: "src", Type: sqlexec.MySQL, DSN: sqlexectest.DSN(t, sqlexec.MySQL), MaxActive: 1}, sqlexec.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	sqlexectest.Exec(t, db, "CREATE TABLE kept (id BIGINT PRIMARY KEY, note TEXT)")
	sqlexectest.Exec(t, db, "INSERT INTO kept VALUES (1, 'it''s one'), (2, 'two')")

	status := func(name string) int {
		t.Helper()
		var n int
		var got string
		if err := db.SQL().QueryRowContext(ctx, "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&got, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var files strings.Builder
	files.WriteString("-- name: by_id\nSELECT * FROM kept WHERE id = ?;\n")
	const many = 12
	for i := range many {
		fmt.Fprintf(&files, "-- name: other_%d\nSELECT id + %d AS n FROM kept WHERE id = ?;\n", i, i)
	}
	tasks, _, err := sqlexec.ParseTasks("kept.sql", []byte(files.String()))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := sqlexec.NewRegistry(tasks, []*sqlexec.DB{db}, []string{"res"})
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, id int64) string {
		t.Helper()
		task, _ := reg.Task(name)
		rows, err := reg.Query(ctx, task, "src", []any{id})
		if err != nil {
			t.Fatalf("%s(%d): %v", name, id, err)
		}
		defer rows.Close()
		var out []string
		for _, c := range rows.Columns() {
			out = append(out, c.Name)
		}
		for rows.Next() {
			for i, v := range rows.Values() {
				if v == nil {
					out = append(out, "NULL")
					continue
				}
				out = append(out, sqlexec.FormatText(rows.Columns()[i].Type, v))
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s(%d): %v", name, id, err)
		}
		return strings.Join(out, "|")
	}

	prepared := status("Com_stmt_prepare")
	if got, want := run("by_id", 1), "id|note|1|it's one"; got != want {
		t.Fatalf("first run: %q, want %q", got, want)
	}
	if got, want := run("by_id", 2), "id|note|2|two"; got != want {
		t.Fatalf("second run: %q, want %q", got, want)
	}
	if n := status("Com_stmt_prepare") - prepared; n != 1 {
		t.Errorf("two runs of a task on one connection prepared %d statements, want 1", n)
	}

	sqlexectest.Exec(t, db, "ALTER TABLE kept ADD COLUMN extra INT NOT NULL DEFAULT 7")
	if got, want := run("by_id", 2), "id|note|extra|2|two|7"; got != want {
		t.Fatalf("after ALTER TABLE: %q, want %q", got, want)
	}

	// More tasks than a connection keeps statements for, twice over: the
	// connection closes the least recently used, and what it keeps
	// answers as it should.
	for round := range 2 {
		for i := range many {
			if got, want := run(fmt.Sprintf("other_%d", i), 2), fmt.Sprintf("n|%d", 2+i); got != want {
				t.Fatalf("round %d, other_%d: %q, want %q", round, i, got, want)
			}
		}
	}
	// MariaDB counts its own preparing again of the statement whose
	// table changed as a prepare too.
	if open := status("Com_stmt_prepare") - status("Com_stmt_reprepare") - status("Com_stmt_close"); open > 8 {
		t.Errorf("the connection keeps %d statements open, more than its bound of 8", open)
	}
	if got, want := run("by_id", 1), "id|note|extra|1|it's one|7"; got != want {
		t.Fatalf("after the others: %q, want %q", got, want)
	}
}

// TestOnlyMySQLResultsPoolsSendScripts: a MySQL results pool has a pool
// beside it that sends several statements in one round trip, each with its
// own result set, and that runs in the results pools' UTC; the pool itself
// refuses a script, as a source pool and other engines have none.
func TestOnlyMySQLResultsPoolsSendScripts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func(d sqlexec.Dialect, opts sqlexec.OpenOptions) *sqlexec.DB {
		t.Helper()
		db, err := sqlexec.Open(ctx, sqlexec.DBConfig{Name: "db", Type: d, DSN: sqlexectest.DSN(t, d)}, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	res := open(sqlexec.MySQL, sqlexec.OpenOptions{Results: true})
	scripts := res.Scripts()
	if scripts == nil {
		t.Fatal("a MySQL results pool has no scripts pool")
	}
	rows, err := scripts.QueryContext(ctx, "SET @x = ?; SELECT @x + 1, @@session.time_zone; DO 0", 41)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		for rows.Next() {
			var n int
			var zone string
			if err := rows.Scan(&n, &zone); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprint(n, " ", zone))
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil || strings.Join(got, ",") != "42 +00:00" {
		t.Fatalf("a script's rows: %q, %v", got, err)
	}
	rows.Close()
	if _, err := res.SQL().ExecContext(ctx, "DO 0; DO 1"); err == nil {
		t.Fatal("the results pool itself ran a script")
	}
	for _, db := range []*sqlexec.DB{open(sqlexec.MySQL, sqlexec.OpenOptions{}), open(sqlexec.Postgres, sqlexec.OpenOptions{Results: true}),
		open(sqlexec.SQLite, sqlexec.OpenOptions{Results: true})} {
		if db.Scripts() != nil {
			t.Errorf("a %s pool (results: %v) sends scripts", db.Dialect, db.Dialect != sqlexec.MySQL)
		}
	}
}

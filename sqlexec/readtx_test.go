package sqlexec_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// readAll reads every row of query in tx as text forms ("NULL" for NULL).
func readAll(t *testing.T, tx *sqlexec.ReadTx, query string, args ...any) ([]sqlexec.Column, [][]string) {
	t.Helper()
	rows, err := tx.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		var row []string
		for i, v := range rows.Values() {
			if v == nil {
				row = append(row, "NULL")
				continue
			}
			row = append(row, sqlexec.FormatText(rows.Columns()[i].Type, v))
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return rows.Columns(), out
}

func beginRead(t *testing.T, db *sqlexec.DB, prelude ...string) *sqlexec.ReadTx {
	t.Helper()
	tx, err := db.BeginRead(context.Background(), prelude...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	return tx
}

func TestReadTxReadsOneSnapshot(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		ctx := context.Background()
		db := sqlexectest.Open(t, d, "db", sqlexec.OpenOptions{Results: true})
		sqlexectest.Exec(t, db, "CREATE TABLE t (id INTEGER, name VARCHAR(10))")
		sqlexectest.Exec(t, db, "INSERT INTO t VALUES (1, 'one')")

		tx := beginRead(t, db)
		q := "SELECT id, name FROM t WHERE id >= ? ORDER BY id"
		if d == sqlexec.Postgres {
			q = sqlexec.Rebind(q)
		}
		cols, rows := readAll(t, tx, q, int64(1))
		if len(cols) != 2 || cols[0].Type != sqlexec.TypeInt64 || cols[1].Type != sqlexec.TypeText || len(rows) != 1 {
			t.Fatalf("first read: %+v %v", cols, rows)
		}
		// Another session commits a row: the transaction does not see it.
		sqlexectest.Exec(t, db, "INSERT INTO t VALUES (2, 'two')")
		if _, rows := readAll(t, tx, q, int64(1)); len(rows) != 1 || rows[0][1] != "one" {
			t.Fatalf("second read in the transaction: %v", rows)
		}
		if err := tx.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Query(ctx, q, int64(1)); err == nil {
			t.Fatal("query after Close succeeded")
		}

		tx2 := beginRead(t, db)
		if _, rows := readAll(t, tx2, q, int64(1)); len(rows) != 2 || rows[1][1] != "two" {
			t.Fatalf("a new transaction: %v", rows)
		}
		// Read-only: a write is refused.
		if rows, err := tx2.Query(ctx, "INSERT INTO t VALUES (3, 'three')"); err == nil {
			rows.Next()
			err = rows.Err()
			rows.Close()
			if err == nil {
				t.Fatal("a write in a read transaction succeeded")
			}
		}
	})
}

func TestReadTxPrelude(t *testing.T) {
	ctx := context.Background()
	db := sqlexectest.Open(t, sqlexec.Postgres, "db", sqlexec.OpenOptions{Results: true})
	if _, err := db.BeginRead(ctx, `LOCK TABLE "missing" IN ACCESS SHARE MODE`); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("lock of a missing table: %v", err)
	}
	sqlexectest.Exec(t, db, "CREATE TABLE t (id INTEGER)")
	tx := beginRead(t, db, `LOCK TABLE "t" IN ACCESS SHARE MODE`)
	if _, rows := readAll(t, tx, "SELECT COUNT(*) FROM t"); len(rows) != 1 || rows[0][0] != "0" {
		t.Fatalf("count: %v", rows)
	}
}

func TestSQLiteDecimalCollationOrdersByValue(t *testing.T) {
	db := sqlexectest.Open(t, sqlexec.SQLite, "db", sqlexec.OpenOptions{Results: true})
	sqlexectest.Exec(t, db, "CREATE TABLE t (d DECIMAL_TEXT)")
	sqlexectest.Exec(t, db, "INSERT INTO t VALUES ('10'), ('9.5'), ('-2'), ('9.50'), ('100'), (NULL)")
	tx := beginRead(t, db)
	_, rows := readAll(t, tx, `SELECT d FROM t WHERE d >= ? COLLATE `+sqlexec.SQLiteDecimalCollation+
		` ORDER BY d COLLATE `+sqlexec.SQLiteDecimalCollation+`, rowid`, "9.500")
	var got []string
	for _, r := range rows {
		got = append(got, r[0])
	}
	if strings.Join(got, " ") != "9.5 9.50 10 100" {
		t.Fatalf("rows: %v", got)
	}
}

// TestMySQLResultsStatementsTakeOneRoundTrip: on the connections of the
// ledger and the results, a statement with arguments is sent with them in
// it, not prepared, executed and closed (three round trips for one).
func TestMySQLResultsStatementsTakeOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := sqlexectest.Open(t, sqlexec.MySQL, "db", sqlexec.OpenOptions{Results: true})
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prepared := func() int {
		var name string
		var n int
		if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := prepared()
	var got string
	if err := conn.QueryRowContext(ctx, "SELECT CONCAT(?, ?)", "it's ", `a "quoted" \ value`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := `it's a "quoted" \ value`; got != want {
		t.Errorf("the arguments came back as %q, want %q", got, want)
	}
	if n := prepared() - before; n != 0 {
		t.Errorf("%d statements prepared for one with arguments", n)
	}
}

// TestMySQLConnectionsKnowTheirID: the ID a connection carries, which KILL
// QUERY names to stop a cancelled query, is the server's for that
// connection, and not another's: each of several open connections says its
// own.
func TestMySQLConnectionsKnowTheirID(t *testing.T) {
	ctx := context.Background()
	db := sqlexectest.Open(t, sqlexec.MySQL, "db", sqlexec.OpenOptions{})
	seen := map[int64]bool{}
	for range 3 {
		conn, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		carried, err := sqlexec.ConnectionID(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		var asked int64
		if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&asked); err != nil {
			t.Fatal(err)
		}
		if carried != asked || seen[carried] {
			t.Fatalf("a connection carries ID %d, the server says %d (seen before: %v)", carried, asked, seen[carried])
		}
		seen[carried] = true
	}
}

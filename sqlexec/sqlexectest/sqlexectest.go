// Package sqlexectest gives tests their own database on the real servers the
// project talks to: a fresh schema on PostgreSQL, a fresh database on
// MySQL/MariaDB, a fresh file for SQLite, each dropped when the test ends.
//
// A test that needs a server that cannot be reached is skipped, unless the CI
// environment variable is set: under CI it fails.
//
// The servers are found through SQLJOBBER_TEST_POSTGRES_DSN (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable) and
// SQLJOBBER_TEST_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/test).
package sqlexectest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Defaults for the local servers.
const (
	PostgresDSNDefault = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	MySQLDSNDefault    = "root@tcp(127.0.0.1:3306)/test"
)

// Dialects lists every dialect, for tests that run over all of them.
var Dialects = []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL, sqlexec.SQLite}

// EachDialect runs fn for each dialect, as parallel subtests named after
// the dialects.
func EachDialect(t *testing.T, fn func(t *testing.T, d sqlexec.Dialect)) {
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is unreachable under CI: %v", what, err)
	}
	t.Skipf("%s is unreachable (set CI to fail instead): %v", what, err)
}

func suffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// DSN returns the DSN of a fresh, empty database of dialect d for this test,
// dropped at cleanup.
func DSN(t testing.TB, d sqlexec.Dialect) string {
	t.Helper()
	switch d {
	case sqlexec.Postgres:
		return postgresDSN(t)
	case sqlexec.MySQL:
		return mysqlDSN(t)
	case sqlexec.SQLite:
		return filepath.Join(t.TempDir(), "test.db")
	}
	t.Fatalf("unknown dialect %q", d)
	return ""
}

func postgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SQLJOBBER_TEST_POSTGRES_DSN")
	if base == "" {
		base = PostgresDSNDefault
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unreachable(t, "PostgreSQL", err)
	}
	defer conn.Close(ctx)
	schema := "sjt_" + suffix()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SQLJOBBER_TEST_POSTGRES_DSN must be a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func mysqlDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SQLJOBBER_TEST_MYSQL_DSN")
	if base == "" {
		base = MySQLDSNDefault
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("SQLJOBBER_TEST_MYSQL_DSN: %v", err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("SQLJOBBER_TEST_MYSQL_DSN: %v", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		unreachable(t, "MySQL", err)
	}
	name := "sjt_" + suffix()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		conn, _ := mysql.NewConnector(cfg)
		db := sql.OpenDB(conn)
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// Open opens a pool on a fresh database of dialect d, closed at cleanup.
func Open(t testing.TB, d sqlexec.Dialect, name string, opts sqlexec.OpenOptions) *sqlexec.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqlexec.Open(ctx, sqlexec.DBConfig{Name: name, Type: d, DSN: DSN(t, d), MaxActive: 4}, opts)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(db.Close)
	return db
}

// Exec runs statements on db, failing the test on error. ? placeholders are
// rewritten to $n for PostgreSQL (see sqlexec.Querier).
func Exec(t testing.TB, db *sqlexec.DB, stmt string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := db.Querier().Exec(ctx, stmt, args...); err != nil {
		t.Fatalf("exec %q: %v", firstLine(stmt), err)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

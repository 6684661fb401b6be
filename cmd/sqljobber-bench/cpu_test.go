package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestCPUMeterCountsABackendThatEnded: a PostgreSQL backend that works and
// ends (its connection closed) between the meter's start and stop still
// counts as the database's CPU time, though the meter reads nothing in
// between.
func TestCPUMeterCountsABackendThatEnded(t *testing.T) {
	sqlexectest.DSN(t, "postgres")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgDefault)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	before := backendTicks(t, pid)
	m := startCPUMeter(0)
	if _, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 5000000)"); err != nil {
		t.Fatal(err)
	}
	used := time.Duration(backendTicks(t, pid)-before) * time.Second / clockTicks
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The backend is gone, and reaped, once its /proc entry is.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still there after 10 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	u := m.Stop()
	if used <= 0 {
		t.Fatalf("the backend used no CPU (%v) for the query", used)
	}
	if u.db < used {
		t.Fatalf("database CPU %v, want at least the ended backend's %v", u.db, used)
	}
}

func backendTicks(t *testing.T, pid int) int64 {
	t.Helper()
	p, ok := readProcs()[pid]
	if !ok {
		t.Fatalf("no process %d", pid)
	}
	return p.own
}

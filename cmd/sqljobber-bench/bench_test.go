package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// TestShortRun runs the harness on small data: every measurement is made
// and reported, and every job's rows arrive. (The figures themselves are
// not judged: benchmarks are not tests.)
func TestShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sql-jobber")
	}
	// Skips (or fails under CI) when a database is unreachable.
	sqlexectest.DSN(t, "postgres")
	sqlexectest.DSN(t, "mysql")
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"--short", "--out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// Five floors and four pairs' jobs, the smaller job, the CSV floor
	// and download; on PostgreSQL the tiny floors (many at a time, one at
	// a time, over HTTP) and the three kinds of tiny jobs, on MySQL the
	// same but over HTTP, and the atomic floors (many and one at a time);
	// the POST rate with each ledger, with the jobs running and held.
	if len(rep.Results) != 29 {
		t.Fatalf("%d results, want 29:\n%s", len(rep.Results), stdout.String())
	}
	for _, r := range rep.Results {
		if r.Seconds <= 0 || r.Rows != 0 && r.Rows != 20_000 && r.Rows != 5_000 {
			t.Errorf("result %+v", r)
		}
		if r.Floor != "" && r.Ratio <= 0 {
			t.Errorf("result %s has no ratio", r.Name)
		}
		if strings.HasPrefix(r.Name, "sql-jobber") && strings.Contains(r.Name, "one-row") && r.DBCPURatio <= 0 {
			t.Errorf("result %s does not compare the database's CPU with the floor's", r.Name)
		}
		if strings.HasPrefix(r.Name, "sql-jobber mysql") && strings.Contains(r.Name, "one-row") && !strings.Contains(r.Comments, "against the atomic floor (mysql floor, atomic): median of rounds") {
			t.Errorf("result %s is not compared with the atomic floor: %s", r.Name, r.Comments)
		}
		if strings.Contains(r.Name, "waiting for its job") && r.P50Ratio <= 0 {
			t.Errorf("result %s has no latency ratio", r.Name)
		}
		if strings.Contains(r.Name, "one client waiting") && !strings.Contains(r.Comments, "the POST's answer p50") {
			t.Errorf("result %s does not say where its latency goes: %s", r.Name, r.Comments)
		}
		if strings.HasPrefix(r.Name, "POSTs accepted") && r.PostsPerSec <= 0 {
			t.Errorf("result %s has no POST rate", r.Name)
		}
		if strings.HasPrefix(r.Name, "sql-jobber ") && strings.Contains(r.Name, " -> ") && !strings.Contains(r.Name, "rows") && !strings.Contains(r.Comments, "against the floor of each round: median of rounds") {
			t.Errorf("result %s is not compared with its rounds' floors: %s", r.Name, r.Comments)
		}
		if r.Name == "sql-jobber mysql -> mysql" && !strings.Contains(r.Comments, "(its table's shape): ") {
			t.Errorf("result %s is not compared with the floor of its table's shape: %s", r.Name, r.Comments)
		}
		if strings.Contains(r.Name, "floor CREATE") && !strings.Contains(r.Comments, "the job's shape") {
			t.Errorf("result %s: %s", r.Name, r.Comments)
		}
	}
}

// TestHelpSucceeds: --help prints the flags and is no error; an unknown
// flag is one.
func TestHelpSucceeds(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &stdout, &stderr); err != nil || !bytes.Contains(stderr.Bytes(), []byte("-tiny")) {
		t.Fatalf("--help: %v\n%s", err, stderr.String())
	}
	if err := run(context.Background(), []string{"--bogus"}, &stdout, &stderr); err == nil {
		t.Fatal("an unknown flag is no error")
	}
}

// TestARunRefusesWhileAnotherRuns: a run that finds another holding the
// databases (its lock on either server) fails at once, saying so, and
// empties nothing of the other's.
func TestARunRefusesWhileAnotherRuns(t *testing.T) {
	sqlexectest.DSN(t, "postgres")
	sqlexectest.DSN(t, "mysql")
	ctx := context.Background()
	pg, err := pgx.Connect(ctx, pgDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	my, err := sql.Open("mysql", myDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer my.Close()
	myConn, err := my.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer myConn.Close()
	for _, held := range []struct{ name, take, release string }{
		{"PostgreSQL", "SELECT pg_advisory_lock(hashtext('sqljobber-bench'))", "SELECT pg_advisory_unlock(hashtext('sqljobber-bench'))"},
		{"MySQL", "SELECT GET_LOCK('sqljobber-bench', 0)", "SELECT RELEASE_LOCK('sqljobber-bench')"},
	} {
		exec := func(q string) {
			t.Helper()
			var err error
			if held.name == "MySQL" {
				_, err = myConn.ExecContext(ctx, q)
			} else {
				_, err = pg.Exec(ctx, q)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		exec(held.take)
		var stdout, stderr bytes.Buffer
		err := run(ctx, []string{"--short", "--out", ""}, &stdout, &stderr)
		exec(held.release)
		if !errors.Is(err, errBusy) || !strings.Contains(err.Error(), held.name) {
			t.Errorf("with the %s lock held elsewhere: %v, want an error saying another run holds %[1]s's", held.name, err)
		}
		if strings.Contains(stderr.String(), "preparing") {
			t.Errorf("with the %s lock held elsewhere the run went on:\n%s", held.name, stderr.String())
		}
	}
}

// TestCPUProfileWhereNoFileCanBe: a --cpuprofile that cannot be created
// fails the run before it touches a database, naming the flag.
func TestCPUProfileWhereNoFileCanBe(t *testing.T) {
	for _, path := range []string{filepath.Join(t.TempDir(), "missing", "cpu.prof"), t.TempDir(), "\x00"} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"--cpuprofile", path, "--pg", "postgres://nobody@127.0.0.1:1/none"}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "--cpuprofile") {
			t.Errorf("--cpuprofile %q: %v, want an error naming the flag", path, err)
		}
	}
}

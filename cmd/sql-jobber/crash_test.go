package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// freePortPair finds a port p such that p and p+1 are free on 127.0.0.1
// (gossip and actor messages). It looks below the kernel's range of
// ephemeral ports: a port from that range, free a moment ago, can be taken
// by any outgoing connection (the cluster tests of other packages make
// many) before the process under test binds it.
func freePortPair(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			low, _ = strconv.Atoi(f[0])
		}
	}
	const first = 10000
	for range 200 {
		p := 0
		if low > first+2 {
			p = first + rand.IntN(low-first-1)
		} else {
			// No room below the ephemeral range: take one from it.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			p = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if p >= 65535 || !portFree(p) || !portFree(p+1) {
			continue
		}
		return p
	}
	t.Fatal("no two consecutive free ports")
	return 0
}

// portFree says whether a listener could bind 127.0.0.1:p a moment ago.
func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// TestClusterSurvivesKill9 runs three sql-jobber processes, kills one with
// SIGKILL while it runs jobs, and checks that every job still finishes, none
// is lost, and none runs more often than the crash explains. The runs'
// lease is an hour: the survivors take the dead node's runs back as soon
// as they find it gone, and a lost run spends none of the job's retries
// (it has none).
func TestClusterSurvivesKill9(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	// Every run that completes at the source leaves a row in runs.
	execStmt(t, dbs.src, "CREATE TABLE runs (job TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())")
	execStmt(t, dbs.src, "CREATE FUNCTION log_run(job TEXT) RETURNS INT LANGUAGE sql VOLATILE AS $$ INSERT INTO runs (job) VALUES (job) RETURNING 1 $$")
	files := map[string]string{"t.sql": "-- name: logged\nSELECT log_run($1) AS logged, pg_sleep(0.3) AS slept;\n"}
	env := newEnv(t, dbs.toml+"\n[app]\nrun_lease = \"1h\"\n\n[cluster]\nremoval_grace = \"1s\"\n", files)

	ports := []int{freePortPair(t), freePortPair(t), freePortPair(t)}
	seed := "127.0.0.1:" + strconv.Itoa(ports[0])
	var procs []*process
	for i, p := range ports {
		flags := []string{"--cluster-bind", "127.0.0.1:" + strconv.Itoa(p), "--worker-name", fmt.Sprintf("n%d", i), "--worker-concurrency", "3"}
		if i > 0 {
			flags = append(flags, "--join", seed)
		}
		procs = append(procs, startProcess(t, env, flags...))
	}
	api := &testServer{t: t, base: procs[0].base}
	waitMembers(t, 3, api)

	const n = 60
	for i := range n {
		id := fmt.Sprintf("k%02d", i)
		s := &testServer{t: t, base: procs[i%3].base}
		s.post("logged", fmt.Sprintf(`{"job_id": %q, "args": [%q]}`, id, id))
	}
	victim := procs[1]
	waitStarted(t, 30*time.Second, "the victim to run jobs", dbs, func(n map[string]int) bool { return n["n1"] > 0 })
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.wait(10 * time.Second)

	// Every job finishes: none is lost with the node.
	for i := range n {
		id := fmt.Sprintf("k%02d", i)
		if j := api.waitState(id, "SUCCESS", "FAILURE", "CANCELLED"); j.State != "SUCCESS" {
			t.Fatalf("job %s: %+v", id, j)
		}
	}

	// Runs: a job ran again only if the dead node had claimed it, and
	// no job completed at the source more than twice.
	ctx := context.Background()
	var claimedTwice, maxRuns int
	if err := dbs.res.Postgres().QueryRow(ctx, "SELECT COUNT(*) FROM sqljobber_jobs WHERE fence > 1").Scan(&claimedTwice); err != nil {
		t.Fatal(err)
	}
	if err := dbs.src.Postgres().QueryRow(ctx, "SELECT COALESCE(MAX(c), 0) FROM (SELECT COUNT(*) AS c FROM runs GROUP BY job) r").Scan(&maxRuns); err != nil {
		t.Fatal(err)
	}
	var completed int
	if err := dbs.src.Postgres().QueryRow(ctx, "SELECT COUNT(DISTINCT job) FROM runs").Scan(&completed); err != nil {
		t.Fatal(err)
	}
	if claimedTwice > 3 || maxRuns > 2 || completed != n {
		t.Fatalf("%d jobs claimed twice (the dead node had 3 slots), a job completed %d times, %d jobs completed", claimedTwice, maxRuns, completed)
	}
	var lastRerun time.Time
	if err := dbs.res.Postgres().QueryRow(ctx, "SELECT COALESCE(MAX(started_at), now()) FROM sqljobber_jobs WHERE fence > 1").Scan(&lastRerun); err != nil {
		t.Fatal(err)
	}
	if lost := count(t, dbs.res, "SELECT COUNT(*) FROM sqljobber_jobs WHERE lost_runs = 1 AND attempt = 1 AND state = 'SUCCESS'"); lost != int64(claimedTwice) {
		t.Fatalf("%d jobs ran again, %d say they lost one run and succeeded at their first attempt", claimedTwice, lost)
	}
	t.Logf("failover: %d jobs of the killed node ran again elsewhere, the last starting %v after the kill (run lease 1h)",
		claimedTwice, lastRerun.Sub(killed).Round(10*time.Millisecond))
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// chaosEnv runs TestChaos: it kills processes for a minute or more, so it
// runs only when asked (make chaos).
const chaosEnv = "SQLJOBBER_CHAOS"

// chaosRounds is how many nodes TestChaos kills, one after another.
const chaosRounds = 10

// TestChaos runs three sql-jobber processes under a steady load of jobs and,
// chaosRounds times, kills one with SIGKILL and starts it again. It checks
// that no job is lost (every job submitted succeeds), that no job ran twice
// while its first run was alive (each run takes a lock of its job at the
// source that a live run holds: a second run that found it taken says so
// in its results), and logs how long the killed node's running jobs took
// to start again elsewhere.
func TestChaos(t *testing.T) {
	if os.Getenv(chaosEnv) == "" {
		t.Skipf("set %s=1 to run (make chaos)", chaosEnv)
	}
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	// A killed node's source session must end, and free its locks, at
	// once, not when its query would have ended.
	var srcDB string
	if err := dbs.src.Postgres().QueryRow(context.Background(), "SELECT current_database()").Scan(&srcDB); err != nil {
		t.Fatal(err)
	}
	execStmt(t, dbs.src, fmt.Sprintf("ALTER DATABASE %q SET client_connection_check_interval = 100", srcDB))
	files := map[string]string{"t.sql": "-- name: locked\n" +
		"SELECT pg_try_advisory_xact_lock(hashtext($1)) AS alone, pg_sleep(1) AS slept;\n"}
	secret := "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItYnl0ZXMhIQ==" // 32 bytes
	env := newEnv(t, dbs.toml+fmt.Sprintf("\n[cluster]\nsecret = %q\n", secret), files)

	c := &chaosCluster{t: t, env: env, dbs: dbs}
	for i := range 3 {
		c.ports = append(c.ports, freePortPair(t))
		c.procs = append(c.procs, nil)
		c.startNode(i)
	}
	waitMembers(t, 3, &testServer{t: t, base: c.api(0)})

	stop := c.load()
	var failovers []time.Duration
	for round := range chaosRounds {
		victim := rand.IntN(3)
		failovers = append(failovers, c.killAndRestart(round, victim))
	}
	submitted := stop()

	// No job is lost, and none found its lock taken by a live run.
	api := &testServer{t: t, base: c.api(0)}
	for _, id := range submitted {
		if j := api.waitState(id, "SUCCESS", "FAILURE", "CANCELLED"); j.State != "SUCCESS" {
			t.Fatalf("job %s: %+v", id, j)
		}
	}
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM sqljobber_jobs WHERE state = 'SUCCESS'"); n != int64(len(submitted)) {
		t.Fatalf("%d jobs succeeded, %d were submitted", n, len(submitted))
	}
	var twice []string
	for _, id := range submitted {
		if n := count(t, dbs.res, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE NOT alone", quoteTable(dbs.res, "results_"+id))); n > 0 {
			twice = append(twice, id)
		}
	}
	if len(twice) > 0 {
		t.Fatalf("jobs that ran while an earlier run of theirs was alive: %v", twice)
	}
	slices.Sort(failovers)
	t.Logf("%d jobs, %d kills; failover (kill -9 to the last of the killed node's running jobs started elsewhere): median %v, worst %v, all %v",
		len(submitted), chaosRounds, failovers[len(failovers)/2], failovers[len(failovers)-1], failovers)
}

// chaosCluster is TestChaos's three processes.
type chaosCluster struct {
	t     *testing.T
	env   *testEnv
	dbs   *databases
	ports []int
	mu    sync.Mutex
	procs []*process
}

func (c *chaosCluster) api(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i].base
}

// startNode starts node i at its ports, joining node 0 (or node 1 for node
// 0 itself, once the cluster exists).
func (c *chaosCluster) startNode(i int) {
	c.t.Helper()
	flags := []string{"--cluster-bind", "127.0.0.1:" + strconv.Itoa(c.ports[i]), "--worker-name", fmt.Sprintf("n%d", i),
		"--worker-concurrency", "4"}
	if seed := c.ports[(i+len(c.ports)-1)%len(c.ports)]; c.procs[0] != nil || i > 0 {
		flags = append(flags, "--join", "127.0.0.1:"+strconv.Itoa(seed))
	}
	p := startProcess(c.t, c.env, flags...)
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
}

// load posts a job every 50 ms, to the nodes in turn, until stopped; stop
// returns the IDs of the jobs accepted. A POST that fails (its node was
// just killed) is not a job.
func (c *chaosCluster) load() (stop func() []string) {
	var (
		mu       sync.Mutex
		accepted []string
		done     = make(chan struct{})
		finished = make(chan struct{})
		n        atomic.Int64
	)
	go func() {
		defer close(finished)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			i := n.Add(1)
			id := fmt.Sprintf("c%04d", i)
			res, err := postJob(c.api(int(i)%len(c.ports)), "locked", fmt.Sprintf(`{"job_id": %q, "args": [%q]}`, id, id))
			if err == nil && res == 200 {
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(accepted)
	}
}

// killAndRestart kills node victim while it runs jobs, waits until its
// running jobs have started again elsewhere, starts it again, and returns
// how long after the kill the last of those jobs started again.
func (c *chaosCluster) killAndRestart(round, victim int) time.Duration {
	c.t.Helper()
	name := fmt.Sprintf("n%d", victim)
	var running []string
	testwait.For(c.t, 60*time.Second, fmt.Sprintf("round %d: %s runs jobs", round+1, name), func() (bool, string) {
		running = c.runningOn(name)
		return len(running) > 0, ""
	})
	c.mu.Lock()
	p := c.procs[victim]
	c.mu.Unlock()
	killed := time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	p.wait(10 * time.Second)
	var last time.Time
	testwait.For(c.t, 60*time.Second, fmt.Sprintf("round %d: %s's jobs %v to start again elsewhere", round+1, name, running), func() (bool, string) {
		var pending []string
		for _, id := range running {
			started, finished, node := c.lastRun(id)
			switch {
			case !finished.IsZero() && finished.Before(killed):
				// It finished before the kill.
			case started.Before(killed) || node == name:
				pending = append(pending, id)
			case started.After(last):
				last = started
			}
		}
		return len(pending) == 0, fmt.Sprint(pending)
	})
	c.startNode(victim)
	waitMembers(c.t, 3, &testServer{t: c.t, base: c.api(victim)})
	took := max(0, last.Sub(killed))
	c.t.Logf("round %d: killed %s running %d jobs; they started again elsewhere within %v", round+1, name, len(running), took.Round(time.Millisecond))
	return took
}

// runningOn lists the jobs that node runs, as the ledger says.
func (c *chaosCluster) runningOn(node string) []string {
	rows, err := c.dbs.res.Postgres().Query(context.Background(), "SELECT job_id FROM sqljobber_jobs WHERE state = 'STARTED' AND node = $1", node)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			c.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// lastRun is when job id's latest run started (zero while it waits to run
// again) and finished (zero if it has not), and on which node it ran.
func (c *chaosCluster) lastRun(id string) (started, finished time.Time, node string) {
	var s, f *time.Time
	err := c.dbs.res.Postgres().QueryRow(context.Background(), "SELECT started_at, finished_at, node FROM sqljobber_jobs WHERE job_id = $1", id).Scan(&s, &f, &node)
	if err != nil {
		c.t.Fatal(err)
	}
	if s != nil {
		started = *s
	}
	if f != nil {
		finished = *f
	}
	return started, finished, node
}

// postJob posts a job to base and returns the status code.
func postJob(base, task, body string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, "POST", base+"/tasks/"+task+"/jobs", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

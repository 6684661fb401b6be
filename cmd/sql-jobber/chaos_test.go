package main

import (
	"context"
	"fmt"
	"maps"
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

// chaosLogsEnv names a directory where TestChaos, when it fails or a
// failover is slow, writes every process's log.
const chaosLogsEnv = "SQLJOBBER_CHAOS_LOGS"

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
	// A run takes its job's lock at the source, waiting up to a second
	// for a run that died to let go of it (its session ends within
	// client_connection_check_interval), and says whether it got it.
	execStmt(t, dbs.src, `CREATE FUNCTION job_lock(job TEXT) RETURNS BOOLEAN LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM set_config('lock_timeout', '1s', true);
	PERFORM pg_advisory_xact_lock(hashtext(job));
	RETURN true;
EXCEPTION WHEN lock_not_available THEN
	RETURN false;
END $$`)
	files := map[string]string{"t.sql": "-- name: locked\n" +
		"SELECT job_lock($1) AS alone, pg_sleep(3) AS slept;\n"}
	secret := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	// Kills may hit one job's runs again and again; a job fails only
	// after lost_runs_max of them, which is not what this test is about.
	env := newEnv(t, dbs.toml+fmt.Sprintf("\n[app]\nlost_runs_max = 100\n\n[cluster]\nsecret = %q\n", secret), files)

	c := &chaosCluster{t: t, env: env, dbs: dbs}
	t.Cleanup(func() {
		if t.Failed() {
			c.saveLogs()
		}
	})
	for i := range 3 {
		c.ports = append(c.ports, freePortPair(t))
		c.procs = append(c.procs, nil)
		c.startNode(i)
	}
	c.waitCurrentRuns("start")

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
	// A POST whose answer a kill cut off may have been admitted: then
	// it succeeds too.
	testwait.For(t, 5*time.Minute, "every job admitted to succeed", func() (bool, string) {
		n := count(t, dbs.res, "SELECT COUNT(*) FROM sqljobber_jobs WHERE state <> 'SUCCESS'")
		return n == 0, fmt.Sprintf("%d not SUCCESS", n)
	})
	if n := count(t, dbs.res, "SELECT COUNT(*) FROM sqljobber_jobs"); n < int64(len(submitted)) {
		t.Fatalf("the ledger has %d jobs, %d were submitted", n, len(submitted))
	}
	var twice []string
	for _, id := range c.admitted() {
		if n := count(t, dbs.res, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE NOT alone", quoteTable(dbs.res, "results_"+id))); n > 0 {
			twice = append(twice, id)
		}
	}
	if len(twice) > 0 {
		t.Fatalf("jobs that ran while an earlier run of theirs was alive: %v", twice)
	}
	slices.Sort(failovers)
	t.Logf("%d jobs accepted, %d kills; failover (kill -9 to the last of the killed node's running jobs started elsewhere): median %v, worst %v, all %v",
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
	// all are every process started, the killed ones too, for their logs.
	all []*process
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
	c.all = append(c.all, p)
	c.mu.Unlock()
}

// load posts a job every 400 ms: the nodes run 4 jobs a second, 2.7 with
// one down, so that the failover times below are not time spent waiting
// for a free slot, to the nodes in turn, until stopped; stop
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
		t := time.NewTicker(400 * time.Millisecond)
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
	var running map[string]string // job ID: run ID
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
	err := testwait.Until(60*time.Second, fmt.Sprintf("round %d: %s's jobs %v to start again elsewhere", round+1, name, running), func() (bool, string) {
		var pending []string
		for id, run := range running {
			r := c.lastRun(id)
			switch {
			case r.runID == run && !r.finished.IsZero():
				// It finished before the kill.
			case r.runID == run || r.started.IsZero():
				pending = append(pending, fmt.Sprintf("%s (%s on %s)", id, r.state, r.node))
			case r.started.After(last):
				// A claim records the time it was asked for, which
				// may be a moment before the kill it follows.
				last = r.started
			}
		}
		return len(pending) == 0, fmt.Sprint(pending)
	})
	if err != nil {
		c.logSurvivors(victim)
		c.t.Fatal(err)
	}
	c.startNode(victim)
	converged := c.waitCurrentRuns(fmt.Sprintf("round %d", round+1))
	took := max(0, last.Sub(killed))
	ids := slices.Sorted(maps.Keys(running))
	c.t.Logf("round %d: killed %s at %s running %v; they started again elsewhere within %v; every node listed its restart %v after it served",
		round+1, name, killed.Format("15:04:05.000"), ids, took.Round(time.Millisecond), converged.Round(time.Millisecond))
	if took > 2*time.Second {
		c.logSurvivors(victim)
	}
	return took
}

// waitCurrentRuns waits until every node lists every node's current run
// (by member ID, new at each start) as alive, and returns how long that
// took. A count of alive members would pass on an earlier run of a
// restarted node that a member has not found dead yet.
func (c *chaosCluster) waitCurrentRuns(when string) time.Duration {
	c.t.Helper()
	begin := time.Now()
	testwait.For(c.t, 10*time.Second, when+": every node to list every node's current run", func() (bool, string) {
		views := make([][]member, len(c.ports))
		var runs []string
		for i := range views {
			views[i] = (&testServer{t: c.t, base: c.api(i)}).members()
			for _, m := range views[i] {
				if m.Self {
					runs = append(runs, m.ID)
				}
			}
		}
		ok := true
		var seen []string
		for i, view := range views {
			alive := map[string]bool{}
			var sees []string
			for _, m := range view {
				alive[m.ID] = m.State == "alive"
				sees = append(sees, fmt.Sprintf("%s (%s) %s", m.Name, m.ID, m.State))
			}
			var missing []string
			for j, id := range runs {
				if !alive[id] {
					missing = append(missing, fmt.Sprintf("n%d (%s)", j, id))
				}
			}
			if len(missing) > 0 {
				ok = false
				seen = append(seen, fmt.Sprintf("n%d does not list %v alive: it sees %v", i, missing, sees))
			}
		}
		return ok, strings.Join(seen, "; ")
	})
	return time.Since(begin)
}

// saveLogs writes every process's log, the killed ones' too, to the
// directory SQLJOBBER_CHAOS_LOGS names, if it is set.
func (c *chaosCluster) saveLogs() {
	dir := os.Getenv(chaosLogsEnv)
	if dir == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.all {
		_ = os.WriteFile(fmt.Sprintf("%s/%02d-%d.log", dir, i, p.cmd.Process.Pid), []byte(p.logs()), 0o644)
	}
}

// logSurvivors logs what the other nodes logged of node victim.
func (c *chaosCluster) logSurvivors(victim int) {
	c.saveLogs()
	name := fmt.Sprintf("n%d", victim)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.procs {
		if i == victim {
			continue
		}
		for _, line := range strings.Split(p.logs(), "\n") {
			if strings.Contains(line, name) || strings.Contains(line, "took back") || strings.Contains(line, "lost") {
				c.t.Logf("  n%d: %s", i, line)
			}
		}
	}
}

// admitted lists every job in the ledger.
func (c *chaosCluster) admitted() []string {
	rows, err := c.dbs.res.Postgres().Query(context.Background(), "SELECT job_id FROM sqljobber_jobs ORDER BY job_id")
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

// runningOn lists the jobs that node runs, as the ledger says, with their
// runs' IDs.
func (c *chaosCluster) runningOn(node string) map[string]string {
	rows, err := c.dbs.res.Postgres().Query(context.Background(), "SELECT job_id, run_id FROM sqljobber_jobs WHERE state = 'STARTED' AND node = $1", node)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	runs := map[string]string{}
	for rows.Next() {
		var id, run string
		if err := rows.Scan(&id, &run); err != nil {
			c.t.Fatal(err)
		}
		runs[id] = run
	}
	return runs
}

// run is a job's latest run as the ledger has it.
type run struct {
	runID, state, node string
	// started is zero while the job waits to run again; finished, while
	// it has not finished.
	started, finished time.Time
}

func (c *chaosCluster) lastRun(id string) run {
	var r run
	var s, f *time.Time
	err := c.dbs.res.Postgres().QueryRow(context.Background(), "SELECT run_id, state, node, started_at, finished_at FROM sqljobber_jobs WHERE job_id = $1", id).
		Scan(&r.runID, &r.state, &r.node, &s, &f)
	if err != nil {
		c.t.Fatal(err)
	}
	if s != nil {
		r.started = *s
	}
	if f != nil {
		r.finished = *f
	}
	return r
}

// postJob posts a job to base and returns the status code.
func postJob(base, task, body string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, "POST", base+"/tasks/"+task+"/jobs", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/http/client"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// measureRSSEnv runs TestMeasureCSVDownloadRSS, a measurement rather than
// a test (it asserts nothing about memory); it belongs in a benchmark
// harness. Run it without -race, which multiplies memory:
//
//	SQLJOBBER_MEASURE_RSS=1 go test -count=1 -run TestMeasureCSVDownloadRSS -v ./cmd/sql-jobber
const measureRSSEnv = "SQLJOBBER_MEASURE_RSS"

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestMeasureCSVDownloadRSS runs a 1,000,000-row job on PostgreSQL in a
// sql-jobber process of its own, then downloads its results as one CSV page
// while sampling the server's RSS, and logs the growth; then again in a
// fresh process, after a 100,000-row page.
func TestMeasureCSVDownloadRSS(t *testing.T) {
	if os.Getenv(measureRSSEnv) == "" {
		t.Skipf("a measurement: set %s=1 to run it", measureRSSEnv)
	}
	const rows = 1_000_000
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	env := newEnv(t, dbs.toml, map[string]string{"million.sql": fmt.Sprintf(`-- name: million
SELECT n AS id, n %% 7 AS grp, 'row ' || n AS label, n * 1.25 AS amount, TIMESTAMPTZ '2024-01-01' + n * INTERVAL '1 second' AS at
FROM generate_series(1, %d) AS n;
`, rows)})
	p := startProcess(t, env)
	pid := p.cmd.Process.Pid
	ctx := context.Background()
	c := client.New(p.base, nil)
	if _, err := c.PostJob(ctx, "million", client.JobRequest{JobID: "million"}); err != nil {
		t.Fatal(err)
	}
	if j, err := c.WaitJob(ctx, "million"); err != nil || j.Count != rows {
		t.Fatalf("job: %+v, %v", j, err)
	}

	measureDownload(t, c, pid, rows, "the process that ran the job")
	// Again in a process that has done nothing else.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	p = startProcess(t, env)
	c = client.New(p.base, nil)
	// A tenth first: if memory grew with the rows, the million would
	// grow it ten times as much again.
	measureDownload(t, c, p.cmd.Process.Pid, rows/10, "a fresh process")
	measureDownload(t, c, p.cmd.Process.Pid, rows, "the same process")
}

// measureDownload downloads rows rows as one CSV page while sampling the
// server's RSS, and logs the growth.
func measureDownload(t *testing.T, c *client.Client, pid, rows int, what string) {
	before := rssKiB(t, pid)
	var peak atomic.Int64
	peak.Store(before)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if r := rssKiB(t, pid); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	})
	began := time.Now()
	s, err := c.DownloadResults(context.Background(), "million", "csv", client.ResultsQuery{Limit: rows})
	if err != nil {
		t.Fatal(err)
	}
	lines := &lineCounter{}
	n, err := io.Copy(lines, s)
	s.Close()
	took := time.Since(began)
	close(stop)
	wg.Wait()
	if err != nil || lines.n != rows+1 {
		t.Fatalf("download: %d bytes, %d lines, more %v, %v", n, lines.n, s.More, err)
	}
	t.Logf("%d-row CSV download from %s: %.1f MB in %v; server RSS %d KiB before, %d KiB at most during it: +%d KiB",
		rows, what, float64(n)/1e6, took.Round(time.Millisecond), before, peak.Load(), peak.Load()-before)
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += strings.Count(string(p), "\n")
	return len(p), nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// process is a sql-jobber process started by a test.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan error
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startProcess runs sql-jobber (this test binary, see TestMain) on env in a
// process of its own, and waits until it serves.
func startProcess(t *testing.T, env *testEnv, flags ...string) *process {
	t.Helper()
	args := append([]string{"--config", env.config, "--sql-directory", filepath.Join(env.dir, "sql"),
		"--server", "127.0.0.1:0", "--worker-name", "proc-" + marker(t)}, flags...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	p := &process{t: t, cmd: cmd, exited: make(chan error, 1)}
	cmd.Stderr = p
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "sql-jobber is listening on "); ok {
				addr <- rest
			}
		}
	}()
	go func() { p.exited <- cmd.Wait() }()
	select {
	case p.base = <-addr:
	case err := <-p.exited:
		p.exited <- err
		t.Fatalf("sql-jobber exited at start: %v\n%s", err, p.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("sql-jobber did not start\n%s", p.logs())
	}
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *process) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		p.t.Fatalf("sql-jobber did not exit within %v\n%s", within, p.logs())
		return -1
	}
}

func TestSIGTERMLetsRunningJobsFinish(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	// A password in the DSN (trust authentication ignores it) that must
	// never reach the log.
	config := strings.ReplaceAll(dbs.toml, "postgres://postgres@", "postgres://postgres:s3cretpw@")
	env := newEnv(t, config, tasks(t, sqlexec.Postgres))
	p := startProcess(t, env, "--log-format", "json")
	s := &testServer{t: t, base: p.base}

	release := holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "draining", "args": ["ARGSECRET"]}`)
	s.waitState("draining", "STARTED")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Draining: no new jobs, not ready, status still answered.
	testwait.For(t, 20*time.Second, "submissions to be refused", func() (bool, string) {
		r := s.do("POST", "/tasks/entries_of/jobs", `{"args": ["U1"]}`)
		return r.code == 503, fmt.Sprintf("POST answers %d %s", r.code, r.Message)
	})
	if code, r := getReadyz(t, p.base); code != 503 || r.Data.Ready {
		t.Fatalf("readyz while draining: %d", code)
	}
	if j, _ := s.job("draining"); j.State != "STARTED" {
		t.Fatalf("running job while draining: %+v", j)
	}
	release()
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, p.logs())
	}
	var state string
	if err := dbs.res.Postgres().QueryRow(context.Background(), "SELECT state FROM sqljobber_jobs WHERE job_id = 'draining'").Scan(&state); err != nil || state != "SUCCESS" {
		t.Fatalf("the job running at SIGTERM is %q (%v), want SUCCESS", state, err)
	}

	// The log: JSON lines; the job's start and end once each, with what
	// an operator needs; no password and no argument anywhere.
	logs := p.logs()
	for _, secret := range []string{"s3cretpw", "ARGSECRET"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["job_id"] != "draining" {
			continue
		}
		msg, _ := rec["msg"].(string)
		seen[msg]++
		for _, k := range []string{"task", "queue"} {
			if rec[k] == nil {
				t.Errorf("%q has no %s", msg, k)
			}
		}
		if msg == "job finished" && (rec["rows"] == nil || rec["duration"] == nil || rec["state"] != "SUCCESS") {
			t.Errorf("job finished line: %v", rec)
		}
	}
	if seen["job started"] != 1 || seen["job finished"] != 1 {
		t.Fatalf("job log lines: %v\n%s", seen, logs)
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	env := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres))
	p := startProcess(t, env)
	s := &testServer{t: t, base: p.base}
	holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "stuck", "args": ["U1"]}`)
	s.waitState("stuck", "STARTED")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, "the process to drain", func() (bool, string) {
		return strings.Contains(p.logs(), "shutting down"), "its log has no \"shutting down\""
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit code %d after a second signal", code)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/retry"
)

// server is a sql-jobber process the harness runs.
type server struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
	stderr bytes.Buffer
	mu     sync.Mutex
	done   chan error
}

func (s *server) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.Write(b)
}

// logTail is the last n lines the server logged.
func (s *server) logTail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.stderr.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// build compiles sql-jobber into dir.
func build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "sql-jobber")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sql-jobber")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build sql-jobber (run from the repository's root): %w", err)
	}
	return bin, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer runs bin with the config and tasks in dir (see
// writeServerFiles).
func startServer(ctx context.Context, bin, dir string, concurrency int, pprof string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--config", filepath.Join(dir, "config.toml"), "--sql-directory", filepath.Join(dir, "sql"),
		"--server", addr, "--worker-concurrency", strconv.Itoa(concurrency), "--worker-name", "bench"}
	if pprof != "" {
		args = append(args, "--pprof", pprof)
	}
	cmd := exec.Command(bin, args...)
	s := &server{cmd: cmd, base: "http://" + addr, client: newClient(), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = io.Discard, s
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- cmd.Wait() }()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = retry.Do(rctx, retry.Backoff{First: 50 * time.Millisecond}, func(ctx context.Context) (bool, error) {
		select {
		case err := <-s.done:
			return true, fmt.Errorf("sql-jobber exited: %v\n%s", err, s.stderr.String())
		default:
		}
		res, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false, nil
		}
		res.Body.Close()
		return res.StatusCode == 200, nil
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		s.stop()
		return nil, fmt.Errorf("sql-jobber did not get ready\n%s", s.stderr.String())
	case err != nil:
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// rss is the process's resident memory now, in bytes.
func (s *server) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// newClient is an HTTP client as an application in front of sql-jobber
// would keep one: its connections stay open for the next request. (Go's
// default keeps two idle connections a host, so most of the concurrent
// clients' requests would each open a connection of their own.)
func newClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Timeout: 30 * time.Second, Transport: t}
}

func (s *server) post(task, body string) error {
	req, err := http.NewRequest(http.MethodPost, s.base+"/tasks/"+task+"/jobs", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.do(req, "POST "+task)
}

// cancel cancels job id (DELETE /jobs/{id}).
func (s *server) cancel(id string) error {
	req, err := http.NewRequest(http.MethodDelete, s.base+"/jobs/"+id, nil)
	if err != nil {
		return err
	}
	return s.do(req, "DELETE "+id)
}

// do sends req and reads its answer, an error naming what unless it is 200.
func (s *server) do(req *http.Request, what string) error {
	res, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 500 {
			// The answer says no more than "internal error": the server's
			// log says which.
			return fmt.Errorf("%s: %d %s\nthe server's last log lines:\n%s", what, res.StatusCode, b, s.logTail(20))
		}
		return fmt.Errorf("%s: %d %s", what, res.StatusCode, b)
	}
	_, err = io.Copy(io.Discard, res.Body)
	return err
}

type jobState struct {
	State string `json:"state"`
	Count int64  `json:"count"`
	Error string `json:"error"`
}

// jobWait reads a job, waiting up to wait for it to finish.
func (s *server) jobWait(ctx context.Context, id, wait string) (jobState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/jobs/"+id+"?wait="+wait, nil)
	if err != nil {
		return jobState{}, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return jobState{}, err
	}
	defer res.Body.Close()
	var env struct {
		Data jobState `json:"data"`
	}
	err = json.NewDecoder(res.Body).Decode(&env)
	return env.Data, err
}

// waitSuccess waits for job id to finish, and fails unless it succeeded.
func (s *server) waitSuccess(ctx context.Context, id string) error {
	_, err := s.waitDone(ctx, id)
	return err
}

// waitDone waits for job id to finish, and returns it if it succeeded.
func (s *server) waitDone(ctx context.Context, id string) (jobState, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		// Below the client's 30 s timeout: a wait that ends unanswered
		// (a lost notice, on a loaded machine) is asked again, not an
		// error.
		j, err := s.jobWait(ctx, id, "20s")
		switch {
		case err != nil:
			return j, err
		case j.State == "SUCCESS":
			return j, nil
		case j.State != "PENDING" && j.State != "STARTED" && j.State != "RETRY":
			return j, fmt.Errorf("job %s is %s: %s", id, j.State, j.Error)
		case time.Now().After(deadline):
			return j, fmt.Errorf("job %s did not finish", id)
		}
	}
}

// sampleRSS samples the server's resident memory every few milliseconds
// until the returned function is called, which returns the peak.
func (s *server) sampleRSS() func() int64 {
	var peak int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, s.rss())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() int64 {
		once.Do(func() { close(stop) })
		<-done
		return peak
	}
}

// runJob posts a job and waits for it, sampling the server's memory; it
// returns the time from POST to SUCCESS, the rows written and the peak RSS.
func (s *server) runJob(ctx context.Context, task, id string) (time.Duration, int64, int64, error) {
	peak := s.sampleRSS()
	defer peak()
	begin := time.Now()
	if err := s.post(task, fmt.Sprintf(`{"job_id": %q}`, id)); err != nil {
		return 0, 0, 0, err
	}
	// Waited for as a client would (GET ?wait=), not polled: a poll every
	// few milliseconds, hundreds a second through a large job, would take
	// the server's and the ledger's CPU from the job being measured.
	j, err := s.waitDone(ctx, id)
	if err != nil {
		return 0, 0, 0, err
	}
	return time.Since(begin), j.Count, peak(), nil
}

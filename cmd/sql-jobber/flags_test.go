package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

func TestVersionNeedsNoConfig(t *testing.T) {
	var out bytes.Buffer
	err := Run(context.Background(), []string{"--version", "--config", "/does/not/exist"}, &out, &out)
	if err != nil || !strings.HasPrefix(out.String(), "sql-jobber ") {
		t.Fatalf("--version: %v, %q", err, out.String())
	}
}

func TestHelpListsTheFlags(t *testing.T) {
	var out bytes.Buffer
	err := Run(context.Background(), []string{"--help"}, &out, &out)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err, &out) != 0 {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range []string{"-config", "-sql-directory", "-server", "-queue", "-worker-concurrency", "-worker-name", "-worker-only", "-version"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
}

func TestBadFlagsAndMissingConfigFailWithExitCode1(t *testing.T) {
	for _, args := range [][]string{
		{"--worker-concurrency", "0"},
		{"--no-such-flag"},
		{"extra"},
		{"--config", "/does/not/exist.toml"},
	} {
		var out bytes.Buffer
		err := Run(context.Background(), args, &out, &out)
		if err == nil || exitCode(err, &out) != 1 {
			t.Errorf("%v: err %v", args, err)
		}
	}
}

func TestWorkerOnlyRunsJobsWithoutHTTP(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	env := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres))
	// One node at a time (two in one process race inside protoactor):
	// the API node works another queue, so the job waits for the worker.
	api := env.start("--queue", "api-only")
	api.post("entries_of", `{"job_id": "w1", "args": ["U1"]}`)
	api.stop()

	worker, err := env.tryStart("--worker-only")
	if err != nil {
		t.Fatal(err)
	}
	if worker.app.addr != "" || len(worker.app.servers) != 0 {
		t.Fatalf("a --worker-only node serves HTTP on %q", worker.app.addr)
	}
	var state, node string
	testwait.For(t, 30*time.Second, "the worker to run the job", func() (bool, string) {
		err := dbs.res.Postgres().QueryRow(context.Background(), "SELECT state, node FROM sqljobber_jobs WHERE job_id = 'w1'").Scan(&state, &node)
		if err != nil {
			return false, err.Error()
		}
		return state == "SUCCESS", fmt.Sprintf("job w1 is %s on %q", state, node)
	})
	if !strings.Contains(node, "WorkerOnly") {
		t.Fatalf("job ran on %q", node)
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	env := newEnv(t, dbs.toml, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--config", env.config, "--sql-directory", env.dir + "/sql", "--server", addr}, &out, testLog{t})
	}()
	// The API listens early and serves once the node has started.
	testwait.For(t, 30*time.Second, "the server to serve", func() (bool, string) {
		res, err := nethttp.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, fmt.Sprintf("GET /healthz answers %d", res.StatusCode)
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if !strings.Contains(out.String(), "listening on http://"+addr) {
		t.Fatalf("stdout: %q", out.String())
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// teeLog sends a server's log lines to the test's log and keeps them.
type teeLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *teeLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *teeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestNothingWaitsSilently: a task whose queue no member of the cluster
// works is named at start-up, says workers 0 in GET /tasks, a job for it is
// accepted saying workers 0 (a worker may join), /metrics says so, and the
// start-up "Try:" line picks a task whose queue this node works.
func TestNothingWaitsSilently(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	e := newEnv(t, dbs.toml, map[string]string{"tasks.sql": `-- name: nowhere
-- queue: q1
SELECT 1 AS one;

-- name: here
SELECT 1 AS one;
`})
	o, err := parseFlags([]string{"--config", e.config, "--sql-directory", e.dir + "/sql", "--server", "127.0.0.1:0", "--worker-name", t.Name()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.pollInterval = 100 * time.Millisecond
	o.tuneGossip = clustertest.FastGossip
	var stdout bytes.Buffer
	logs := &teeLog{t: t}
	a, err := start(context.Background(), o, &stdout, logs)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, app: a, base: "http://" + a.addr}
	t.Cleanup(s.stop)

	if got := logs.String(); !strings.Contains(got, "no member of the cluster works the queue of a task: its jobs wait until a node started with --queue q1 joins") ||
		!strings.Contains(got, "task=nowhere") || strings.Contains(got, "task=here") {
		t.Errorf("start-up log:\n%s", got)
	}
	if got := stdout.String(); !strings.Contains(got, "/tasks/here/jobs") {
		t.Errorf("the welcome does not try the task whose queue the node works:\n%s", got)
	}

	r := s.do("GET", "/tasks", "")
	var tasks []struct {
		Name    string `json:"name"`
		Workers *int   `json:"workers"`
	}
	if err := json.Unmarshal(r.Data, &tasks); err != nil || len(tasks) != 2 {
		t.Fatalf("GET /tasks: %s (%v)", r.Data, err)
	}
	for _, task := range tasks {
		want := map[string]int{"nowhere": 0, "here": 1}[task.Name]
		if task.Workers == nil || *task.Workers != want {
			t.Errorf("task %s: workers %v, want %d", task.Name, task.Workers, want)
		}
	}

	for _, c := range []struct {
		task, body string
		workers    int
	}{
		{"nowhere", `{"job_id": "waits"}`, 0},
		{"here", `{"job_id": "elsewhere", "queue": "nobody"}`, 0},
		{"here", `{"job_id": "runs"}`, 1},
	} {
		r := s.do("POST", "/tasks/"+c.task+"/jobs", c.body)
		var receipt struct {
			Workers *int `json:"workers"`
		}
		if err := json.Unmarshal(r.Data, &receipt); r.code != 200 || err != nil || receipt.Workers == nil || *receipt.Workers != c.workers {
			t.Errorf("POST %s %s: %d %s, want workers %d", c.task, c.body, r.code, r.Data, c.workers)
		}
	}
	s.waitState("runs", "SUCCESS")
	if j, _ := s.job("waits"); j.State != "PENDING" {
		t.Errorf("a job of a queue nobody works is %s", j.State)
	}

	workers := map[string]float64{}
	if f := scrape(t, s.base)["sqljobber_queue_workers"]; f != nil {
		for _, m := range f.GetMetric() {
			workers[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if w, ok := workers["q1"]; !ok || w != 0 || workers["default"] != 1 {
		t.Errorf("sqljobber_queue_workers: %v, want q1 0 and default 1", workers)
	}
}

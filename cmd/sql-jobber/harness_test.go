package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// testEnv is a configuration directory (config.toml and sql/) for servers
// started by a test.
type testEnv struct {
	t      *testing.T
	dir    string
	config string
}

// newEnv writes config and the task files to a temporary directory.
func newEnv(t *testing.T, config string, sqlFiles map[string]string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sql"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range sqlFiles {
		if err := os.WriteFile(filepath.Join(dir, "sql", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &testEnv{t: t, dir: dir, config: filepath.Join(dir, "config.toml")}
}

// testServer is a sql-jobber node started in this process.
type testServer struct {
	t    *testing.T
	app  *app
	base string
	once sync.Once
	// token is the secret its requests send, if any (see as).
	token string
}

// as is s with its requests sent with the token of secret.
func (s *testServer) as(secret string) *testServer {
	return &testServer{t: s.t, app: s.app, base: s.base, token: secret}
}

// start starts a node on the environment with extra flags; it stops at the
// end of the test unless stopped before.
func (e *testEnv) start(flags ...string) *testServer {
	e.t.Helper()
	s, err := e.tryStart(flags...)
	if err != nil {
		e.t.Fatalf("start server: %v", err)
	}
	return s
}

func (e *testEnv) tryStart(flags ...string) (*testServer, error) {
	args := append([]string{"--config", e.config, "--sql-directory", filepath.Join(e.dir, "sql"),
		"--server", "127.0.0.1:0", "--worker-name", e.t.Name()}, flags...)
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		return nil, err
	}
	o.pollInterval = 100 * time.Millisecond
	o.tuneGossip = clustertest.FastGossip
	a, err := start(context.Background(), o, io.Discard, testLog{e.t})
	if err != nil {
		return nil, err
	}
	s := &testServer{t: e.t, app: a, base: "http://" + a.addr}
	e.t.Cleanup(s.stop)
	return s, nil
}

func (s *testServer) stop() {
	s.once.Do(func() {
		if err := s.app.stop(); err != nil {
			s.t.Errorf("stop server: %v", err)
		}
	})
}

// testLog sends a server's log lines to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// response is a decoded API envelope.
type response struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	code    int
	header  nethttp.Header
}

func (s *testServer) do(method, path, body string) response {
	s.t.Helper()
	req, err := nethttp.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		s.t.Fatalf("%s %s: status %d, body is not the JSON envelope: %q", method, path, res.StatusCode, b)
	}
	r.code, r.header = res.StatusCode, res.Header
	if r.Status == "error" && string(r.Data) != "null" {
		s.t.Errorf("%s %s: error envelope with data %s", method, path, r.Data)
	}
	return r
}

// jobStatus is GET /jobs/{id}'s data.
type jobStatus struct {
	JobID          string  `json:"job_id"`
	Task           string  `json:"task"`
	Queue          string  `json:"queue"`
	State          string  `json:"state"`
	Count          int64   `json:"count"`
	Error          string  `json:"error"`
	ResultsBackend string  `json:"results_backend"`
	ResultsTable   string  `json:"results_table"`
	Attempt        int     `json:"attempt"`
	CreatedAt      *string `json:"created_at"`
	StartedAt      *string `json:"started_at"`
	FinishedAt     *string `json:"finished_at"`
	ExpiresAt      *string `json:"expires_at"`
}

func (s *testServer) job(id string) (jobStatus, int) {
	s.t.Helper()
	r := s.do("GET", "/jobs/"+id, "")
	var j jobStatus
	if r.code == 200 {
		if err := json.Unmarshal(r.Data, &j); err != nil {
			s.t.Fatal(err)
		}
	}
	return j, r.code
}

// post submits a job and fails the test unless it is accepted.
func (s *testServer) post(task, body string) string {
	s.t.Helper()
	r := s.do("POST", "/tasks/"+task+"/jobs", body)
	if r.code != 200 {
		s.t.Fatalf("POST %s %s: %d %s", task, body, r.code, r.Message)
	}
	var rec struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(r.Data, &rec); err != nil {
		s.t.Fatal(err)
	}
	return rec.JobID
}

// waitState polls a job until it is in one of states, and returns it.
func (s *testServer) waitState(id string, states ...string) jobStatus {
	s.t.Helper()
	var j jobStatus
	testwait.For(s.t, 60*time.Second, fmt.Sprintf("job %s to be %s", id, strings.Join(states, " or ")), func() (bool, string) {
		var code int
		j, code = s.job(id)
		if code != 200 {
			return false, fmt.Sprintf("GET /jobs/%s answers %d", id, code)
		}
		return slices.Contains(states, j.State), fmt.Sprintf("it is %s (attempt %d, error %q)", j.State, j.Attempt, j.Error)
	})
	return j
}

// waitSessions waits until want of the test's queries that contain like
// run on db's server (see sessions).
func waitSessions(t *testing.T, within time.Duration, what string, db *sqlexec.DB, like string, want int64) {
	t.Helper()
	testwait.For(t, within, what, func() (bool, string) {
		n := sessions(t, db, like)
		return n == want, fmt.Sprintf("%d of the test's queries with %q run at the database, want %d", n, like, want)
	})
}

// waitStarted waits until cond holds of the count, per node, of the jobs
// the ledger shows STARTED.
func waitStarted(t *testing.T, within time.Duration, what string, dbs *databases, cond func(perNode map[string]int) bool) {
	t.Helper()
	testwait.For(t, within, what, func() (bool, string) {
		n := nodesOf(t, dbs, "STARTED")
		return cond(n), fmt.Sprintf("jobs STARTED per node: %v", n)
	})
}

// databases for a test: a source and a results database of given dialects,
// and the TOML sections configuring them as db "src" and results "res".
type databases struct {
	src, res *sqlexec.DB
	toml     string
}

func newDatabases(t *testing.T, src, res sqlexec.Dialect) *databases {
	t.Helper()
	srcDSN, resDSN := sqlexectest.DSN(t, src), sqlexectest.DSN(t, res)
	open := func(d sqlexec.Dialect, dsn string) *sqlexec.DB {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sqlexec.Open(ctx, sqlexec.DBConfig{Name: string(d), Type: d, DSN: dsn, MaxActive: 4}, sqlexec.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	return &databases{
		src: open(src, srcDSN),
		res: open(res, resDSN),
		toml: fmt.Sprintf("[db.src]\ntype = %q\ndsn = %q\nmax_active = 4\n\n[results.res]\ntype = %q\ndsn = %q\nmax_active = 4\n",
			src, srcDSN, res, resDSN),
	}
}

// count returns SELECT COUNT(*) of a query on db.
func count(t *testing.T, db *sqlexec.DB, query string) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	var err error
	if p := db.Postgres(); p != nil {
		err = p.QueryRow(ctx, query).Scan(&n)
	} else {
		err = db.SQL().QueryRowContext(ctx, query).Scan(&n)
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// quoteTable quotes a table name for db's dialect.
func quoteTable(db *sqlexec.DB, name string) string {
	if db.Dialect == sqlexec.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// placeholder is the dialect's n-th positional parameter.
func placeholder(d sqlexec.Dialect, n int) string {
	if d == sqlexec.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// jsonBody marshals v for a request body.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// execStmt runs one statement on db.
func execStmt(t *testing.T, db *sqlexec.DB, stmt string) {
	t.Helper()
	ctx := context.Background()
	var err error
	if p := db.Postgres(); p != nil {
		_, err = p.Exec(ctx, stmt)
	} else {
		_, err = db.SQL().ExecContext(ctx, stmt)
	}
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/cluster"
	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/http/client"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// protoactor's gossiper starts a throttle goroutine per member
		// that nothing stops; one per node started, never more.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	)
}

const taskFile = `
-- name: entries_of
SELECT id, user_id, amount FROM entries WHERE user_id = ? ORDER BY id;

-- name: slow
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT COUNT(*) AS n FROM c;

-- name: typed
SELECT * FROM typed ORDER BY rowid;
`

// startServer starts a real sql-jobber node (an engine and its HTTP API)
// on SQLite databases in dir, whose source has an entries table of three
// rows, two of them USER1's, and a typed table of a row of values of every
// type and a row of NULLs. It is long as cmd's start is, step after step,
// written out so that it shows a user how to embed a node.
func startServer(dir string, auth *sjhttp.Auth) (base string, stop func(), err error) {
	ctx := context.Background()
	var closers []func()
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	src, err := sqlexec.Open(ctx, sqlexec.DBConfig{Name: "demo", Type: sqlexec.SQLite, DSN: filepath.Join(dir, "src.db")}, sqlexec.OpenOptions{})
	if err != nil {
		return "", nil, err
	}
	closers = append(closers, src.Close)
	for _, stmt := range []string{
		"CREATE TABLE entries (id INTEGER PRIMARY KEY, user_id TEXT, amount DECIMAL(12,2))",
		"INSERT INTO entries VALUES (1, 'USER1', '10.50'), (2, 'USER1', '20.25'), (3, 'USER2', '1.00')",
		"CREATE TABLE typed (i INTEGER, d DECIMAL_TEXT, f REAL, b BOOLEAN, day DATE, ts TIMESTAMP, tz TIMESTAMPTZ, j JSON, bin BLOB, t TEXT)",
		`INSERT INTO typed VALUES (-9223372036854775808, '-12.50', 0.1, 1, '2024-02-29', '2024-01-02 03:04:05.123456',
			'2024-01-02 03:04:05.5+00:00', '{"a": [1, 2.50]}', X'00ff', 'Grüße "x"'),
			(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	} {
		if _, err := src.SQL().ExecContext(ctx, stmt); err != nil {
			return "", nil, err
		}
	}
	res, err := resultsink.Open(ctx, resultsink.Config{DBConfig: sqlexec.DBConfig{Name: "res", Type: sqlexec.SQLite, DSN: filepath.Join(dir, "res.db")}})
	if err != nil {
		return "", nil, err
	}
	closers = append(closers, res.Close)
	tasks, _, err := sqlexec.ParseTasks("tasks.sql", []byte(taskFile))
	if err != nil {
		return "", nil, err
	}
	for _, t := range tasks {
		t.Queue = "default"
	}
	reg, err := sqlexec.NewRegistry(tasks, []*sqlexec.DB{src}, []string{"res"})
	if err != nil {
		return "", nil, err
	}
	if err := reg.Prepare(ctx); err != nil {
		return "", nil, err
	}
	jobs, err := ledger.New(res.DB(), res.Durable(), ledger.Config{})
	if err != nil {
		return "", nil, err
	}
	closers = append(closers, jobs.Close)
	if err := jobs.Migrate(ctx); err != nil {
		return "", nil, err
	}
	reader, err := resultsink.NewReader([]*resultsink.Backend{res}, resultsink.ReaderConfig{})
	if err != nil {
		return "", nil, err
	}
	eng, err := actors.NewEngine(jobs, reg, map[string]actors.Results{"res": res}, reader, actors.Config{
		NodeName: "client-test", Queues: map[string]int{"default": 2}, PollInterval: 50 * time.Millisecond,
		DefaultTTL: time.Hour,
	})
	if err != nil {
		return "", nil, err
	}
	node, err := cluster.NewNode(cluster.Config{Kinds: eng.Kinds()})
	if err != nil {
		return "", nil, err
	}
	closers = append(closers, node.Stop)
	if err := node.Start(ctx); err != nil {
		return "", nil, err
	}
	if err := eng.Start(ctx, node); err != nil {
		return "", nil, err
	}
	closers = append(closers, eng.Stop)
	ts := httptest.NewServer(sjhttp.NewServer(eng, sjhttp.Config{Auth: auth}).Handler())
	closers = append(closers, ts.Close)
	return ts.URL, stop, nil
}

// exampleServer starts a server for an Example, in a directory of its own.
func exampleServer() (string, func()) {
	dir, err := os.MkdirTemp("", "sqljobber-example")
	if err != nil {
		panic(err)
	}
	base, stop, err := startServer(dir, nil)
	if err != nil {
		panic(fmt.Sprintf("start example server: %v", err))
	}
	return base, func() {
		stop()
		os.RemoveAll(dir)
	}
}

// finishedJob runs a job of task for an Example and waits until it has
// finished.
func finishedJob(c *client.Client, id, task string, args ...any) {
	ctx := context.Background()
	if _, err := c.PostJob(ctx, task, client.JobRequest{JobID: id, Args: args}); err != nil {
		panic(err)
	}
	if _, err := c.WaitJob(ctx, id); err != nil {
		panic(err)
	}
}

func testServer(t *testing.T, tokens ...sjhttp.Token) string {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatal("start servers from top-level tests")
	}
	var auth *sjhttp.Auth
	if len(tokens) > 0 {
		var err error
		if auth, err = sjhttp.NewAuth(tokens, sjhttp.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	base, stop, err := startServer(t.TempDir(), auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return base
}

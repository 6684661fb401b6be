package compat_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/cluster"
	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// protoactor's gossiper leaves one throttle goroutine per node it
		// started running; nothing can stop it.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	)
}

// idleQueue is a queue the test node does not work: its jobs stay PENDING,
// so that the pending listing and cancellation can be seen without racing
// a run.
const idleQueue = "idle"

const tasks = `
-- name: entries_of
SELECT id, user_id, amount FROM entries WHERE user_id = ? ORDER BY id;
`

// node is a real sql-jobber node, engine and HTTP API, on SQLite files: the
// pieces the server's own start wires, taken one by one, since the tests
// here are the client's and must see the server as a dungbeetle user does.
type node struct {
	url     string
	closers []func()
}

func (n *node) stop() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
}

// startNode starts a node in dir whose source holds an entries table of
// three rows, two of them USER1's, and which works the queue "default"
// with two slots.
func startNode(dir string, auth *sjhttp.Auth) (_ *node, err error) {
	ctx := context.Background()
	n := &node{}
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	src, err := sqlexec.Open(ctx, sqlexec.DBConfig{Name: "src", Type: sqlexec.SQLite, DSN: filepath.Join(dir, "src.db")}, sqlexec.OpenOptions{})
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, src.Close)
	if _, err := src.SQL().ExecContext(ctx, `CREATE TABLE entries (id INTEGER PRIMARY KEY, user_id TEXT, amount DECIMAL(12,2));
		INSERT INTO entries VALUES (1, 'USER1', '10.50'), (2, 'USER1', '20.25'), (3, 'USER2', '1.00')`); err != nil {
		return nil, err
	}
	res, err := resultsink.Open(ctx, resultsink.Config{DBConfig: sqlexec.DBConfig{Name: "res", Type: sqlexec.SQLite, DSN: filepath.Join(dir, "res.db")}})
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, res.Close)
	parsed, _, err := sqlexec.ParseTasks("tasks.sql", []byte(tasks))
	if err != nil {
		return nil, err
	}
	for _, t := range parsed {
		t.Queue = "default"
	}
	reg, err := sqlexec.NewRegistry(parsed, []*sqlexec.DB{src}, []string{"res"})
	if err != nil {
		return nil, err
	}
	if err := reg.Prepare(ctx); err != nil {
		return nil, err
	}
	jobs, err := ledger.New(res.DB(), res.Durable(), ledger.Config{})
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, jobs.Close)
	if err := jobs.Migrate(ctx); err != nil {
		return nil, err
	}
	reader, err := resultsink.NewReader([]*resultsink.Backend{res}, resultsink.ReaderConfig{})
	if err != nil {
		return nil, err
	}
	eng, err := actors.NewEngine(jobs, reg, map[string]actors.Results{"res": res}, reader, actors.Config{
		NodeName: "compat-test", Queues: map[string]int{"default": 2}, PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	cn, err := cluster.NewNode(cluster.Config{Kinds: eng.Kinds()})
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, cn.Stop)
	if err := cn.Start(ctx); err != nil {
		return nil, err
	}
	if err := eng.Start(ctx, cn); err != nil {
		return nil, err
	}
	n.closers = append(n.closers, eng.Stop)
	ts := httptest.NewServer(sjhttp.NewServer(eng, sjhttp.Config{Auth: auth}).Handler())
	n.closers = append(n.closers, ts.Close)
	n.url = ts.URL
	return n, nil
}

// testNode starts a node for t and stops it when t ends; it answers with
// the node's URL.
func testNode(t *testing.T, tokens ...sjhttp.Token) string {
	t.Helper()
	var auth *sjhttp.Auth
	if len(tokens) > 0 {
		var err error
		if auth, err = sjhttp.NewAuth(tokens, sjhttp.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := startNode(t.TempDir(), auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	return n.url
}

// exampleNode starts a node for an Example, which has no testing.T, in a
// directory of its own; stop stops it and removes the directory.
func exampleNode() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "sqljobber-compat-example")
	if err != nil {
		panic(err)
	}
	n, err := startNode(dir, nil)
	if err != nil {
		os.RemoveAll(dir)
		panic(fmt.Sprintf("start example node: %v", err))
	}
	return n.url, func() {
		n.stop()
		os.RemoveAll(dir)
	}
}

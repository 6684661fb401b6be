package cluster

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// waitDeadline only bounds a failure: the machine may be busy with other
// tests.
const waitDeadline = 30 * time.Second

// waitFor waits (testwait.For) until cond holds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	testwait.For(tb, waitDeadline, what, func() (bool, string) { return cond(), "" })
}

// waitLogged waits until log has a line with every one of parts, and fails
// the test unless it has just one: a node refused by another may return
// from Start before the other has logged it.
func waitLogged(tb testing.TB, who string, log *logBuffer, parts ...string) {
	tb.Helper()
	waitFor(tb, who+" to log "+strings.Join(parts, " "), func() bool { return len(log.lines(parts...)) > 0 })
	if got := log.lines(parts...); len(got) != 1 {
		tb.Errorf("%s logged %q, want one line", who, got)
	}
}

// member is a node of a test cluster, and its log (INFO and up).
type member struct {
	*Node
	log *logBuffer
}

// joinNode starts a node named name hosting "where" grains, that joins the
// members at join (none: it starts a cluster), with the settings adjust
// makes. It returns Start's error; the node is stopped at the test's end.
func joinNode(tb testing.TB, name string, join []string, adjust func(*Config)) (member, error) {
	tb.Helper()
	log := &logBuffer{}
	cfg := Config{
		Logger:     slog.New(slog.NewTextHandler(log, nil)),
		Kinds:      []*cluster.Kind{cluster.NewKind("where", actor.PropsFromProducer(func() actor.Actor { return where{} }))},
		Membership: &MembershipConfig{Bind: "127.0.0.1:0", Join: join, RemovalGrace: 500 * time.Millisecond, Tune: clustertest.FastGossip},
		Info:       NodeInfo{Name: name},
	}
	if adjust != nil {
		adjust(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.Stop)
	return member{Node: n, log: log}, n.Start(context.Background())
}

// mustJoin is joinNode for a node that must start.
func mustJoin(tb testing.TB, name string, join []string, adjust func(*Config)) member {
	tb.Helper()
	m, err := joinNode(tb, name, join, adjust)
	if err != nil {
		tb.Fatalf("node %s: %v", name, err)
	}
	return m
}

// sees says whether n sees exactly the members named, all alive.
func sees(n *Node, names ...string) bool {
	ms := n.Members()
	if len(ms) != len(names) {
		return false
	}
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
	}
	for _, m := range ms {
		if !want[m.Name] || m.State != sqljobber.MemberAlive {
			return false
		}
	}
	return true
}

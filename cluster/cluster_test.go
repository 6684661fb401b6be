package cluster

// Tests and benchmarks with several nodes in one process (TestCluster*,
// Benchmark*): protoactor-go races inside itself then, so the Makefile runs
// them without -race.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// where is a grain that answers with the address of the node it lives on.
type where struct{}

func (where) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
		ctx.Respond(wrapperspb.String(ctx.ActorSystem().Address()))
	}
}

// startMembers starts n nodes that form one cluster, and waits until each
// sees all of them; it returns the nodes and how long the first node took
// to see the last one, from the moment that one started.
func startMembers(tb testing.TB, n int) ([]*Node, time.Duration) {
	tb.Helper()
	nodes, took, _ := startLoggedMembers(tb, n)
	return nodes, took
}

// startLoggedMembers is startMembers, and returns each node's log (INFO
// and up) as well.
func startLoggedMembers(tb testing.TB, n int) ([]*Node, time.Duration, []*logBuffer) {
	tb.Helper()
	return startCluster(tb, n, 500*time.Millisecond)
}

// startCluster is startLoggedMembers with a removal grace of its own.
func startCluster(tb testing.TB, n int, grace time.Duration) ([]*Node, time.Duration, []*logBuffer) {
	tb.Helper()
	var logs []*logBuffer
	var nodes []*Node
	var join []string
	type convergence struct {
		took time.Duration
		err  error
	}
	var seen chan convergence
	for i := range n {
		if i == n-1 && i > 0 {
			// Watch the first node's view while the last one starts
			// (protoactor's start then sleeps a second); the time is
			// exact to within the poll's pause.
			seen = make(chan convergence, 1)
			first, begin := nodes[0], time.Now()
			go func() {
				err := testwait.Until(20*time.Second, "the first node to see the last one", func() (bool, string) {
					got := len(first.Members())
					return got == n, fmt.Sprintf("it sees %d members, want %d", got, n)
				})
				seen <- convergence{time.Since(begin), err}
			}()
		}
		logs = append(logs, &logBuffer{})
		node, err := NewNode(Config{
			Logger:     slog.New(slog.NewTextHandler(logs[i], nil)),
			Kinds:      []*cluster.Kind{cluster.NewKind("where", actor.PropsFromProducer(func() actor.Actor { return where{} }))},
			Membership: &MembershipConfig{Bind: "127.0.0.1:0", Join: join, RemovalGrace: grace, Tune: clustertest.FastGossip},
			Info:       NodeInfo{Name: fmt.Sprintf("n%d", i)},
		})
		if err != nil {
			tb.Fatal(err)
		}
		if err := node.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(node.Stop)
		if i == 0 {
			join = []string{node.GossipAddress()}
		}
		nodes = append(nodes, node)
	}
	testwait.For(tb, 20*time.Second, fmt.Sprintf("every node to see %d members", n), func() (bool, string) {
		return membersSeen(nodes, n)
	})
	var took time.Duration
	if seen != nil {
		c := <-seen
		if c.err != nil {
			tb.Fatal(c.err)
		}
		took = c.took
	}
	return nodes, took, logs
}

// membersSeen reports whether each node sees want members, and how many
// each sees.
func membersSeen(nodes []*Node, want int) (bool, string) {
	ok := true
	var seen []string
	for i, node := range nodes {
		got := len(node.Members())
		ok = ok && got == want
		seen = append(seen, fmt.Sprintf("node %d sees %d", i, got))
	}
	return ok, strings.Join(seen, ", ")
}

// TestClusterOneGrainPerIdentity: whichever node asks, an identity's grain
// lives on one node.
func TestClusterOneGrainPerIdentity(t *testing.T) {
	nodes, took := startMembers(t, 3)
	t.Logf("join convergence: the first node sees the third %v after it starts", took.Round(time.Millisecond))
	ctx := context.Background()
	homes := map[string]int{}
	for i := range 60 {
		id := fmt.Sprintf("id%d", i)
		var home string
		for _, n := range nodes {
			res, err := n.Request(ctx, "where", id, wrapperspb.String("?"))
			if err != nil {
				t.Fatal(err)
			}
			got := res.(*wrapperspb.StringValue).Value
			if home != "" && got != home {
				t.Fatalf("identity %s lives on %s and on %s", id, home, got)
			}
			home = got
		}
		homes[home]++
	}
	if len(homes) != 3 {
		t.Fatalf("60 identities live on %d nodes: %v", len(homes), homes)
	}
	total := 0
	for _, n := range nodes {
		total += n.ActiveGrains()
	}
	if total != 60 {
		t.Fatalf("%d grains in the cluster, want 60", total)
	}
	members := nodes[1].Members()
	if len(members) != 3 || !members[0].Self || members[0].Name != "n1" {
		t.Fatalf("members from n1: %+v", members)
	}
}

// TestClusterLeaveAndRemoval: a node that leaves is dropped at once, and
// its identities move to the others.
func TestClusterLeaveAndRemoval(t *testing.T) {
	nodes, _, logs := startLoggedMembers(t, 3)
	begin := time.Now()
	nodes[2].Stop()
	testwait.For(t, 10*time.Second, "the others to drop the node that left", func() (bool, string) {
		return membersSeen(nodes[:2], 2)
	})
	t.Logf("graceful leave: dropped by the others within %v", time.Since(begin).Round(time.Millisecond))
	// The log says it once, in plain words: protoactor's errors about
	// the streams of a member that left are not an operator's concern.
	for i, log := range logs {
		if i < 2 {
			if got := log.lines(`msg="cluster member left" member=n2`); len(got) != 1 {
				t.Errorf("n%d logged %q about n2 leaving, want one line", i, got)
			}
		}
		if got := log.lines("component=protoactor"); len(got) != 0 {
			t.Errorf("n%d logged protoactor's %q", i, got)
		}
	}
	ctx := context.Background()
	for i := range 30 {
		res, err := nodes[0].Request(ctx, "where", fmt.Sprintf("id%d", i), wrapperspb.String("?"))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.(*wrapperspb.StringValue).Value; got == nodes[2].Address() {
			t.Fatalf("identity still routed to the node that left")
		}
	}
}

// BenchmarkGrainRequest measures one request and reply through the grain
// path (identity lookup, activation when needed, the message), to a grain
// on the same node and to one on another node.
func BenchmarkGrainRequest(b *testing.B) {
	nodes, _ := startMembers(b, 2)
	ctx := context.Background()
	// Identities owned by each node.
	owned := map[string][]string{}
	for i := 0; len(owned[nodes[0].Address()]) < 64 || len(owned[nodes[1].Address()]) < 64; i++ {
		id := fmt.Sprintf("b%d", i)
		res, err := nodes[0].Request(ctx, "where", id, wrapperspb.String("?"))
		if err != nil {
			b.Fatal(err)
		}
		home := res.(*wrapperspb.StringValue).Value
		owned[home] = append(owned[home], id)
	}
	for _, bc := range []struct {
		name string
		ids  []string
	}{
		{"local", owned[nodes[0].Address()]},
		{"remote", owned[nodes[1].Address()]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			msg := wrapperspb.String("?")
			for i := 0; b.Loop(); i++ {
				if _, err := nodes[0].Request(ctx, "where", bc.ids[i%len(bc.ids)], msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestClusterSuspectedMemberThatAnswersAgainStays: memberlist declares a
// member dead and then alive again (a busy node refuting its suspicion)
// within the removal grace. The member never leaves protoactor's topology,
// so protoactor never bars it; meanwhile it owns nothing, so requests for
// its identities do not wait out the grace, and they come back to it when
// it answers again. One that does not answer again is removed after the
// grace.
func TestClusterSuspectedMemberThatAnswersAgainStays(t *testing.T) {
	// The checks made during the grace (a few looks and 30 requests) must
	// end within it, on a busy machine too.
	const grace = 3 * time.Second
	nodes, _, _ := startCluster(t, 3, grace)
	observers, victim := nodes[:2], nodes[2]
	var node *memberlist.Node
	for _, m := range observers[0].gossip.ml.Members() {
		if m.Name == victim.gossip.ml.LocalNode().Name {
			node = m
		}
	}
	if node == nil {
		t.Fatal("the observer does not know the victim")
	}
	// Both observers hear it, as memberlist's gossip would tell them.
	notify := func(event func(*gossipEvents, *memberlist.Node)) {
		for _, o := range observers {
			event((*gossipEvents)(o.gossip), node)
		}
	}
	stateOfVictim := func() string {
		for _, m := range observers[0].Members() {
			if m.Address == victim.Address() {
				return string(m.State)
			}
		}
		return "removed"
	}
	ctx := context.Background()
	victims := func() int {
		n := 0
		for i := range 30 {
			res, err := observers[0].Request(ctx, "where", fmt.Sprintf("s%d", i), wrapperspb.String("?"))
			if err != nil {
				t.Fatal(err)
			}
			if res.(*wrapperspb.StringValue).Value == victim.Address() {
				n++
			}
		}
		return n
	}
	before := victims()
	if before == 0 {
		t.Fatal("no identity lives on the victim")
	}

	notify((*gossipEvents).NotifyLeave)
	if s := stateOfVictim(); s != "suspect" {
		t.Fatalf("a member that stopped answering is %s, want suspect during the grace", s)
	}
	if n := victims(); n != 0 {
		t.Fatalf("during the grace %d identities live on the suspect, want none", n)
	}
	notify((*gossipEvents).NotifyJoin)
	if s := stateOfVictim(); s != "alive" {
		t.Fatalf("a refuted suspect is %s, want alive", s)
	}
	if n := victims(); n != before {
		t.Fatalf("%d identities live on the refuted suspect, %d before it was suspected", n, before)
	}
	observers[0].gossip.mu.Lock()
	pending := len(observers[0].gossip.suspects)
	observers[0].gossip.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d removals still pending after the refutation", pending)
	}

	// Not refuted: removed once the grace is over.
	notify((*gossipEvents).NotifyLeave)
	testwait.For(t, grace+20*time.Second, "the removal of a member that never answered again", func() (bool, string) {
		s := stateOfVictim()
		return s == "removed", "the member is " + s
	})
}

// silence stops n's gossip without a leave: the others learn of it only by
// its silence.
func silence(t *testing.T, n *Node) {
	t.Helper()
	p := n.gossip
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	close(p.done)
	if err := p.ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	p.wg.Wait()
}

// crash stops n as a killed process would: it does not leave, and the
// others learn of it only by its silence.
func crash(t *testing.T, n *Node) {
	t.Helper()
	silence(t, n)
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.lookup.Shutdown()
	n.cluster.Shutdown(false)
}

// TestClusterRestartAtItsAddressReplacesTheDeadRun: a node killed and
// started again at its address (as a supervisor restarts it) replaces its
// dead run at once, without the removal grace: requests for its identities
// do not wait for memberlist to find the dead run dead.
func TestClusterRestartAtItsAddressReplacesTheDeadRun(t *testing.T) {
	// A grace longer than the test: only the restart can remove the
	// dead run in time.
	nodes, _, logs := startCluster(t, 3, time.Hour)
	observer, victim := nodes[0], nodes[2]
	host, port, err := splitHostPort(victim.Address())
	if err != nil {
		t.Fatal(err)
	}
	deadID := victim.ID()
	crash(t, victim)

	again, err := NewNode(Config{
		Host:       host,
		Port:       port,
		Kinds:      []*cluster.Kind{cluster.NewKind("where", actor.PropsFromProducer(func() actor.Actor { return where{} }))},
		Membership: &MembershipConfig{Bind: "127.0.0.1:0", Join: []string{observer.GossipAddress()}, RemovalGrace: time.Hour, Tune: clustertest.FastGossip},
		Info:       NodeInfo{Name: "n2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Stop)

	seen := func(id string) bool {
		for _, m := range observer.Members() {
			if m.ID == id {
				return true
			}
		}
		return false
	}
	testwait.For(t, 20*time.Second, "the observer to see the restarted node", func() (bool, string) {
		return seen(again.ID()), fmt.Sprintf("members %+v", observer.Members())
	})
	if seen(deadID) {
		t.Fatalf("the observer sees the dead run beside its restart: %+v", observer.Members())
	}
	if got := logs[0].lines(`msg="cluster member removed: it runs again at its address" member=n2`); len(got) != 1 {
		t.Errorf("the observer logged %q about the dead run, want one line", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 30 {
		if _, err := observer.Request(ctx, "where", fmt.Sprintf("r%d", i), wrapperspb.String("?")); err != nil {
			t.Fatalf("identity r%d after the restart: %v", i, err)
		}
	}
}

// TestClusterJoinMovesIdentitiesAwayFromActiveGrains: identities whose
// grains are active on their owner move to a member that joins and now
// owns them: every member, the old owner too, sends their requests to the
// new owner and none to the grain the old owner had active.
func TestClusterJoinMovesIdentitiesAwayFromActiveGrains(t *testing.T) {
	nodes, _ := startMembers(t, 2)
	ctx := context.Background()
	home := func(n *Node, id string) string {
		t.Helper()
		res, err := n.Request(ctx, "where", id, wrapperspb.String("?"))
		if err != nil {
			t.Fatal(err)
		}
		return res.(*wrapperspb.StringValue).Value
	}
	before := map[string]string{}
	for i := range 60 {
		id := fmt.Sprintf("id%d", i)
		before[id] = home(nodes[0], id)
		if got := home(nodes[1], id); got != before[id] {
			t.Fatalf("identity %s lives on %s and on %s", id, before[id], got)
		}
	}
	joined, err := NewNode(Config{
		Kinds:      []*cluster.Kind{cluster.NewKind("where", actor.PropsFromProducer(func() actor.Actor { return where{} }))},
		Membership: &MembershipConfig{Bind: "127.0.0.1:0", Join: []string{nodes[0].GossipAddress()}, RemovalGrace: 500 * time.Millisecond, Tune: clustertest.FastGossip},
		Info:       NodeInfo{Name: "n2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := joined.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(joined.Stop)
	all := append(nodes, joined)
	testwait.For(t, 20*time.Second, "every node to see 3 members", func() (bool, string) {
		return membersSeen(all, 3)
	})
	// And to place grains by the same 3: the views of the identity
	// lookups follow protoactor's topology, which follows the membership.
	testwait.For(t, 20*time.Second, "every node to place grains among 3 members", func() (bool, string) {
		var sizes []int
		for _, n := range all {
			sizes = append(sizes, len(n.lookup.view.Load().members))
		}
		return !slices.ContainsFunc(sizes, func(n int) bool { return n != 3 }), fmt.Sprintf("their views hold %v members", sizes)
	})
	moved := 0
	for i := range 60 {
		id := fmt.Sprintf("id%d", i)
		want := home(joined, id)
		for _, n := range nodes {
			if got := home(n, id); got != want {
				t.Fatalf("identity %s: %s sends it to %s, the new member to %s (it lived on %s)", id, n.Address(), got, want, before[id])
			}
		}
		if want == joined.Address() {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no identity moved to the member that joined: nothing was tested")
	}
	t.Logf("%d of 60 identities moved to the member that joined", moved)
}

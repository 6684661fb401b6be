package cluster

// Tests of members that go, and of draining, with several nodes in one
// process: see cluster_test.go's header.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/types/known/wrapperspb"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// downs records the members a node was told are down.
type downs struct {
	mu   sync.Mutex
	seen []sqljobber.Member
}

func (d *downs) add(m sqljobber.Member) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = append(d.seen, m)
}

// of returns the reports about the member of that ID.
func (d *downs) of(id string) []sqljobber.Member {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []sqljobber.Member
	for _, m := range d.seen {
		if m.ID == id {
			out = append(out, m)
		}
	}
	return out
}

// startWatched starts a cluster of the nodes named, each telling its downs
// what it finds down, with the settings adjust makes.
func startWatched(t *testing.T, adjust func(*Config), names ...string) ([]member, []*downs) {
	t.Helper()
	var nodes []member
	var ds []*downs
	for i, name := range names {
		d := &downs{}
		var join []string
		if i > 0 {
			join = []string{nodes[0].GossipAddress()}
		}
		nodes = append(nodes, mustJoin(t, name, join, func(c *Config) {
			c.MemberDown = d.add
			if adjust != nil {
				adjust(c)
			}
		}))
		ds = append(ds, d)
	}
	waitFor(t, "every member to see every other", func() bool {
		for _, n := range nodes {
			if !sees(n.Node, names...) {
				return false
			}
		}
		return true
	})
	return nodes, ds
}

// TestClusterMemberDownOnCrashAndLeave: the survivors of a crashed member,
// and the members a member leaves, are told once that it is down.
func TestClusterMemberDownOnCrashAndLeave(t *testing.T) {
	nodes, ds := startWatched(t, nil, "d0", "d1", "d2", "d3")
	victim := nodes[3]
	begin := time.Now()
	crash(t, victim.Node)
	for i := range 3 {
		waitFor(t, fmt.Sprintf("d%d to be told the crashed member is down", i), func() bool { return len(ds[i].of(victim.ID())) > 0 })
	}
	t.Logf("crash: the survivors told within %v", time.Since(begin).Round(time.Millisecond))

	leaver := nodes[2]
	leaver.Stop()
	for i := range 2 {
		waitFor(t, fmt.Sprintf("d%d to be told the member that left is down", i), func() bool { return len(ds[i].of(leaver.ID())) > 0 })
		if got := ds[i].of(leaver.ID()); got[0].Name != "d2" || got[0].State != sqljobber.MemberLeaving {
			t.Errorf("d%d was told %+v of the member that left", i, got)
		}
	}
	// Once each: the dead member's removal after its grace, and the
	// topology changes since, tell nothing more.
	waitFor(t, "the crashed member to be removed", func() bool { return sees(nodes[0].Node, "d0", "d1") })
	for i := range 2 {
		if got := ds[i].of(victim.ID()); len(got) != 1 || got[0].Name != "d3" {
			t.Errorf("d%d was told %+v of the crashed member, want it once", i, got)
		}
		if got := ds[i].of(leaver.ID()); len(got) != 1 {
			t.Errorf("d%d was told %+v of the member that left, want it once", i, got)
		}
	}
}

// TestClusterMemberDownWhenMemberlistFindsItDead: a member whose gossip
// stopped, though its actor port is open, is reported down as soon as
// memberlist finds it dead, not after the removal grace (here an hour).
func TestClusterMemberDownWhenMemberlistFindsItDead(t *testing.T) {
	nodes, ds := startWatched(t, func(c *Config) { c.Membership.RemovalGrace = time.Hour }, "e0", "e1", "e2")
	victim := nodes[2]
	silence(t, victim.Node)
	for i := range 2 {
		waitFor(t, fmt.Sprintf("e%d to be told the silent member is down", i), func() bool { return len(ds[i].of(victim.ID())) > 0 })
		if got := ds[i].of(victim.ID()); got[0].Name != "e2" || got[0].State != sqljobber.MemberSuspect {
			t.Errorf("e%d was told %+v", i, got)
		}
		if len(nodes[i].Members()) != 3 {
			t.Errorf("e%d dropped the silent member within its grace: %+v", i, nodes[i].Members())
		}
	}
}

// TestClusterMemberDownWhenItsActorPortRefuses: when a member's process is
// gone, its actor port refuses connections at once, while memberlist (here
// probing once a minute) would take long to find it dead: the survivors are
// told it is down, show it as suspect, and its identities answer elsewhere.
func TestClusterMemberDownWhenItsActorPortRefuses(t *testing.T) {
	nodes, ds := startWatched(t, func(c *Config) {
		c.Membership.Tune = func(mc *memberlist.Config) { clustertest.FastGossip(mc); mc.ProbeInterval = time.Minute }
	}, "f0", "f1", "f2")
	victim := nodes[2]
	ctx := context.Background()
	// Connections to every member, and identities on the victim.
	onVictim := map[string]bool{}
	for i := range 30 {
		id := fmt.Sprintf("f%d", i)
		for _, n := range nodes[:2] {
			res, err := n.Request(ctx, "where", id, wrapperspb.String("?"))
			if err != nil {
				t.Fatal(err)
			}
			if res.(*wrapperspb.StringValue).Value == victim.Address() {
				onVictim[id] = true
			}
		}
	}
	if len(onVictim) == 0 {
		t.Fatal("no identity lives on the victim")
	}
	begin := time.Now()
	crash(t, victim.Node)
	for i := range 2 {
		waitFor(t, fmt.Sprintf("f%d to be told the crashed member is down", i), func() bool { return len(ds[i].of(victim.ID())) > 0 })
	}
	t.Logf("crash: the survivors told within %v", time.Since(begin).Round(time.Millisecond))
	for i, n := range nodes[:2] {
		var state sqljobber.MemberState
		for _, m := range n.Members() {
			if m.ID == victim.ID() {
				state = m.State
			}
		}
		if state != sqljobber.MemberSuspect {
			t.Errorf("f%d sees the crashed member as %q, want suspect while memberlist has not found it dead", i, state)
		}
		if got := n.log.lines("level=WARN", `msg="cluster member is gone: its actor port refuses connections"`, "member=f2"); len(got) != 1 {
			t.Errorf("f%d logged %q", i, got)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, waitDeadline)
	defer cancel()
	for id := range onVictim {
		res, err := nodes[0].Request(rctx, "where", id, wrapperspb.String("?"))
		if err != nil {
			t.Fatalf("identity %s of the crashed member: %v", id, err)
		}
		if res.(*wrapperspb.StringValue).Value == victim.Address() {
			t.Fatalf("identity %s still routed to the crashed member", id)
		}
	}
}

// TestClusterDraining: a draining member shows as leaving everywhere, and
// keeps its grains until it leaves.
func TestClusterDraining(t *testing.T) {
	nodes, _ := startWatched(t, nil, "g0", "g1", "g2")
	drainer := nodes[2]
	ctx := context.Background()
	homes := func() map[string]string {
		out := map[string]string{}
		for i := range 30 {
			id := fmt.Sprintf("g%d", i)
			res, err := nodes[0].Request(ctx, "where", id, wrapperspb.String("?"))
			if err != nil {
				t.Fatal(err)
			}
			out[id] = res.(*wrapperspb.StringValue).Value
		}
		return out
	}
	before := homes()
	drainer.SetDraining()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("g%d to see g2 leaving", i), func() bool {
			for _, m := range n.Members() {
				if m.Name == "g2" {
					return m.State == sqljobber.MemberLeaving
				}
			}
			return false
		})
	}
	if s := drainer.Members()[0]; !s.Self || s.State != sqljobber.MemberLeaving {
		t.Errorf("the draining member sees itself as %+v", s)
	}
	after := homes()
	for id, home := range before {
		if after[id] != home {
			t.Errorf("identity %s moved from %s to %s as a member drained", id, home, after[id])
		}
	}
	drainer.Stop()
	waitFor(t, "g2 to leave", func() bool { return sees(nodes[0].Node, "g0", "g1") })
	for id, home := range homes() {
		if home == drainer.Address() {
			t.Fatalf("identity %s still on the member that left", id)
		}
	}
}

// ghostDelegate is the memberlist delegate of a member that gossips but whose
// actor port refuses connections: a process killed right after it joined,
// before the others dialled it, as its gossip is still being answered.
type ghostDelegate struct{ meta []byte }

func (g ghostDelegate) NodeMeta(int) []byte                  { return g.meta }
func (ghostDelegate) NotifyMsg([]byte)                       {}
func (ghostDelegate) GetBroadcasts(int, int) [][]byte        { return nil }
func (ghostDelegate) LocalState(bool) []byte                 { return nil }
func (ghostDelegate) MergeRemoteState(buf []byte, join bool) {}

// TestClusterMemberDownWhenItsFirstDialIsRefused: a member whose actor port
// refuses the first connection the others open to it is reported down as
// soon as they find the port refusing, not when protoactor gives up dialling
// it (five tries, two seconds apart), whatever the nodes log (k1 logs
// nothing at all).
func TestClusterMemberDownWhenItsFirstDialIsRefused(t *testing.T) {
	nodes, ds := startWatched(t, func(c *Config) {
		if c.Info.Name == "k1" {
			c.Logger = slog.New(slog.DiscardHandler)
		}
	}, "k0", "k1")
	self := nodes[0].gossip
	self.mu.Lock()
	ghost := self.self
	self.mu.Unlock()
	ghost.Name, ghost.ID, ghost.Port, ghost.Started = "k2", "k2-ghost", freePort(t), time.Now().UnixNano()
	b, err := json.Marshal(ghost)
	if err != nil {
		t.Fatal(err)
	}
	conf := memberlist.DefaultLocalConfig()
	clustertest.FastGossip(conf)
	conf.Name, conf.BindAddr, conf.BindPort = ghost.ID, "127.0.0.1", 0
	conf.Delegate = ghostDelegate{meta: b}
	conf.LogOutput = io.Discard
	ml, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	begin := time.Now()
	if _, err := ml.Join([]string{nodes[0].GossipAddress()}); err != nil {
		t.Fatal(err)
	}
	// protoactor reports a connection it could not open after its last
	// try, ten seconds on: the report must come from the refused dial.
	for i := range nodes {
		testwait.For(t, 8*time.Second, fmt.Sprintf("k%d to be told the member it cannot dial is down", i), func() (bool, string) {
			return len(ds[i].of(ghost.ID)) > 0, ""
		})
	}
	t.Logf("the members told within %v", time.Since(begin).Round(time.Millisecond))
	if got := nodes[0].log.lines("level=WARN", `msg="cluster member is gone: its actor port refuses connections"`, "member=k2"); len(got) != 1 {
		t.Errorf("k0 logged %q", got)
	}
}

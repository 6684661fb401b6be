package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/hashicorp/memberlist"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// TestMembershipTakesTheLaterRunAtAnAddress: of two runs at one actor
// address, the one that started later is the member; an earlier run's
// gossip is set aside, not lost: should the later run go first (a clock
// that went back makes a restart look earlier), the other becomes a member
// again, since memberlist will not announce it twice. A run that does not
// say when it started (an earlier build) is never set aside.
func TestMembershipTakesTheLaterRunAtAnAddress(t *testing.T) {
	p := newGossipProvider(MembershipConfig{RemovalGrace: 10 * time.Millisecond}, NodeInfo{Name: "self"},
		slog.New(slog.DiscardHandler), newPeerLogState(), nil, nil)
	p.self = memberMeta{NodeInfo: NodeInfo{Name: "self"}, ID: "self", Host: "10.0.0.1", Port: 7947, Started: 50}
	events := (*gossipEvents)(p)
	run := func(id string, started int64) *memberlist.Node {
		meta, err := json.Marshal(memberMeta{NodeInfo: NodeInfo{Name: "n2"}, ID: id, Host: "10.0.0.2", Port: 7947, Started: started})
		if err != nil {
			t.Fatal(err)
		}
		return &memberlist.Node{Name: id, Meta: meta}
	}
	members := func() map[string]bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := map[string]bool{}
		for name := range p.members {
			out[name] = true
		}
		return out
	}

	first, restart := run("first", 100), run("restart", 200)
	events.NotifyJoin(first)
	events.NotifyJoin(restart)
	if m := members(); m["first"] || !m["restart"] {
		t.Fatalf("members %v: want the later run only", m)
	}
	// Stale gossip about the earlier run changes nothing.
	events.NotifyUpdate(first)
	if m := members(); m["first"] {
		t.Fatalf("members %v after gossip about the earlier run", m)
	}

	// The clock went back: the live run says it started before the one
	// it replaced.
	back := run("back", 150)
	events.NotifyJoin(back)
	if m := members(); m["back"] {
		t.Fatalf("members %v: a run that says it is earlier joined at once", m)
	}
	events.NotifyLeave(restart) // the member it hid stops answering
	testwait.For(t, 10*time.Second, "the set-aside run to become a member once the later one is removed", func() (bool, string) {
		m := members()
		return m["back"], fmt.Sprintf("members %v", m)
	})
	if m := members(); m["first"] {
		t.Fatalf("members %v: the earliest run came back too", m)
	}

	// An earlier build's run says nothing of when it started.
	unknown := run("unknown", 0)
	events.NotifyJoin(unknown)
	if m := members(); !m["unknown"] {
		t.Fatalf("members %v: a run of an earlier build was set aside", m)
	}
}

// TestSecretsMustBeAESKeys: a secret of the wrong size stops the node at
// NewNode, and the error does not say the secret.
func TestSecretsMustBeAESKeys(t *testing.T) {
	kinds := []*cluster.Kind{cluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return &echo{} }))}
	_, err := NewNode(Config{Kinds: kinds, Membership: &MembershipConfig{Bind: "127.0.0.1:0",
		Secrets: [][]byte{[]byte("0123456789abcdef"), []byte("tooshort!!")}}})
	if err == nil || !strings.Contains(err.Error(), "gossip secret 2 of 2 is 10 bytes long; want 16, 24 or 32") || strings.Contains(err.Error(), "tooshort") {
		t.Fatalf("err %v", err)
	}
}

// TestGossipInTheClearOffLoopbackWarns: a node without a secret whose
// gossip others reach off this machine says so; on loopback, or with a
// secret, it does not.
func TestGossipInTheClearOffLoopbackWarns(t *testing.T) {
	for _, tc := range []struct {
		name      string
		advertise string
		secrets   [][]byte
		warn      bool
	}{
		{"loopback", "", nil, false},
		{"advertised off loopback", "10.1.2.3:7946", nil, true},
		{"with a secret", "10.1.2.3:7946", [][]byte{[]byte("0123456789abcdef")}, false},
	} {
		var buf logBuffer
		n, err := NewNode(Config{Logger: slog.New(slog.NewTextHandler(&buf, nil)),
			Kinds:      []*cluster.Kind{cluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return &echo{} }))},
			Membership: &MembershipConfig{Bind: "127.0.0.1:0", Advertise: tc.advertise, Secrets: tc.secrets, Tune: clustertest.FastGossip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		n.Stop()
		if got := buf.lines("level=WARN", `msg="gossip is not encrypted: set [cluster] secret"`); len(got) != map[bool]int{true: 1}[tc.warn] {
			t.Errorf("%s: warned %q", tc.name, got)
		}
	}
}

// TestDrainingAloneOrBeforeStart: a node that runs alone, or is told to
// drain before it starts, shows itself as leaving.
func TestDrainingAloneOrBeforeStart(t *testing.T) {
	alone := startNode(t, time.Minute)
	alone.SetDraining()
	if s := alone.Members()[0].State; s != sqljobber.MemberLeaving {
		t.Errorf("a draining node alone is %s", s)
	}
	// One node at a time: see the Makefile.
	alone.Stop()
	n, err := NewNode(Config{Kinds: []*cluster.Kind{cluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return &echo{} }))},
		Membership: &MembershipConfig{Bind: "127.0.0.1:0", Tune: clustertest.FastGossip}})
	if err != nil {
		t.Fatal(err)
	}
	n.SetDraining()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if s := n.Members()[0].State; s != sqljobber.MemberLeaving {
		t.Errorf("a node told to drain before it started is %s", s)
	}
}

package cluster

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestMembershipTakesTheLaterRunAtAnAddress: of two runs at one actor
// address, the one that started later is the member; an earlier run's
// gossip is set aside, not lost: should the later run go first (a clock
// that went back makes a restart look earlier), the other becomes a member
// again, since memberlist will not announce it twice. A run that does not
// say when it started (an earlier build) is never set aside.
func TestMembershipTakesTheLaterRunAtAnAddress(t *testing.T) {
	p := newGossipProvider(MembershipConfig{RemovalGrace: 10 * time.Millisecond}, NodeInfo{Name: "self"},
		slog.New(slog.DiscardHandler), newPeerLogState(), nil)
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
	deadline := time.Now().Add(10 * time.Second)
	for !members()["back"] {
		if time.Now().After(deadline) {
			t.Fatalf("members %v: the set-aside run never became a member once the later one was removed", members())
		}
		time.Sleep(time.Millisecond)
	}
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

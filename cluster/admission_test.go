package cluster

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// gateNode is a memberlist node of a run described by m.
func gateNode(t *testing.T, m memberMeta, state memberlist.NodeStateType) *memberlist.Node {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: m.ID, Addr: net.IPv4(10, 0, 0, 9), Port: 7946, Meta: b, State: state}
}

// TestGateAdmitsOneLedgerAndUniqueNames: the gate refuses a node of
// another ledger, and one named as a live member elsewhere; it admits a
// node that names no ledger, a restart at a member's address, a name whose
// holder stopped answering, refuses connections or is leaving, and a run
// it admitted before. It logs a refusal once a minute.
func TestGateAdmitsOneLedgerAndUniqueNames(t *testing.T) {
	var buf logBuffer
	p := newGossipProvider(MembershipConfig{}, NodeInfo{}, slog.New(slog.NewTextHandler(&buf, nil)), newPeerLogState(), nil, nil)
	p.self = memberMeta{NodeInfo: NodeInfo{Name: "self", Ledger: "main"}, ID: "self", Host: "10.0.0.1", Port: 7947}
	run := func(id, name, ledger, host string) memberMeta {
		return memberMeta{NodeInfo: NodeInfo{Name: name, Ledger: ledger}, ID: id, Host: host, Port: 7947}
	}
	p.members = map[string]memberMeta{
		"self":    p.self,
		"m1":      run("m1", "n1", "main", "10.0.0.2"),
		"suspect": run("suspect", "n2", "main", "10.0.0.3"),
		"gone":    run("gone", "n3", "main", "10.0.0.4"),
		"leaving": run("leaving", "n4", "main", "10.0.0.5"),
	}
	p.suspects["suspect"] = time.NewTimer(time.Hour)
	defer p.suspects["suspect"].Stop()
	p.gone["gone"] = true
	lv := p.members["leaving"]
	lv.Leaving = true
	p.members["leaving"] = lv
	gate := (*gossipGate)(p)

	for _, tc := range []struct {
		name string
		m    memberMeta
		want string // the refusal, "" to admit
	}{
		{"this node", p.self, ""},
		{"a member", p.members["m1"], ""},
		{"another ledger", run("x1", "x1", "other", "10.0.1.1"), `it keeps ledger "other", and this node "main"`},
		{"no ledger", run("x2", "x2", "", "10.0.1.2"), ""},
		{"TLS", func() memberMeta { m := run("x9", "x9", "main", "10.0.1.9"); m.TLS = true; return m }(), "its actor port speaks TLS, and this node's plain gRPC"},
		{"this node's name", run("x3", "self", "main", "10.0.1.3"), "worker name self is held by a live member at 10.0.0.1:7947"},
		{"a member's name", run("x4", "n1", "main", "10.0.1.4"), "worker name n1 is held by a live member at 10.0.0.2:7947"},
		{"a member restarted at its address", run("x5", "n1", "main", "10.0.0.2"), ""},
		{"a suspect's name", run("x6", "n2", "main", "10.0.1.6"), ""},
		{"the name of a member whose port refuses", run("x7", "n3", "main", "10.0.1.7"), ""},
		{"a leaving member's name", run("x8", "n4", "main", "10.0.1.8"), ""},
	} {
		err := gate.NotifyAlive(gateNode(t, tc.m, memberlist.StateAlive))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrRefused) || !strings.HasSuffix(err.Error(), tc.want)):
			t.Errorf("%s: %v, want refused: %s", tc.name, err, tc.want)
		}
	}
	if err := gate.NotifyAlive(&memberlist.Node{Name: "junk", Meta: []byte("{")}); !errors.Is(err, ErrRefused) {
		t.Errorf("a node that does not describe itself: %v", err)
	}

	// A join judges the live nodes the other side knows.
	twin := run("x9", "n1", "main", "10.0.1.9")
	if err := gate.NotifyMerge([]*memberlist.Node{gateNode(t, twin, memberlist.StateDead)}); err != nil {
		t.Errorf("a dead node refused: %v", err)
	}
	if err := gate.NotifyMerge([]*memberlist.Node{gateNode(t, p.members["m1"], memberlist.StateAlive), gateNode(t, twin, memberlist.StateSuspect)}); !errors.Is(err, ErrRefused) {
		t.Errorf("a suspect twin admitted: %v", err)
	}
	// Joining, this node speaks of the other side as the cluster, whose
	// member holds the name.
	p.joining = true
	err := gate.NotifyMerge([]*memberlist.Node{gateNode(t, run("y1", "self", "main", "10.0.2.1"), memberlist.StateAlive)})
	if !errors.Is(err, ErrRefused) || !strings.HasSuffix(err.Error(), "worker name self is held by a live member at 10.0.2.1:7947") || p.joinRefusal != err {
		t.Errorf("joining a cluster that has this node's name: %v", err)
	}
	err = gate.NotifyMerge([]*memberlist.Node{gateNode(t, run("y2", "y2", "other", "10.0.2.2"), memberlist.StateAlive)})
	if !strings.HasSuffix(err.Error(), `the cluster keeps ledger "other", and this node "main"`) {
		t.Errorf("joining a cluster of another ledger: %v", err)
	}

	// The same refusal again is not logged again.
	if err := gate.NotifyAlive(gateNode(t, twin, memberlist.StateAlive)); !errors.Is(err, ErrRefused) {
		t.Fatal(err)
	}
	if got := buf.lines(`msg="refused member"`, "member=n1", "address=10.0.1.9:7947", "gossip=10.0.0.9:7946"); len(got) != 1 {
		t.Errorf("the twin's refusals logged %q, want one line", got)
	}
}

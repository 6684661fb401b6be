package cluster

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"

	sqljobber "github.com/sql-jobber/sql-jobber"
)

// TestProbeAgainWhenAConnectionBreaksDuringACheck: a node restarted at the
// same port and killed again while the survivors still check its port
// after its earlier run's connection broke (the check finds the new run
// listening) must be found gone by a second check, not left to memberlist
// (TestChaos once waited 20 s for it). A run that joins while a check is
// under way is not judged by that check.
func TestProbeAgainWhenAConnectionBreaksDuringACheck(t *testing.T) {
	downs := make(chan string, 8)
	p := newGossipProvider(MembershipConfig{}, NodeInfo{}, slog.New(slog.NewTextHandler(io.Discard, nil)), newPeerLogState(), nil,
		func(m sqljobber.Member) { downs <- m.ID })
	t.Cleanup(func() {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		p.wg.Wait()
	})
	type check struct {
		addr   string
		answer chan bool
	}
	checks := make(chan check)
	p.refuses = func(addr string) bool {
		c := check{addr, make(chan bool)}
		checks <- c
		return <-c.answer
	}
	const addr = "127.0.0.1:7001"
	run := func(id string) memberMeta {
		return memberMeta{NodeInfo: NodeInfo{Name: "n1"}, ID: id, Host: "127.0.0.1", Port: 7001}
	}
	join := func(id string) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.members[id] = run(id)
	}
	broke := func() { p.endpointTerminated(&remote.EndpointTerminatedEvent{Address: addr}) }
	next := func() check {
		t.Helper()
		select {
		case c := <-checks:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("the port is not checked")
			return check{}
		}
	}
	wantDown := func(want ...string) {
		t.Helper()
		var got []string
		for range want {
			select {
			case id := <-downs:
				got = append(got, id)
			case <-time.After(10 * time.Second):
				t.Fatalf("told down %v, want %v", got, want)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("told down %v, want %v", got, want)
		}
		select {
		case id := <-downs:
			t.Fatalf("also told %s is down", id)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// The first run's connection breaks; while its port is checked, the
	// node's next run starts there (the check finds it listening) and is
	// killed too.
	join("r1")
	broke()
	first := next()
	join("r2")
	broke()
	first.answer <- false
	second := next()
	if second.addr != addr {
		t.Fatalf("checked %s, want %s", second.addr, addr)
	}
	second.answer <- true
	wantDown("r1", "r2")

	// A third run joins while a check that began before it is under way:
	// that check's refusal is not about it.
	join("r3")
	p.mu.Lock()
	delete(p.gone, "r1")
	delete(p.gone, "r2")
	delete(p.members, "r1")
	delete(p.members, "r2")
	p.mu.Unlock()
	join("r4")
	broke()
	c := next()
	join("r5")
	c.answer <- true
	wantDown("r3", "r4")
	p.mu.Lock()
	gone := p.gone["r5"]
	p.mu.Unlock()
	if gone {
		t.Fatal("a run that joined during the check was found gone by it")
	}
}

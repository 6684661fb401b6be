package cluster

// A test with several nodes in one process: see cluster_test.go's header.

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lists reports whether n sees, alive, every one of the member IDs want,
// and what it sees.
func lists(n *Node, want ...string) (bool, string) {
	alive := map[string]bool{}
	var seen []string
	for _, m := range n.Members() {
		alive[m.ID] = m.State == sqljobber.MemberAlive
		seen = append(seen, fmt.Sprintf("%s %s %s", m.Name, m.ID, m.State))
	}
	for _, id := range want {
		if !alive[id] {
			return false, strings.Join(seen, ", ")
		}
	}
	return true, ""
}

// TestClusterRestartIsHeardByEveryMember: a node killed and started again
// at its addresses, three times, each time through a member that dies a
// second after the join (memberlist's gossip of the new run has then gone
// out a few times, to the earlier runs' address among others): every
// member lists the newest run, and the new run every member, at once, not
// at the next push/pull (here a minute away, as the LAN default's 30 s is
// beside these seconds).
func TestClusterRestartIsHeardByEveryMember(t *testing.T) {
	tune := func(c *memberlist.Config) {
		clustertest.FastGossip(c)
		c.PushPullInterval = time.Minute
	}
	gossipPort, actorPort := freePort(t), freePort(t)
	atItsAddresses := func(c *Config) {
		c.Host, c.Port = "127.0.0.1", actorPort
		c.Membership.Bind = fmt.Sprintf("127.0.0.1:%d", gossipPort)
		c.Membership.Tune = tune
	}
	victim := mustJoin(t, "v", nil, atItsAddresses)
	// The seeds, one per restart, and the members that stay.
	names := []string{"s1", "s2", "s3", "o1", "o2"}
	others := map[string]member{}
	for _, name := range names {
		others[name] = mustJoin(t, name, []string{victim.GossipAddress()}, func(c *Config) { c.Membership.Tune = tune })
	}
	waitFor(t, "every member to see every other", func() bool {
		for _, n := range others {
			if !sees(n.Node, append([]string{"v"}, names...)...) {
				return false
			}
		}
		return true
	})

	for round, seed := range names[:3] {
		crash(t, victim.Node)
		victim = mustJoin(t, "v", []string{others[seed].GossipAddress()}, atItsAddresses)
		// Start returns a second after the join (protoactor sleeps).
		crash(t, others[seed].Node)
		delete(others, seed)

		live := []*Node{victim.Node}
		ids := []string{victim.ID()}
		for _, name := range slices.Sorted(maps.Keys(others)) {
			live = append(live, others[name].Node)
			ids = append(ids, others[name].ID())
		}
		begin := time.Now()
		testwait.For(t, 2*time.Second, fmt.Sprintf("restart %d: every member to list every member's current run", round+1), func() (bool, string) {
			var missing []string
			for _, n := range live {
				if ok, seen := lists(n, ids...); !ok {
					missing = append(missing, fmt.Sprintf("%s sees [%s]", n.cfg.Info.Name, seen))
				}
			}
			return len(missing) == 0, strings.Join(missing, "; ")
		})
		t.Logf("restart %d: every member lists every current run %v after the seed died", round+1, time.Since(begin).Round(time.Millisecond))
	}
}

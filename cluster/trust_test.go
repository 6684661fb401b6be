package cluster

// Tests of who the cluster admits, with several nodes in one process: see
// cluster_test.go's header.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

// withSecrets sets the gossip secrets of a node.
func withSecrets(secrets ...[]byte) func(*Config) {
	return func(c *Config) { c.Membership.Secrets = secrets }
}

// wantRefused fails the test unless err wraps ErrRefused and says want.
func wantRefused(t *testing.T, who string, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s started with %v; want it refused: %q", who, err, want)
	}
}

// TestClusterSecretKeepsOthersOut: a node without the cluster's secret, or
// with another, is not admitted, nor can a node with a secret join a
// cluster that has none. The joining node's Start says why; the member it
// asked logs one line per peer and reason.
func TestClusterSecretKeepsOthersOut(t *testing.T) {
	a0 := mustJoin(t, "a0", nil, withSecrets(secretA))
	a1 := mustJoin(t, "a1", []string{a0.GossipAddress()}, withSecrets(secretA))
	waitFor(t, "the two members with the secret to see each other", func() bool { return sees(a0.Node, "a0", "a1") && sees(a1.Node, "a0", "a1") })
	join := []string{a0.GossipAddress()}

	other, err := joinNode(t, "other", join, withSecrets(secretB))
	wantRefused(t, "a node with another secret", err, "gossip secrets differ: the cluster encrypts with a secret this node does not have")
	if got := other.log.lines("level=WARN", `msg="not admitted to the cluster"`, "gossip secrets differ"); len(got) != 1 {
		t.Errorf("the refused node logged %q", got)
	}
	_, err = joinNode(t, "other2", join, withSecrets(secretB))
	wantRefused(t, "a second node with another secret", err, "gossip secrets differ")
	_, err = joinNode(t, "plain", join, nil)
	wantRefused(t, "a node without a secret", err, "gossip secrets differ: the cluster encrypts its gossip, and this node has no secret")

	// One line for the two nodes with another secret (one host), one for
	// the node without.
	for _, reason := range []string{"encrypted with a secret this node does not have", "not encrypted: the other node has no secret"} {
		waitLogged(t, "the member asked", a0.log, "level=WARN", `msg="refused gossip"`, "remote=127.0.0.1:", reason)
	}
	if !sees(a0.Node, "a0", "a1") || !sees(a1.Node, "a0", "a1") {
		t.Fatalf("after the refusals the members see %+v and %+v", a0.Members(), a1.Members())
	}

	// A node with a secret does not join a cluster that has none.
	p0 := mustJoin(t, "p0", nil, nil)
	_, err = joinNode(t, "secret", []string{p0.GossipAddress()}, withSecrets(secretA))
	wantRefused(t, "a node with a secret", err, "gossip secrets differ: the cluster's gossip is not encrypted, and this node has a secret")
	waitLogged(t, "the member without a secret", p0.log, "level=WARN", `msg="refused gossip"`, "encrypted, and this node has no secret")
	if !sees(p0.Node, "p0") {
		t.Fatalf("the cluster without a secret sees %+v", p0.Members())
	}
}

// TestClusterSecretRotationNeverSplits: every member restarted in turn with
// [A, B], then with [B, A], then with [B]: at every step, every member sees
// every other, and none refuses gossip.
func TestClusterSecretRotationNeverSplits(t *testing.T) {
	names := []string{"r0", "r1", "r2"}
	nodes := make([]member, len(names))
	for i, name := range names {
		var join []string
		if i > 0 {
			join = []string{nodes[0].GossipAddress()}
		}
		nodes[i] = mustJoin(t, name, join, withSecrets(secretA))
	}
	everyoneSeesEveryone := func(step string) {
		waitFor(t, step+": every member to see every other", func() bool {
			for _, n := range nodes {
				if !sees(n.Node, names...) {
					return false
				}
			}
			return true
		})
	}
	everyoneSeesEveryone("with [A]")
	for _, secrets := range [][][]byte{{secretA, secretB}, {secretB, secretA}, {secretB}} {
		for i := range nodes {
			nodes[i].Stop()
			rest := slicesWithout(nodes, i)
			waitFor(t, fmt.Sprintf("the others to see %s leave", names[i]), func() bool {
				for _, n := range rest {
					if len(n.Members()) != len(names)-1 {
						return false
					}
				}
				return true
			})
			nodes[i] = mustJoin(t, names[i], []string{rest[0].GossipAddress()}, withSecrets(secrets...))
			everyoneSeesEveryone(fmt.Sprintf("%s restarted with %d secrets", names[i], len(secrets)))
		}
	}
	for _, n := range nodes {
		if got := n.log.lines("level=WARN"); len(got) != 0 {
			t.Errorf("a member warned during the rotation: %q", got)
		}
	}
}

func slicesWithout(nodes []member, i int) []member {
	var out []member
	for j, n := range nodes {
		if j != i {
			out = append(out, n)
		}
	}
	return out
}

// TestClusterRefusesAnotherLedger: a node that keeps another ledger is not
// admitted, and both sides say why; one that does not say which ledger it
// keeps (an older build) is.
func TestClusterRefusesAnotherLedger(t *testing.T) {
	withLedger := func(ledger string) func(*Config) { return func(c *Config) { c.Info.Ledger = ledger } }
	l0 := mustJoin(t, "l0", nil, withLedger("main"))
	join := []string{l0.GossipAddress()}
	l1 := mustJoin(t, "l1", join, withLedger("main"))
	waitFor(t, "the members of one ledger to see each other", func() bool { return sees(l0.Node, "l0", "l1") })

	other, err := joinNode(t, "l2", join, withLedger("elsewhere"))
	wantRefused(t, "a node of another ledger", err, `the cluster keeps ledger "main", and this node "elsewhere"`)
	waitLogged(t, "the member asked", l0.log, "level=WARN", `msg="refused member"`, "member=l2", "address="+other.Address(),
		`reason="it keeps ledger \"elsewhere\", and this node \"main\""`)
	if got := other.log.lines("level=WARN", `msg="refused member"`, "member=l", `the cluster keeps ledger`); len(got) == 0 {
		t.Errorf("the refused node logged nothing of the member it refused: %q", other.log.lines())
	}

	mustJoin(t, "old", join, nil)
	waitFor(t, "a node of an older build to be admitted", func() bool { return sees(l0.Node, "l0", "l1", "old") && sees(l1.Node, "l0", "l1", "old") })
}

// TestClusterRefusesAWorkerNameHeldElsewhere: a node named as a live member
// at another actor address is not admitted; the name is free again once
// that member has left.
func TestClusterRefusesAWorkerNameHeldElsewhere(t *testing.T) {
	n0 := mustJoin(t, "n0", nil, nil)
	join := []string{n0.GossipAddress()}
	n1 := mustJoin(t, "n1", join, nil)
	waitFor(t, "two members", func() bool { return sees(n0.Node, "n0", "n1") })

	twin, err := joinNode(t, "n1", join, nil)
	wantRefused(t, "a second n1", err, "worker name n1 is held by a live member at "+n1.Address())
	waitLogged(t, "the member asked", n0.log, "level=WARN", `msg="refused member"`, "member=n1", "address="+twin.Address(),
		"worker name n1 is held by a live member at "+n1.Address())
	// Nor is it admitted as a twin of the member it asked.
	_, err = joinNode(t, "n0", join, nil)
	wantRefused(t, "a second n0", err, "worker name n0 is held by a live member at "+n0.Address())
	if !sees(n0.Node, "n0", "n1") || !sees(n1.Node, "n0", "n1") {
		t.Fatalf("after the refusals the members see %+v and %+v", n0.Members(), n1.Members())
	}

	n1.Stop()
	waitFor(t, "n1 to leave", func() bool { return sees(n0.Node, "n0") })
	mustJoin(t, "n1", join, nil)
	waitFor(t, "n1 to be admitted again, elsewhere", func() bool { return sees(n0.Node, "n0", "n1") })
}

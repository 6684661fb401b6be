package cluster

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/memberlist"
)

// ErrRefused: Start fails with an error wrapping it when the cluster refused
// this node or this node refused the cluster (the error says why: another
// ledger, the worker name held by a live member at another address, another
// gossip secret).
var ErrRefused = errors.New("cluster: refused")

// gossipGate decides who may be a member. memberlist asks it about every
// alive message of a node it does not know as a member yet
// (AliveDelegate: gossip and the merge of a push/pull alike), and about the
// nodes that a join would bring in (MergeDelegate), on both sides of the
// join: the joining node then learns why it was refused, and its Start
// fails.
//
// It refuses a node that keeps another ledger than this one (members
// sharing no ledger would take each other's jobs and never see them run),
// and one whose worker name a live member holds at another actor address.
// A later run at a member's own address is that member restarted, and
// replaces it (see gossipEvents.set).
type gossipGate gossipProvider

var (
	_ memberlist.AliveDelegate = (*gossipGate)(nil)
	_ memberlist.MergeDelegate = (*gossipGate)(nil)
)

// NotifyAlive is called with memberlist's node lock held, for this node
// too: it must not call memberlist.
func (g *gossipGate) NotifyAlive(n *memberlist.Node) error {
	p := (*gossipProvider)(g)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, member := p.members[n.Name]; member || n.Name == p.self.ID {
		// An admitted run is not judged again: it stays what it was.
		return nil
	}
	return p.admitLocked(n)
}

// NotifyMerge judges the nodes the other side of a join knows (those
// memberlist has not found dead or gone): on the joining node, the
// cluster's members; on the member joined, the joining node.
func (g *gossipGate) NotifyMerge(peers []*memberlist.Node) error {
	p := (*gossipProvider)(g)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range peers {
		if n.State != memberlist.StateAlive && n.State != memberlist.StateSuspect {
			continue
		}
		if _, member := p.members[n.Name]; member || n.Name == p.self.ID {
			continue
		}
		if err := p.admitLocked(n); err != nil {
			return err
		}
	}
	return nil
}

// admitLocked says, with an error wrapping ErrRefused, why n may not be a
// member beside this node and its live members, and logs it; nil if it
// may. p.mu is held.
func (p *gossipProvider) admitLocked(n *memberlist.Node) error {
	gossip := gossipAddress(n)
	m, ok := meta(n)
	if !ok {
		return p.refuseLocked(n.Name, gossip, memberMeta{}, "it does not describe itself as a sql-jobber member does")
	}
	// A member of an older build says nothing of its ledger (Ledger ""),
	// and is admitted: refusing it would stop a rolling upgrade. So does
	// this node, if it says nothing.
	if m.Ledger != "" && p.self.Ledger != "" && m.Ledger != p.self.Ledger {
		if p.joining {
			return p.refuseLocked(n.Name, gossip, m, fmt.Sprintf("the cluster keeps ledger %q, and this node %q", m.Ledger, p.self.Ledger))
		}
		return p.refuseLocked(n.Name, gossip, m, fmt.Sprintf("it keeps ledger %q, and this node %q", m.Ledger, p.self.Ledger))
	}
	if m.TLS != p.self.TLS {
		speaks := map[bool]string{true: "TLS", false: "plain gRPC"}
		if p.joining {
			return p.refuseLocked(n.Name, gossip, m, fmt.Sprintf("the cluster's actor ports speak %s, and this node's %s", speaks[m.TLS], speaks[p.self.TLS]))
		}
		return p.refuseLocked(n.Name, gossip, m, fmt.Sprintf("its actor port speaks %s, and this node's %s", speaks[m.TLS], speaks[p.self.TLS]))
	}
	holder, ok := p.nameHolderLocked(n.Name, m)
	if !ok {
		return nil
	}
	if holder.ID == p.self.ID && p.joining {
		// The cluster's member holds the name this node would join with.
		holder = m
	}
	return p.refuseLocked(n.Name, gossip, m, fmt.Sprintf("worker name %s is held by a live member at %s", m.Name, holder.address()))
}

// refuseLocked logs a refusal of the node named name (memberlist's name)
// at most once a minute, and returns it. p.mu is held.
func (p *gossipProvider) refuseLocked(name, gossip string, m memberMeta, reason string) error {
	if p.refusals.first(name + "\x00" + reason) {
		p.logger.Warn("refused member", slog.String("member", m.Name), slog.String("address", m.address()),
			slog.String("gossip", gossip), slog.String("reason", reason))
	}
	err := fmt.Errorf("%w: %s", ErrRefused, reason)
	if p.joining {
		p.joinRefusal = err
	}
	return err
}

// nameHolderLocked returns the live member, this node included, other than
// the node named name (memberlist's name), that holds m's worker name at
// another actor address. Members that stopped answering, whose actor port
// refuses connections, or that are leaving (a restart under the same name
// elsewhere may follow at once) hold no name. p.mu is held.
func (p *gossipProvider) nameHolderLocked(name string, m memberMeta) (memberMeta, bool) {
	if m.Name == "" {
		return memberMeta{}, false
	}
	if m.ID != p.self.ID && m.Name == p.self.Name && m.address() != p.self.address() {
		return p.self, true
	}
	for other, o := range p.members {
		if other == name || o.ID == p.self.ID || o.ID == m.ID || o.Name != m.Name || o.address() == m.address() {
			continue
		}
		if _, suspect := p.suspects[other]; suspect || p.gone[o.ID] || o.Leaving {
			continue
		}
		return o, true
	}
	return memberMeta{}, false
}

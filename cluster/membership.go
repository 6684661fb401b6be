package cluster

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/hashicorp/memberlist"

	sqljobber "github.com/sql-jobber/sql-jobber"
)

// Defaults for MembershipConfig.
const (
	RemovalGraceDefault = 5 * time.Second
	leaveTimeout        = 5 * time.Second
	rejoinInterval      = 5 * time.Second
)

// MembershipConfig makes a node a member of a cluster whose membership is
// gossiped by hashicorp/memberlist (SWIM): nodes find each other through any
// member, and detect a dead one within seconds.
type MembershipConfig struct {
	// Bind is the host:port memberlist listens on (UDP and TCP). Port 0
	// picks a free one.
	Bind string
	// Advertise is the host:port other members reach this one at; empty
	// means Bind.
	Advertise string
	// Join lists host:port addresses of members to join; empty starts a
	// new cluster. A node that cannot reach any keeps trying.
	Join []string
	// RemovalGrace is how long a member that stopped answering stays in
	// the membership before it is dropped. protoactor bars a dropped
	// member for good, so a member only suspected for a moment (a busy
	// machine) must not be dropped. A member that leaves gracefully goes
	// at once.
	RemovalGrace time.Duration
	// Tune, if set, adjusts memberlist's timings (LAN defaults), e.g.
	// tighter ones in tests.
	Tune func(*memberlist.Config)
	// Secrets encrypt and authenticate gossip (memberlist's keyring): the
	// first encrypts, every one decrypts (for rotating the secret). Each
	// is 16, 24 or 32 bytes. Empty: gossip in the clear.
	//
	// To rotate from A to B without splitting the cluster, restart every
	// member with [A, B], then every member with [B, A], then with [B]: a
	// member reads only the secrets it has, so no member may encrypt
	// with B before every member has B.
	Secrets [][]byte
}

// validate checks the secrets' sizes (memberlist's keyring takes AES-128,
// -192 and -256 keys), without saying what they are.
func (c MembershipConfig) validate() error {
	for i, s := range c.Secrets {
		switch len(s) {
		case 16, 24, 32:
		default:
			return fmt.Errorf("cluster: gossip secret %d of %d is %d bytes long; want 16, 24 or 32", i+1, len(c.Secrets), len(s))
		}
	}
	return nil
}

// NodeInfo is what a node tells the other members about itself.
type NodeInfo struct {
	// Name is the node's (unique) worker name.
	Name string `json:"name"`
	// Queues are the queues it works, with their slots.
	Queues map[string]int `json:"queues,omitempty"`
	// API is its HTTP API address, "" if it serves none.
	API string `json:"api,omitempty"`
	// Ledger is the identity of the job ledger the node keeps (members
	// must share it); "" from builds that did not say.
	Ledger string `json:"ledger,omitempty"`
}

// memberMeta is gossiped in memberlist's node metadata (at most 512
// bytes).
type memberMeta struct {
	NodeInfo
	ID    string   `json:"id"`
	Host  string   `json:"host"`
	Port  int      `json:"port"`
	Kinds []string `json:"kinds"`
	// Leaving is set as the node leaves: it owns no grains any more.
	Leaving bool `json:"leaving,omitempty"`
	// Draining is set as the node starts to stop: it takes no new jobs,
	// but owns its grains until it leaves.
	Draining bool `json:"draining,omitempty"`
	// Started (Unix nanoseconds) orders the runs of a node at one
	// address: the later one is alive, since two processes cannot
	// listen on one port. 0 from builds that did not say.
	Started int64 `json:"started,omitempty"`
	// TLS says the node's actor port speaks TLS: members that do not
	// agree cannot send each other grain requests.
	TLS bool `json:"tls,omitempty"`
	// gossip is where memberlist reaches the node, host:port; not
	// gossiped (memberlist says it), and "" for this node.
	gossip string
}

// gossipProvider is a cluster.ClusterProvider over memberlist.
type gossipProvider struct {
	cfg    MembershipConfig
	info   NodeInfo
	logger *slog.Logger

	c  *cluster.Cluster
	ml *memberlist.Memberlist

	mu       sync.Mutex
	self     memberMeta
	members  map[string]memberMeta  // alive or suspect, by memberlist name
	suspects map[string]*time.Timer // pending removals
	// shadowed are runs, by memberlist name, that a run at their address
	// started later replaced; memberlist does not announce them again, so
	// they are kept here in case the later run goes first.
	shadowed map[string]memberMeta
	// gone are the members (by ID) whose actor port refused connections
	// (see endpointTerminated), until memberlist drops them; probing
	// are the actor addresses being checked, true for one to check again
	// when the check ends. refuses is the check (portRefuses).
	gone    map[string]bool
	probing map[string]bool
	refuses func(addr string) bool
	// reported are the members (by ID) MemberDown was called for, and
	// when.
	reported map[string]time.Time
	// joining is set while this node joins: the gate then speaks of the
	// other side as the cluster.
	joining     bool
	joinRefusal error // the gate's refusal while joining
	refusals    *onceAMinute
	sub         *eventstream.Subscription
	stopped     bool
	changed     chan struct{}
	done        chan struct{}
	wg          sync.WaitGroup

	peers *peerLogState // told which peers are alive
	// exclude is told which members own no grains (suspects and those
	// leaving), and which are alive.
	exclude    func(excluded, alive map[string]bool)
	memberDown func(sqljobber.Member) // nil: no one is told
}

var _ cluster.ClusterProvider = (*gossipProvider)(nil)

func newGossipProvider(cfg MembershipConfig, info NodeInfo, logger *slog.Logger, peers *peerLogState,
	exclude func(excluded, alive map[string]bool), memberDown func(sqljobber.Member),
) *gossipProvider {
	if cfg.RemovalGrace <= 0 {
		cfg.RemovalGrace = RemovalGraceDefault
	}
	return &gossipProvider{cfg: cfg, info: info, logger: logger, members: map[string]memberMeta{},
		suspects: map[string]*time.Timer{}, shadowed: map[string]memberMeta{}, gone: map[string]bool{}, probing: map[string]bool{},
		refuses: portRefuses, reported: map[string]time.Time{}, refusals: newOnceAMinute(), changed: make(chan struct{}, 1), done: make(chan struct{}),
		peers: peers, exclude: exclude, memberDown: memberDown}
}

// changedLocked tells protoactor's log which peers are alive, and asks the
// publisher to push the membership to protoactor. p.mu is held.
func (p *gossipProvider) changedLocked() {
	p.tellAliveLocked()
	p.signal()
}

// tellAliveLocked tells protoactor's log which peers are alive (see
// peerLog), and the grains' placement which members own none (see
// identityLookup). p.mu is held.
func (p *gossipProvider) tellAliveLocked() {
	alive, excluded := map[string]bool{}, map[string]bool{}
	maps.DeleteFunc(p.gone, func(id string, _ bool) bool { _, member := p.members[id]; return !member })
	for name, m := range p.members {
		if m.ID == p.self.ID {
			continue
		}
		if _, suspect := p.suspects[name]; suspect || m.Leaving || p.gone[m.ID] {
			excluded[m.ID] = true
			continue
		}
		alive[m.ID] = true
		alive[m.address()] = true
	}
	p.peers.setAlive(alive)
	if p.exclude != nil {
		p.exclude(excluded, alive)
	}
}

// address is the member's actor address, host:port.
func (m memberMeta) address() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port in %q", addr)
	}
	return host, port, nil
}

func (p *gossipProvider) StartMember(c *cluster.Cluster) error {
	p.c = c
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	p.mu.Lock()
	// SetDraining may have come first.
	p.self = memberMeta{NodeInfo: p.info, ID: c.ActorSystem.ID, Host: host, Port: port, Kinds: c.GetClusterKinds(),
		Started: time.Now().UnixNano(), Draining: p.self.Draining, TLS: p.self.TLS}
	sort.Strings(p.self.Kinds)
	b, _ := json.Marshal(p.self)
	p.mu.Unlock()
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("cluster: this node's description (%d bytes: queue names and more) exceeds memberlist's %d", len(b), memberlist.MetaMaxSize)
	}
	conf, err := p.memberlistConfig()
	if err != nil {
		return err
	}
	if _, err := c.ActorSystem.Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), connectActorName); err != nil {
		return fmt.Errorf("cluster: start %s: %w", connectActorName, err)
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		return fmt.Errorf("cluster: start gossip: %w", err)
	}
	p.ml = ml
	if len(p.cfg.Secrets) == 0 {
		if bind := net.ParseIP(conf.BindAddr); bind == nil || !bind.IsLoopback() || !ml.LocalNode().Addr.IsLoopback() {
			p.logger.Warn("gossip is not encrypted: set [cluster] secret", slog.String("bind", p.cfg.Bind),
				slog.String("advertise", net.JoinHostPort(ml.LocalNode().Addr.String(), strconv.Itoa(int(ml.LocalNode().Port)))))
		}
	}
	p.sub = c.ActorSystem.EventStream.Subscribe(p.endpointTerminated)
	p.wg.Add(1)
	go p.publish()
	p.mu.Lock()
	p.changedLocked()
	p.mu.Unlock()
	if len(p.cfg.Join) == 0 {
		return nil
	}
	refusal, err := p.tryJoin()
	switch {
	case refusal != nil:
		p.logger.Warn("not admitted to the cluster", slog.Any("join", p.cfg.Join), slog.Any("error", refusal))
		return refusal
	case err != nil:
		p.logger.Warn("cannot reach the cluster yet; trying again", slog.Any("join", p.cfg.Join), slog.Any("error", err))
		p.wg.Add(1)
		go p.rejoin()
	}
	return nil
}

func (p *gossipProvider) StartClient(*cluster.Cluster) error {
	return errors.New("cluster: clients are not supported")
}

// Shutdown leaves the cluster: the other members are told this one is
// leaving (so they drop it at once, without a grace), then it leaves.
func (p *gossipProvider) Shutdown(bool) error {
	p.mu.Lock()
	if p.stopped || p.ml == nil {
		p.stopped = true
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	p.self.Leaving = true
	for _, t := range p.suspects {
		t.Stop()
	}
	p.mu.Unlock()
	p.c.ActorSystem.EventStream.Unsubscribe(p.sub)
	close(p.done)
	_ = p.ml.UpdateNode(leaveTimeout)
	err := p.ml.Leave(leaveTimeout)
	if serr := p.ml.Shutdown(); err == nil {
		err = serr
	}
	p.wg.Wait()
	return err
}

// signal asks the publisher to push the membership to protoactor.
func (p *gossipProvider) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// publish hands protoactor the current members, one update at a time.
func (p *gossipProvider) publish() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.changed:
		}
		p.mu.Lock()
		members := cluster.Members{{Id: p.self.ID, Host: p.self.Host, Port: int32(p.self.Port), Kinds: p.self.Kinds}}
		for _, m := range p.members {
			if m.ID != p.self.ID {
				members = append(members, &cluster.Member{Id: m.ID, Host: m.Host, Port: int32(m.Port), Kinds: m.Kinds})
			}
		}
		p.mu.Unlock()
		p.c.MemberList.UpdateClusterTopology(members)
	}
}

// infos describes the members.
func (p *gossipProvider) infos() []sqljobber.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []sqljobber.Member{p.self.member(true, false)}
	for name, m := range p.members {
		if m.ID == p.self.ID {
			continue
		}
		_, suspect := p.suspects[name]
		out = append(out, m.member(false, suspect || p.gone[m.ID]))
	}
	slices.SortFunc(out[1:], func(a, b sqljobber.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// member describes m as a member of the cluster: one that is draining or
// leaving is leaving, and one that stopped answering (suspect) is suspect.
func (m memberMeta) member(self, suspect bool) sqljobber.Member {
	state := sqljobber.MemberAlive
	switch {
	case m.Leaving || m.Draining:
		state = sqljobber.MemberLeaving
	case suspect:
		state = sqljobber.MemberSuspect
	}
	return sqljobber.Member{Name: m.Name, ID: m.ID, Address: m.address(), API: m.API, Queues: m.Queues, Self: self, State: state}
}

// setDraining tells the other members that this node is stopping: it shows
// as leaving, and still owns its grains.
func (p *gossipProvider) setDraining() {
	p.mu.Lock()
	if p.self.Draining {
		p.mu.Unlock()
		return
	}
	p.self.Draining = true
	ml, stopped := p.ml, p.stopped
	p.mu.Unlock()
	if ml == nil || stopped {
		// Before StartMember, the first description says it.
		return
	}
	// UpdateNode waits (for at most the timeout) for the news to be sent;
	// a member that misses it learns it from the next push/pull.
	if err := ml.UpdateNode(leaveTimeout); err != nil {
		p.logger.Info("told the cluster this node is draining, unheard", slog.Any("error", err))
	}
}

// gossipDelegate gives memberlist this node's metadata.
type gossipDelegate gossipProvider

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	p := (*gossipProvider)(d)
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := json.Marshal(p.self)
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// gossipEvents follows memberlist's view of the members.
type gossipEvents gossipProvider

// meta copies a node's metadata, and its gossip address; memberlist reuses
// the buffer.
func meta(n *memberlist.Node) (memberMeta, bool) {
	var m memberMeta
	if err := json.Unmarshal(slices.Clone(n.Meta), &m); err != nil || m.ID == "" {
		return m, false
	}
	m.gossip = gossipAddress(n)
	return m, true
}

// gossipAddress is where memberlist reaches n, host:port.
func gossipAddress(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

func (e *gossipEvents) NotifyJoin(n *memberlist.Node) { e.set(n) }

func (e *gossipEvents) NotifyUpdate(n *memberlist.Node) { e.set(n) }

func (e *gossipEvents) set(n *memberlist.Node) {
	p := (*gossipProvider)(e)
	m, ok := meta(n)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	_, known := p.members[n.Name]
	if !known && m.ID != p.self.ID && p.earlierRunLocked(n.Name, m) {
		// Gossip about a run that a later one at its address replaced.
		p.shadowed[n.Name] = m
		return
	}
	delete(p.shadowed, n.Name)
	t, suspect := p.suspects[n.Name]
	if suspect {
		t.Stop()
		delete(p.suspects, n.Name)
	}
	p.members[n.Name] = m
	switch {
	case m.ID == p.self.ID:
	case !known:
		p.logger.Info("cluster member joined", slog.String("member", m.Name), slog.String("address", m.address()))
		p.connectLocked(m)
		// A member at the same actor address that started earlier is an
		// earlier run of this one: it is gone, so its grains need not
		// wait for memberlist to find it dead.
		for name, old := range p.members {
			if name != n.Name && old.ID != p.self.ID && old.address() == m.address() && old.Started < m.Started {
				if t, ok := p.suspects[name]; ok {
					// memberlist found it dead already, and will
					// not speak of it again.
					t.Stop()
					delete(p.suspects, name)
				} else {
					p.shadowed[name] = old
				}
				delete(p.members, name)
				p.logger.Info("cluster member removed: it runs again at its address", slog.String("member", old.Name))
				p.downLocked(old)
			}
		}
	case suspect:
		p.logger.Info("cluster member answers again", slog.String("member", m.Name))
	}
	p.changedLocked()
}

// earlierRunLocked says whether m, not yet a member, is a run that one at
// its address started later (this node, or a member) has replaced. A run
// that does not say when it started (an earlier build) is never taken for
// an earlier one. p.mu is held.
func (p *gossipProvider) earlierRunLocked(name string, m memberMeta) bool {
	if m.Started == 0 {
		return false
	}
	if p.self.address() == m.address() && p.self.Started > m.Started {
		return true
	}
	for other, o := range p.members {
		if other != name && o.address() == m.address() && o.Started > m.Started {
			return true
		}
	}
	return false
}

// unshadowLocked makes members of the shadowed runs that no member
// replaces any more: a member left, and a clock that went back may have
// made the earlier run look like the later one. p.mu is held.
func (p *gossipProvider) unshadowLocked() {
	// The latest first: once it is a member, those before it at its
	// address stay aside.
	names := slices.SortedFunc(maps.Keys(p.shadowed), func(a, b string) int {
		return cmp.Compare(p.shadowed[b].Started, p.shadowed[a].Started)
	})
	for _, name := range names {
		m := p.shadowed[name]
		if _, ok := p.members[name]; ok || p.earlierRunLocked(name, m) {
			continue
		}
		delete(p.shadowed, name)
		p.members[name] = m
		p.logger.Info("cluster member joined", slog.String("member", m.Name), slog.String("address", m.address()))
		p.connectLocked(m)
	}
}

// NotifyLeave drops a member that left, at once; one that stopped answering
// only after the removal grace, unless it answers again meanwhile.
func (e *gossipEvents) NotifyLeave(n *memberlist.Node) {
	p := (*gossipProvider)(e)
	m, _ := meta(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	delete(p.shadowed, n.Name)
	known, ok := p.members[n.Name]
	if !ok {
		return
	}
	leaving := m.Leaving || known.Leaving
	// Whether it left or memberlist found it dead, it is gone now; the
	// grace is for protoactor, which bars a member it drops.
	p.downLocked(known)
	if leaving || p.cfg.RemovalGrace <= 0 {
		delete(p.members, n.Name)
		if leaving {
			p.logger.Info("cluster member left", slog.String("member", known.Name))
		} else {
			p.logger.Warn("cluster member stopped answering; removed", slog.String("member", known.Name))
		}
		p.unshadowLocked()
		p.changedLocked()
		return
	}
	if _, ok := p.suspects[n.Name]; ok {
		return
	}
	p.logger.Warn("cluster member stopped answering; it is removed unless it answers within the removal grace",
		slog.String("member", known.Name), slog.Duration("removal_grace", p.cfg.RemovalGrace))
	name := n.Name
	p.suspects[name] = time.AfterFunc(p.cfg.RemovalGrace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, ok := p.suspects[name]; !ok || p.stopped {
			return
		}
		delete(p.suspects, name)
		delete(p.members, name)
		p.logger.Info("cluster member removed", slog.String("member", known.Name))
		p.unshadowLocked()
		p.changedLocked()
	})
	// A suspect stays in protoactor's topology (the grace is for
	// that), but protoactor's log now speaks of a peer that is gone.
	p.tellAliveLocked()
}

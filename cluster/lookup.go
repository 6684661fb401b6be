package cluster

import (
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
)

// placementName is the name of the actor on every member that activates the
// grains that member owns.
const placementName = "sqljobber-placement"

// topology is an immutable view of the members, as one member sees it.
type topology struct {
	hash    uint64
	members []*cluster.Member
}

// owner returns the address of the member that owns identity of kind under
// this view: the member with the highest rendezvous score among those that
// host the kind. Everyone with the same view computes the same owner.
func (t *topology) owner(kind, identity string) string {
	var (
		best      string
		bestScore uint64
	)
	for _, m := range t.members {
		if !m.HasKind(kind) {
			continue
		}
		h := fnv.New64a()
		_, _ = h.Write([]byte(identity))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(m.Address()))
		if s := h.Sum64(); best == "" || s > bestScore {
			best, bestScore = m.Address(), s
		}
	}
	return best
}

// identityLookup is a cluster.IdentityLookup that activates a grain only on
// the member that owns its identity, and only when the caller's view of the
// membership is the owner's own view (same topology hash). A caller with a
// stale view gets no PID and retries. Under membership change there may be a
// moment with no owner. Members whose views agree never both activate; a
// member cut off from the others (or suspected while alive) still serves
// its own callers while the others serve the same IDs, which is why no
// correctness rests on one grain per ID: the ledger's conditional writes
// and run fencing do.
//
// A member that stopped answering (or is leaving) owns nothing, though it
// stays in protoactor's topology for the removal grace: its identities move
// to the others at once, and requests for them do not wait out the grace.
// Grains keep no state, so moving them, and back if it answers again, is
// free.
//
// It keeps no caller-side PID cache: a request for another member's grain
// asks that member's placement actor each time, which makes passivated
// grains free to go. A request for a grain this member owns and has active
// finds it in local, which the placement actor keeps: no message to the
// actor and back (two goroutine hand-offs) for each of a job's requests
// after the first. Only activation, which must happen once, goes through
// the actor.
type identityLookup struct {
	c         *cluster.Cluster
	logger    *slog.Logger
	timeout   time.Duration
	view      atomic.Pointer[topology]
	sub       *eventstream.Subscription
	placement *actor.PID
	stopOnce  sync.Once
	// local holds the grains the placement actor has activated and not
	// stopped, by ClusterIdentity.AsKey(); only the actor writes it.
	local sync.Map

	mu       sync.Mutex               // orders the view's updates
	latest   *cluster.ClusterTopology // protoactor's; nil before the first
	excluded map[string]bool          // IDs of members that own nothing
}

var _ cluster.IdentityLookup = (*identityLookup)(nil)

func newIdentityLookup(logger *slog.Logger, timeout time.Duration) *identityLookup {
	l := &identityLookup{logger: logger, timeout: timeout}
	l.view.Store(&topology{})
	return l
}

func (l *identityLookup) Setup(c *cluster.Cluster, _ []string, _ bool) {
	l.c = c
	props := actor.PropsFromProducer(func() actor.Actor {
		return &placementActor{l: l, grains: map[string]*actor.PID{}, keys: map[string]string{}}
	})
	pid, err := c.ActorSystem.Root.SpawnNamed(props, placementName)
	if err != nil {
		// Setup cannot return an error; a second lookup on one system is
		// a programming error.
		panic("cluster: spawn placement actor: " + err.Error())
	}
	// Set before the subscription, whose events alone make a view that
	// rebuildLocked sends the placement actor.
	l.placement = pid
	l.sub = c.ActorSystem.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*cluster.ClusterTopology); ok {
			l.mu.Lock()
			l.latest = t
			maps.DeleteFunc(l.excluded, func(id string, _ bool) bool { return !l.inLatestLocked(id) })
			l.rebuildLocked()
			l.mu.Unlock()
		}
	})
}

// exclude sets the members (by ID) that own nothing: those that stopped
// answering or are leaving. A member excluded before stays excluded, unless
// alive says it answers again, until protoactor's topology drops it: the
// membership drops it first, and it must not own its IDs in between.
func (l *identityLookup) exclude(ids, alive map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := maps.Clone(ids)
	if next == nil {
		next = map[string]bool{}
	}
	for id := range l.excluded {
		if !alive[id] && l.inLatestLocked(id) {
			next[id] = true
		}
	}
	if maps.Equal(next, l.excluded) {
		return
	}
	l.excluded = next
	l.rebuildLocked()
}

// inLatestLocked says whether protoactor's topology has the member. l.mu
// is held.
func (l *identityLookup) inLatestLocked(id string) bool {
	if l.latest == nil {
		return false
	}
	for _, m := range l.latest.Members {
		if m.Id == id {
			return true
		}
	}
	return false
}

// rebuildLocked makes the view from protoactor's topology without the
// excluded members, and tells the placement actor. Its hash covers the
// exclusions, so that callers and owners that disagree on them do not
// activate. l.mu is held.
func (l *identityLookup) rebuildLocked() {
	if l.latest == nil {
		return
	}
	view := &topology{hash: l.latest.TopologyHash}
	var out []string
	for _, m := range l.latest.Members {
		if l.excluded[m.Id] {
			out = append(out, m.Id)
			continue
		}
		view.members = append(view.members, m)
	}
	if len(out) > 0 {
		slices.Sort(out)
		h := fnv.New64a()
		for _, id := range out {
			_, _ = h.Write([]byte(id))
			_, _ = h.Write([]byte{0})
		}
		view.hash ^= h.Sum64()
	}
	l.view.Store(view)
	l.c.ActorSystem.Root.Send(l.placement, viewChanged{})
}

// viewChanged tells the placement actor that the view changed.
type viewChanged struct{}

// Get returns the PID of the grain, activating it on its owner, or nil if
// no owner would activate it under the caller's view right now.
func (l *identityLookup) Get(ci *cluster.ClusterIdentity) *actor.PID {
	return l.getWithin(ci, l.timeout)
}

// getWithin is Get, asking the owner for at most timeout.
func (l *identityLookup) getWithin(ci *cluster.ClusterIdentity, timeout time.Duration) *actor.PID {
	view := l.view.Load()
	owner := view.owner(ci.Kind, ci.Identity)
	if owner == "" {
		return nil
	}
	target := l.placement
	if owner != l.c.ActorSystem.Address() {
		target = actor.NewPID(owner, placementName)
	} else if pid, ok := l.local.Load(ci.AsKey()); ok {
		// Active here, and this member owns it under the view the
		// caller sees (its own): what the actor would answer. A grain
		// that stops meanwhile answers with a dead letter, and the
		// caller asks again, as it would after the actor's answer.
		return pid.(*actor.PID)
	}
	res, err := l.c.ActorSystem.Root.RequestFuture(target,
		&cluster.ActivationRequest{ClusterIdentity: ci, TopologyHash: view.hash}, timeout).Result()
	if err != nil {
		return nil
	}
	if r, ok := res.(*cluster.ActivationResponse); ok && !r.Failed {
		return r.Pid
	}
	return nil
}

// RemovePid has nothing to evict: no PID is cached.
func (l *identityLookup) RemovePid(*cluster.ClusterIdentity, *actor.PID) {}

func (l *identityLookup) Shutdown() {
	l.stopOnce.Do(func() {
		if l.sub != nil {
			l.c.ActorSystem.EventStream.Unsubscribe(l.sub)
		}
		if l.placement != nil {
			_ = l.c.ActorSystem.Root.PoisonFuture(l.placement).Wait()
		}
	})
}

// activeGrains reports how many grains this member hosts.
func (l *identityLookup) activeGrains() int {
	res, err := l.c.ActorSystem.Root.RequestFuture(l.placement, countGrains{}, l.timeout).Result()
	if err != nil {
		return 0
	}
	n, _ := res.(int)
	return n
}

type countGrains struct{}

// countKeys asks how many grains the placement actor can find by PID: as
// many as are active, once the stopped ones' Terminated has arrived.
type countKeys struct{}

// placementActor activates and tracks the grains its member owns.
type placementActor struct {
	l      *identityLookup
	grains map[string]*actor.PID // by ClusterIdentity.AsKey()
	// keys is each grain's key by its PID's ID: a stopped grain is found
	// at once. Found by scanning grains, the thousands of one-row jobs'
	// grains that passivate together cost the idle server a tenth of the
	// machine's CPU (a scan of every grain for each one stopped).
	keys map[string]string
}

func (p *placementActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *cluster.ActivationRequest:
		ctx.Respond(p.activate(ctx, msg))
	case *actor.Terminated:
		key, ok := p.keys[msg.Who.GetId()]
		if !ok {
			return
		}
		delete(p.keys, msg.Who.GetId())
		if pid := p.grains[key]; pid.Equal(msg.Who) {
			delete(p.grains, key)
			p.l.local.CompareAndDelete(key, pid)
			if k, ok := p.l.c.TryGetClusterKind(kindOf(key)); ok {
				k.Dec()
			}
		}
	case viewChanged:
		// Grains this member no longer owns stop; their state lives in
		// durable stores, and the new owner activates them on demand.
		view := p.l.view.Load()
		self := ctx.ActorSystem().Address()
		for key, pid := range p.grains {
			kind, identity := splitKey(key)
			if view.owner(kind, identity) != self {
				p.l.local.CompareAndDelete(key, pid)
				ctx.Stop(pid)
			}
		}
	case countGrains:
		ctx.Respond(len(p.grains))
	case countKeys:
		ctx.Respond(len(p.keys))
	}
}

func (p *placementActor) activate(ctx actor.Context, req *cluster.ActivationRequest) *cluster.ActivationResponse {
	view := p.l.view.Load()
	ci := req.ClusterIdentity
	if req.TopologyHash != view.hash || view.owner(ci.Kind, ci.Identity) != ctx.ActorSystem().Address() {
		// The caller sees another membership, or this member does not
		// own the identity: activating here could make a second grain.
		return &cluster.ActivationResponse{Failed: true, TopologyHash: view.hash}
	}
	key := ci.AsKey()
	if pid, ok := p.grains[key]; ok {
		return &cluster.ActivationResponse{Pid: pid, TopologyHash: view.hash}
	}
	kind, ok := p.l.c.TryGetClusterKind(ci.Kind)
	if !ok {
		p.l.logger.Error("activation of unknown grain kind", slog.String("kind", ci.Kind))
		return &cluster.ActivationResponse{Failed: true, TopologyHash: view.hash}
	}
	pid, err := ctx.SpawnNamed(cluster.WithClusterIdentity(kind.Props, ci), ci.Kind+"/"+ci.Identity)
	if err != nil {
		// The name is still taken by a grain that is stopping.
		return &cluster.ActivationResponse{Failed: true, TopologyHash: view.hash}
	}
	kind.Inc()
	p.grains[key] = pid
	p.keys[pid.Id] = key
	p.l.local.Store(key, pid)
	return &cluster.ActivationResponse{Pid: pid, TopologyHash: view.hash}
}

// ClusterIdentity.AsKey is kind + "/" + identity; kinds contain no "/".
func splitKey(key string) (kind, identity string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

func kindOf(key string) string {
	k, _ := splitKey(key)
	return k
}

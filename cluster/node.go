package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/internal/retry"
)

// Defaults for Config.
const (
	NameDefault           = "sql-jobber"
	HostDefault           = "127.0.0.1"
	RequestTimeoutDefault = 10 * time.Second
	// activationTimeout bounds one ask of a placement actor. An
	// activation takes well under a millisecond; an ask of a member that
	// died waits this long before the request asks again, under the
	// membership's next view.
	activationTimeout = 2 * time.Second
	// dialTimeout bounds connecting to another member.
	dialTimeout = 2 * time.Second
)

// Config configures a cluster node.
type Config struct {
	// Name is the cluster's name; members of different names ignore each
	// other.
	Name string
	// Host and Port are where this node's actor remote listens; Port 0
	// picks a free port.
	Host string
	Port int
	// Advertise is the host:port other members reach the actor remote at
	// (when Host is, say, 0.0.0.0); empty means the address listened on.
	Advertise string
	// Membership makes the node a member of a gossiped cluster; nil runs
	// it alone.
	Membership *MembershipConfig
	// Info is what the node tells other members about itself.
	Info NodeInfo
	// Kinds are the grain kinds this node hosts.
	Kinds []*cluster.Kind
	// RequestTimeout bounds a grain request whose context has no
	// deadline.
	RequestTimeout time.Duration
	// TLS, if set, makes the actor port speak TLS: mutual TLS when CAFile
	// is set.
	TLS *TLSConfig
	// MemberDown, if set, is called on a goroutine of its own, once per
	// member incarnation, as soon as that member is found gone:
	// memberlist declared it dead, it left, or a broken actor connection
	// to it was followed by a refused TCP connection to its actor address
	// (nothing listens there any more). The member's State is
	// MemberLeaving if it was leaving or draining, MemberSuspect
	// otherwise. A restart at a member's actor address reports the run
	// it replaced.
	//
	// A member memberlist declared dead may yet answer again (a busy
	// machine): it then owns grains again, and is not reported twice.
	MemberDown func(sqljobber.Member)
	Logger     *slog.Logger
}

// WithDefaults returns c with zero values replaced by defaults.
func (c Config) WithDefaults() Config {
	c.Name = cmp.Or(c.Name, NameDefault)
	c.Host = cmp.Or(c.Host, HostDefault)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, RequestTimeoutDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Node is this process's member of the cluster.
type Node struct {
	cfg      Config
	system   *actor.ActorSystem
	cluster  *cluster.Cluster
	lookup   *identityLookup
	provider cluster.ClusterProvider
	gossip   *gossipProvider // nil when the node runs alone
	peers    *peerLogState

	mu       sync.Mutex
	started  bool
	stopped  bool
	draining bool
}

// NewNode prepares a node; Start joins it.
func NewNode(cfg Config) (*Node, error) {
	cfg = cfg.WithDefaults()
	if len(cfg.Kinds) == 0 {
		return nil, errors.New("cluster: no grain kinds")
	}
	if cfg.Membership != nil {
		if err := cfg.Membership.validate(); err != nil {
			return nil, err
		}
	}
	creds, err := actorCredentials(cfg)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	// protoactor narrates its routine at Info, and repeats itself about
	// peers that are gone: see peerLog.
	peers := newPeerLogState()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(peerLog{Handler: logger.Handler(), min: slog.LevelWarn, peers: peers}).With(slog.String("component", "protoactor"))
	}))
	n := &Node{cfg: cfg, system: system, peers: peers, lookup: newIdentityLookup(logger, activationTimeout)}
	if cfg.Membership != nil {
		n.gossip = newGossipProvider(*cfg.Membership, cfg.Info, logger, peers, n.lookup.exclude, cfg.MemberDown)
		n.gossip.self.TLS = cfg.TLS != nil
		n.provider = n.gossip
	} else {
		n.provider = &singleProvider{}
	}
	// protoactor dials a peer without blocking and, when the stream then
	// fails (the peer is gone), drops the connection without closing it:
	// grpc retries it in the background forever. A blocking dial with a
	// timeout closes a connection that fails; the error it returns then
	// says why it failed, not only that it timed out.
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(creds.client), grpc.WithBlock(), grpc.WithReturnConnectionError(),
		//lint:ignore SA1019 the only dial timeout grpc.Dial (what protoactor calls) honours
		grpc.WithTimeout(dialTimeout)}
	if n.gossip != nil {
		// A refused connection starts the port check at once (see
		// dialActor). Members dial each other directly: no proxy of
		// the environment stands between them.
		dialOpts = append(dialOpts, grpc.WithContextDialer(n.gossip.dialActor))
	}
	opts := []remote.ConfigOption{
		// The default preallocates a million-slot queue per peer.
		remote.WithEndpointWriterQueueSize(10_000),
		remote.WithEndpointManagerQueueSize(10_000),
		remote.WithDialOptions(dialOpts...),
	}
	if creds.server != nil {
		opts = append(opts, remote.WithServerOptions(grpc.Creds(creds.server)))
	}
	if cfg.Advertise != "" {
		opts = append(opts, remote.WithAdvertisedHost(cfg.Advertise))
	}
	remoteCfg := remote.Configure(cfg.Host, cfg.Port, opts...)
	clusterCfg := cluster.Configure(cfg.Name, n.provider, n.lookup, remoteCfg,
		cluster.WithKinds(cfg.Kinds...),
		cluster.WithRequestTimeout(cfg.RequestTimeout))
	n.cluster = cluster.New(system, clusterCfg)
	return n, nil
}

// Start starts the actor remote and joins the cluster.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.stopped {
		return errors.New("cluster: node already started")
	}
	// protoactor panics when it cannot listen; check first to return an
	// error that says why.
	if n.cfg.Port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.cfg.Port)))
		if err != nil {
			return fmt.Errorf("cluster: listen: %w", err)
		}
		l.Close()
	}
	if err := n.startMember(); err != nil {
		// The node cannot start again: protoactor's cluster starts once.
		n.stopped = true
		n.peers.stopping.Store(true)
		n.teardown()
		return err
	}
	n.started = true
	return ctx.Err()
}

// startMember starts protoactor's cluster member, which panics where it
// could return an error (the provider's, ErrRefused among them).
func (n *Node) startMember() (err error) {
	defer func() {
		r := recover()
		switch e, ok := r.(error); {
		case ok && errors.Is(e, ErrRefused):
			err = e
		case ok:
			err = fmt.Errorf("cluster: start member: %w", e)
		case r != nil:
			err = fmt.Errorf("cluster: start member: %v", r)
		}
	}()
	n.cluster.StartMember()
	return nil
}

// teardown stops what a failed start started: the gossip (this node may
// have been admitted by some before the others refused it), the
// placement, the actor remote.
func (n *Node) teardown() {
	defer func() {
		// protoactor's shutdown of a remote that never listened panics.
		if r := recover(); r != nil {
			n.cfg.Logger.Debug("stopping a node that did not start", slog.Any("panic", r))
		}
	}()
	_ = n.provider.Shutdown(true)
	n.lookup.Shutdown()
	n.cluster.Shutdown(false)
}

// SetDraining tells the other members that this node is stopping: from then
// on it shows as sqljobber.MemberLeaving in everyone's Members(), though it
// still owns its grains until it leaves.
func (n *Node) SetDraining() {
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	if n.gossip != nil {
		n.gossip.setDraining()
	}
}

// Stop leaves the cluster and stops every actor. It is idempotent and safe
// before Start.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.stopped = true
	// What protoactor says from now on is about its own shutdown.
	n.peers.stopping.Store(true)
	if !n.started {
		n.system.Shutdown()
		return
	}
	// Leave first, so the others stop sending here; protoactor's own
	// shutdown only calls the provider on its graceful path, which
	// sleeps two seconds for an ownership handover this project does
	// not use (grain state is durable elsewhere).
	if err := n.provider.Shutdown(true); err != nil {
		// Most often every member is stopping at once and none is left
		// to hear it; a member that is not finds this one dead instead.
		n.cfg.Logger.Info("left the cluster unheard", slog.Any("error", err))
	}
	// Read once the provider, which updates protoactor's unlocked list,
	// has stopped.
	members := n.cluster.MemberList.Members().Members()
	n.lookup.Shutdown()
	// protoactor's non-graceful shutdown stops its server but not the
	// connections it opened to the other members (its graceful one waits
	// up to ten seconds for theirs to close): close them by telling the
	// endpoint manager that every other member's endpoint is gone.
	for _, m := range members {
		if m.Id != n.system.ID {
			n.system.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: m.Address()})
		}
	}
	n.cluster.Shutdown(false)
}

// System is the node's actor system, for node-local actors.
func (n *Node) System() *actor.ActorSystem { return n.system }

// Address is the node's actor address (host:port).
func (n *Node) Address() string { return n.system.Address() }

// ID is the node's member ID.
func (n *Node) ID() string { return n.system.ID }

// RequestTimeout bounds a request whose context has no deadline.
func (n *Node) RequestTimeout() time.Duration { return n.cfg.RequestTimeout }

// Members describes the cluster's members as this node sees them, this one
// first; none before Start or after Stop.
func (n *Node) Members() []sqljobber.Member {
	n.mu.Lock()
	started, draining := n.started && !n.stopped, n.draining
	n.mu.Unlock()
	if !started {
		return nil
	}
	if n.gossip != nil {
		return n.gossip.infos()
	}
	state := sqljobber.MemberAlive
	if draining {
		state = sqljobber.MemberLeaving
	}
	return []sqljobber.Member{{Name: n.cfg.Info.Name, ID: n.system.ID, Address: n.system.Address(), API: n.cfg.Info.API,
		Queues: n.cfg.Info.Queues, Self: true, State: state}}
}

// GossipAddress is the host:port the node's gossip listens on, for others
// to join; "" when it runs alone.
func (n *Node) GossipAddress() string {
	if n.gossip == nil || n.gossip.ml == nil {
		return ""
	}
	ln := n.gossip.ml.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

// ActiveGrains counts the grains this node hosts.
func (n *Node) ActiveGrains() int { return n.lookup.activeGrains() }

// ErrUnavailable is returned when no member would activate a grain before
// the request's deadline (e.g. while the membership changes).
var ErrUnavailable = fmt.Errorf("cluster: %w", sqljobber.ErrUnavailable)

// Request sends msg to the grain kind/identity and waits for its reply,
// activating the grain on its owner if needed. A request that finds the
// grain stopping, or no owner, is retried with backoff until ctx ends.
func (n *Node) Request(ctx context.Context, kind, identity string, msg proto.Message) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		// The bound is for the whole request, retries included, as the
		// grain's own deadline is.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
	}
	ci := cluster.NewClusterIdentity(identity, kind)
	var res any
	// While no member would activate the grain, or it stopped under the
	// request, ask again.
	err := retry.Do(ctx, retry.Backoff{First: 5 * time.Millisecond, Max: 250 * time.Millisecond}, func(ctx context.Context) (bool, error) {
		dl, _ := ctx.Deadline()
		timeout := time.Until(dl)
		if timeout <= 0 {
			return true, context.DeadlineExceeded
		}
		pid := n.lookup.getWithin(ci, min(n.lookup.timeout, timeout))
		if pid == nil {
			return false, nil
		}
		var err error
		res, err = n.system.Root.RequestFuture(pid, msg, max(time.Until(dl), time.Millisecond)).Result()
		switch {
		case errors.Is(err, actor.ErrTimeout) || errors.Is(err, remote.ErrTimeout):
			return true, context.DeadlineExceeded
		case errors.Is(err, actor.ErrDeadLetter) || errors.Is(err, remote.ErrDeadLetter):
			// The grain stopped (passivated or moved): ask again.
			return false, nil
		}
		return true, err
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return nil, err
	}
	return res, nil
}

// singleProvider is the membership of a node that runs alone: itself.
type singleProvider struct{}

var _ cluster.ClusterProvider = (*singleProvider)(nil)

func (p *singleProvider) StartMember(c *cluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(cluster.Members{{
		Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds(),
	}})
	return nil
}

func (p *singleProvider) StartClient(*cluster.Cluster) error {
	return errors.New("cluster: clients are not supported")
}
func (p *singleProvider) Shutdown(bool) error { return nil }

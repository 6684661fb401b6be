package cluster

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	// probeTimeout bounds the check of a peer's actor port after its
	// connection broke. A refusal comes back at once; a host that does
	// not answer at all is memberlist's to find dead.
	probeTimeout = time.Second
	// reportedKeep is how long a member found down is remembered, so
	// that it is reported once: far longer than memberlist takes to
	// forget it.
	reportedKeep = time.Hour
)

// connectActorName is an actor on every member that takes the message that
// opens a connection to it, and ignores it.
const connectActorName = "sqljobber-connect"

// connectLocked opens this node's connection to a member that joined, by
// sending it a message: a connection that breaks says at once that its
// member may be gone (see endpointTerminated), where memberlist takes
// seconds, but protoactor opens one only to send, and a member that nobody
// sent anything to yet (one that just joined) would have none. p.mu is
// held.
func (p *gossipProvider) connectLocked(m memberMeta) {
	if p.c == nil || m.ID == p.self.ID {
		return
	}
	p.c.ActorSystem.Root.Send(actor.NewPID(m.address(), connectActorName), &emptypb.Empty{})
}

// endpointTerminated follows protoactor's news that the connection to the
// actor remote at addr broke. A member whose process is gone (crashed,
// killed) is known so within milliseconds when its actor port refuses
// connections, where memberlist takes seconds to find it dead: it is then
// reported down at once, and owns no grains from then on, as a member
// memberlist suspects. A port that does not refuse (a network fault, a
// peer that refused the handshake) tells nothing: memberlist decides.
func (p *gossipProvider) endpointTerminated(ev any) {
	if e, ok := ev.(*remote.EndpointTerminatedEvent); ok {
		p.connectionLost(e.Address)
	}
}

// connectionLost checks, unless a check is under way, whether the actor port
// at addr refuses connections, after a connection to it broke or was refused
// (see dialActor).
func (p *gossipProvider) connectionLost(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if _, busy := p.probing[addr]; busy {
		// A connection to the address broke again while its port was
		// being checked: a later run there (a restart) may have gone
		// since the check began, and the port be refusing only now.
		// The address is checked again once this check ends.
		p.probing[addr] = true
		return
	}
	if len(p.runsAtLocked(addr)) == 0 {
		return
	}
	p.probing[addr] = false
	p.wg.Add(1)
	// protoactor's event stream and grpc's dials call this on their own
	// goroutines, which must not wait for a dial.
	go p.probe(addr)
}

// probe checks the actor port at addr, and again as long as connections
// to it broke during a check. When it refuses, every run at addr that was
// a member when that check began is gone; a run that joined since (a
// restart at the same port) is not judged by it.
func (p *gossipProvider) probe(addr string) {
	defer p.wg.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.stopped {
		runs := p.runsAtLocked(addr)
		p.mu.Unlock()
		refused := p.refuses(addr)
		p.mu.Lock()
		if refused && !p.stopped {
			found := false
			for _, m := range runs {
				// memberlist names members by their ID; one it
				// dropped meanwhile it reported itself.
				if _, member := p.members[m.ID]; !member || p.gone[m.ID] {
					continue
				}
				p.logger.Warn("cluster member is gone: its actor port refuses connections", slog.String("member", m.Name), slog.String("address", addr))
				p.gone[m.ID] = true
				p.downLocked(m)
				found = true
			}
			if found {
				p.changedLocked()
			}
		}
		if again := p.probing[addr]; refused || !again {
			break
		}
		p.probing[addr] = false
	}
	delete(p.probing, addr)
}

// runsAtLocked are the members at actor address addr that a broken
// connection may say are gone: not this node, not found gone already, and
// not leaving (a member that is leaving is expected to close its port, and
// memberlist reports it gone within moments). p.mu is held.
func (p *gossipProvider) runsAtLocked(addr string) []memberMeta {
	var runs []memberMeta
	for _, m := range p.members {
		if m.ID != p.self.ID && m.address() == addr && !p.gone[m.ID] && !m.Leaving {
			runs = append(runs, m)
		}
	}
	return runs
}

// Probes of a port whose connection broke: a process that is being killed
// drops its connections a moment before its listening socket, so a first
// dial may still be accepted by the kernel. probeTries dials, probePause
// apart, tell the two apart.
const (
	probeTries = 5
	probePause = 25 * time.Millisecond
)

// portRefuses says whether TCP connections to addr are refused: nothing
// listens there.
func portRefuses(addr string) bool {
	for try := 0; try < probeTries; try++ {
		if try > 0 {
			time.Sleep(probePause)
		}
		conn, err := net.DialTimeout("tcp", addr, probeTimeout)
		if err != nil {
			return errors.Is(err, syscall.ECONNREFUSED)
		}
		_ = conn.Close()
	}
	return false
}

// downLocked calls MemberDown for m, once per run (member ID), on a
// goroutine of its own: what it does is the caller's, and must not hold up
// the membership. p.mu is held.
func (p *gossipProvider) downLocked(m memberMeta) {
	if p.memberDown == nil || m.ID == p.self.ID || p.stopped {
		return
	}
	now := time.Now()
	if _, ok := p.reported[m.ID]; ok {
		return
	}
	maps.DeleteFunc(p.reported, func(_ string, at time.Time) bool { return now.Sub(at) > reportedKeep })
	p.reported[m.ID] = now
	go p.memberDown(m.member(false, true))
}

// dialActor opens the TCP connections of this node's grpc clients to the
// other members' actor ports, and reports a refused one to connectionLost.
// protoactor tries a failed dial five times, 2 s apart, before it publishes
// EndpointTerminatedEvent: a member killed before anyone had a connection to
// it (just after it joined, or restarted) would be reported down only then,
// and memberlist never finds one whose gossip still answers.
func (p *gossipProvider) dialActor(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Not on the dialling goroutine: a caller holding p.mu may be
		// waiting on this dial through protoactor.
		go p.connectionLost(addr)
	}
	return conn, err
}

package cluster

import (
	"errors"
	"log/slog"
	"maps"
	"net"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/remote"
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

// endpointTerminated follows protoactor's news that the connection to the
// actor remote at addr broke. A member whose process is gone (crashed,
// killed) is known so within milliseconds when its actor port refuses
// connections, where memberlist takes seconds to find it dead: it is then
// reported down at once, and owns no grains from then on, as a member
// memberlist suspects. A port that does not refuse (a network fault, a
// peer that refused the handshake) tells nothing: memberlist decides.
func (p *gossipProvider) endpointTerminated(ev any) {
	e, ok := ev.(*remote.EndpointTerminatedEvent)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.probing[e.Address] {
		return
	}
	var m memberMeta
	for _, o := range p.members {
		// A member that is leaving is expected to close its port, and
		// memberlist reports it gone within moments.
		if o.ID != p.self.ID && o.address() == e.Address && !p.gone[o.ID] && !o.Leaving {
			m = o
		}
	}
	if m.ID == "" {
		return
	}
	p.probing[e.Address] = true
	p.wg.Add(1)
	// protoactor publishes the event on its own goroutines, which must
	// not wait for a dial.
	go func() {
		defer p.wg.Done()
		refused := portRefuses(m.address())
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.probing, m.address())
		if !refused || p.stopped {
			return
		}
		// memberlist names members by their ID.
		if _, member := p.members[m.ID]; !member {
			// memberlist dropped it meanwhile, and reported it.
			return
		}
		p.logger.Warn("cluster member is gone: its actor port refuses connections", slog.String("member", m.Name), slog.String("address", m.address()))
		p.gone[m.ID] = true
		p.downLocked(m)
		p.changedLocked()
	}()
}

// portRefuses says whether a TCP connection to addr is refused: nothing
// listens there.
func portRefuses(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err == nil {
		_ = conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
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

package cluster

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// peerLogRepeat is how long a protoactor warning or error about one peer
// is logged at DEBUG after it was logged at its own level.
const peerLogRepeat = time.Minute

// peerLogMaxKeys bounds the remembered (message, peer) pairs.
const peerLogMaxKeys = 1024

// peerLog is the handler of protoactor's log. protoactor tells of a peer
// that went away many times over, at ERROR and WARN: for each connection
// attempt, each gossip round, each stream of a peer that left (50 lines
// for one graceful leave, 40 more while a dead peer is suspected). The
// membership says it once, in its own words. So peerLog logs at DEBUG:
//   - whatever protoactor says once this node is stopping;
//   - records about a peer that is not an alive member: gone, leaving or
//     suspected;
//   - a record about an alive peer that was logged at its own level less
//     than peerLogRepeat ago, for the same message and peer. A lasting
//     fault, such as a member whose actor port cannot be reached while its
//     gossip can, still shows once a minute.
//
// Records that name no peer (a grain's panic, "[Supervision]", say) keep
// their level: each may be a different fault.
//
// protoactor's INFO narrates its routine and is dropped (below min).
type peerLog struct {
	slog.Handler
	min   slog.Level
	peers *peerLogState
}

// peerLogState is shared by a node's peerLog handlers.
type peerLogState struct {
	stopping atomic.Bool
	// alive holds the actor addresses and member IDs of the alive peers;
	// nil until a membership is known, and then every peer counts as
	// alive.
	alive atomic.Pointer[map[string]bool]
	now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time // when a (message, peer) was last logged at its level
}

func newPeerLogState() *peerLogState {
	return &peerLogState{now: time.Now, last: map[string]time.Time{}}
}

// setAlive records the alive peers, by actor address and member ID.
func (s *peerLogState) setAlive(keys map[string]bool) { s.alive.Store(&keys) }

// quiet says whether a record of this message about peer (an address or a
// member ID, "" for none) should go to DEBUG, and notes it if not.
func (s *peerLogState) quiet(msg, addr, id string) bool {
	if s.stopping.Load() {
		return true
	}
	if addr == "" && id == "" {
		return false
	}
	if alive := s.alive.Load(); alive != nil && !(*alive)[addr] && !(*alive)[id] {
		return true
	}
	key := msg + "\x00" + addr + "\x00" + id
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.last[key]; ok && now.Sub(at) < peerLogRepeat {
		return true
	}
	if len(s.last) >= peerLogMaxKeys {
		for k, at := range s.last {
			if now.Sub(at) >= peerLogRepeat {
				delete(s.last, k)
			}
		}
		if len(s.last) >= peerLogMaxKeys {
			// More faults at once than are remembered: the first
			// peerLogMaxKeys of them showed.
			return true
		}
	}
	s.last[key] = now
	return false
}

func (h peerLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h peerLog) Handle(ctx context.Context, r slog.Record) error {
	var addr, id string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "address":
			addr = a.Value.String()
		case "MemberId":
			id = a.Value.String()
		}
		return true
	})
	if h.peers.quiet(r.Message, addr, id) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h peerLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return peerLog{Handler: h.Handler.WithAttrs(attrs), min: h.min, peers: h.peers}
}

func (h peerLog) WithGroup(name string) slog.Handler {
	return peerLog{Handler: h.Handler.WithGroup(name), min: h.min, peers: h.peers}
}

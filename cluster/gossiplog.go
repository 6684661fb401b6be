package cluster

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// refusalRepeat is how long a refusal of one peer, for one reason, is not
// logged again: a peer that keeps knocking would flood the log.
const refusalRepeat = time.Minute

// refusalMaxKeys bounds the remembered refusals.
const refusalMaxKeys = 1024

// onceAMinute says whether something (a key) was not said in the last
// refusalRepeat, and notes that it is said now.
type onceAMinute struct {
	now func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
}

func newOnceAMinute() *onceAMinute {
	return &onceAMinute{now: time.Now, last: map[string]time.Time{}}
}

func (o *onceAMinute) first(key string) bool {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if at, ok := o.last[key]; ok && now.Sub(at) < refusalRepeat {
		return false
	}
	if len(o.last) >= refusalMaxKeys {
		for k, at := range o.last {
			if now.Sub(at) >= refusalRepeat {
				delete(o.last, k)
			}
		}
		if len(o.last) >= refusalMaxKeys {
			// More peers refused at once than are remembered: the
			// first refusalMaxKeys of them showed.
			return false
		}
	}
	o.last[key] = now
	return true
}

// memberlistLog is the writer of memberlist's log.Logger (one Write per
// line). memberlist narrates at length, so its lines go to DEBUG, as
// before; but gossip refused for want of the cluster's secret is an
// operator's concern, which memberlist tells once per packet in its own
// words: that becomes one WARN line per peer and reason a minute.
type memberlistLog struct {
	logger *slog.Logger
	// encrypted says whether this node has a secret: it tells what a
	// line about gossip it could not read means.
	encrypted bool
	once      *onceAMinute
}

func (w memberlistLog) Write(b []byte) (int, error) {
	line := strings.TrimRight(string(b), "\n")
	if remote, reason, ok := gossipRefusal(line, w.encrypted); ok && w.once.first(hostOf(remote)+"\x00"+reason) {
		w.logger.Warn("refused gossip", slog.String("remote", remote), slog.String("reason", reason))
	}
	w.logger.Debug(line)
	return len(b), nil
}

// gossipRefusal reads a line of memberlist's about gossip from remote that
// it could not read for want of the right secret, and says why in words an
// operator acts on. Stream (TCP) lines name the peer's ephemeral port, so
// refusals are counted by host.
func gossipRefusal(line string, encrypted bool) (remote, reason string, ok bool) {
	i := strings.LastIndex(line, " from=")
	if i < 0 {
		return "", "", false
	}
	remote, msg := line[i+len(" from="):], line[:i]
	switch {
	case strings.Contains(msg, "Decrypt packet failed"):
		// A packet in the clear fails the same way as one encrypted
		// with another secret.
		reason = "not encrypted with this cluster's secret"
	case strings.Contains(msg, "failed to receive: no installed keys could decrypt"):
		reason = "encrypted with a secret this node does not have"
	case strings.Contains(msg, "failed to receive: encryption is configured but remote state is not encrypted"):
		reason = "not encrypted: the other node has no secret"
	case strings.Contains(msg, "failed to receive: remote state is encrypted and encryption is not configured"):
		reason = "encrypted, and this node has no secret"
	case !encrypted && strings.Contains(msg, "Failed to decode indirect ping request"):
		// An encrypted packet starts with its encryption version, 1,
		// which a node without a secret reads as an indirect ping.
		reason = "unreadable; encrypted? this node has no secret"
	default:
		return "", "", false
	}
	return remote, reason, true
}

// joinRefusal says, from the error of a join, whether the cluster's secret
// and this node's differ, and how.
func joinRefusal(err error) (string, bool) {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "remote error: no installed keys could decrypt"):
		// The cluster read none of it, but its answer this node could.
		return "gossip secrets differ: the cluster has no key for this node's first secret", true
	case strings.Contains(msg, "no installed keys could decrypt"):
		return "gossip secrets differ: the cluster encrypts with a secret this node does not have", true
	case strings.Contains(msg, "remote state is encrypted and encryption is not configured"):
		return "gossip secrets differ: the cluster encrypts its gossip, and this node has no secret", true
	case strings.Contains(msg, "encryption is configured but remote state is not encrypted"):
		return "gossip secrets differ: the cluster's gossip is not encrypted, and this node has a secret", true
	}
	return "", false
}

// hostOf is the host of a host:port address, or the address if it has no
// port.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

package cluster

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlistConfig is memberlist's configuration for this node.
func (p *gossipProvider) memberlistConfig() (*memberlist.Config, error) {
	var err error
	conf := memberlist.DefaultLANConfig()
	conf.Name = p.self.ID
	if conf.BindAddr, conf.BindPort, err = splitHostPort(p.cfg.Bind); err != nil {
		return nil, fmt.Errorf("cluster bind address: %w", err)
	}
	conf.AdvertisePort = conf.BindPort
	if p.cfg.Advertise != "" {
		if conf.AdvertiseAddr, conf.AdvertisePort, err = splitHostPort(p.cfg.Advertise); err != nil {
			return nil, fmt.Errorf("cluster advertise address: %w", err)
		}
	}
	if len(p.cfg.Secrets) > 0 {
		secrets := make([][]byte, len(p.cfg.Secrets))
		for i, s := range p.cfg.Secrets {
			secrets[i] = bytes.Clone(s)
		}
		if conf.Keyring, err = memberlist.NewKeyring(secrets, secrets[0]); err != nil {
			return nil, fmt.Errorf("cluster: gossip secrets: %w", err)
		}
		// Gossip in the clear, or under another secret, is dropped.
		conf.GossipVerifyIncoming, conf.GossipVerifyOutgoing = true, true
	}
	// A member suspected by fewer peers than memberlist expects to
	// confirm it (in a small cluster, or one where a restarted member's
	// earlier run still counts) is declared dead only as the suspicion
	// timeout falls from its maximum: 6x the minimum by default, 11 s
	// instead of 4 in a cluster of three. Its IDs wait that long, so the
	// maximum is kept at 3x (7 s there).
	conf.SuspicionMaxTimeoutMult = 3
	conf.Delegate = (*gossipDelegate)(p)
	conf.Events = (*gossipEvents)(p)
	conf.Alive = (*gossipGate)(p)
	conf.Merge = (*gossipGate)(p)
	conf.Logger = log.New(memberlistLog{logger: p.logger.With(slog.String("component", "memberlist")),
		encrypted: len(p.cfg.Secrets) > 0, once: newOnceAMinute()}, "", 0)
	if p.cfg.Tune != nil {
		p.cfg.Tune(conf)
	}
	return conf, nil
}

// tryJoin joins the cluster through the members of cfg.Join. It returns
// an error wrapping ErrRefused if the cluster refused this node, or this
// node the cluster; else the error of a cluster not reached.
func (p *gossipProvider) tryJoin() (refusal, err error) {
	p.mu.Lock()
	p.joining, p.joinRefusal = true, nil
	p.mu.Unlock()
	_, err = p.ml.Join(p.cfg.Join)
	p.mu.Lock()
	refused := p.joinRefusal
	p.joining, p.joinRefusal = false, nil
	p.mu.Unlock()
	if err == nil {
		return nil, nil
	}
	// memberlist keeps only the text of the errors of a join.
	if refused != nil && strings.Contains(err.Error(), refused.Error()) {
		return refused, err
	}
	if reason, ok := joinRefusal(err); ok {
		return fmt.Errorf("%w: %s", ErrRefused, reason), err
	}
	return nil, err
}

// rejoin keeps trying to join until it has or the provider stops. A
// refusal may end when the other side is set right: it is tried again too.
func (p *gossipProvider) rejoin() {
	defer p.wg.Done()
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			refusal, err := p.tryJoin()
			switch {
			case err == nil:
				p.logger.Info("joined the cluster", slog.Any("join", p.cfg.Join))
				return
			case refusal != nil && p.refusals.first("join\x00"+refusal.Error()):
				p.logger.Error("not admitted to the cluster; trying again", slog.Any("join", p.cfg.Join), slog.Any("error", refusal))
			}
		}
	}
}

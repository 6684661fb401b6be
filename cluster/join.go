package cluster

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	// pushPullInterval is how often a member trades its whole state with
	// another (memberlist's LAN default: 30 s). A member that missed the
	// gossip of a change (a run joined, a member drains) learns of it
	// then at the latest. memberlist stretches it in clusters of more
	// than 32 members.
	pushPullInterval = 10 * time.Second
	// exchangeParallel bounds the state exchanges a node that joined
	// makes at once (see exchangeState).
	exchangeParallel = 8
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
	conf.PushPullInterval = pushPullInterval
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
		p.exchangeState()
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

// exchangeState trades this node's state for each member's, as a join does
// (memberlist's push/pull, over TCP), with every member the join brought in
// but the seeds it went through, at most exchangeParallel at a time.
//
// A join tells only the seeds: the rest hear of this node from gossip,
// which sends the news a few times (memberlist's retransmit limit) to
// random members, earlier runs of this node (whose address is its own)
// among them. A member that missed it would learn of this run only at its
// next push/pull, and a node that joins through it would not learn of this
// one either; nor would this node learn of a member the seeds missed. Both
// sides' gates judge the nodes an exchange brings in, as in a join.
//
// A member that cannot be reached is left to gossip; the seeds found it
// alive, so that is seldom, and costs at most memberlist's TCP timeout.
func (p *gossipProvider) exchangeState() {
	skip := map[string]bool{gossipAddress(p.ml.LocalNode()): true}
	for _, seed := range p.cfg.Join {
		skip[seed] = true
	}
	var peers []string
	p.mu.Lock()
	for _, m := range p.members {
		// Runs of one node at one address share it.
		if m.gossip != "" && !skip[m.gossip] {
			skip[m.gossip] = true
			peers = append(peers, m.gossip)
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	slots := make(chan struct{}, exchangeParallel)
exchanges:
	for _, addr := range peers {
		select {
		case <-p.done:
			// This node is leaving.
			break exchanges
		case slots <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if _, err := p.ml.Join([]string{addr}); err != nil {
				p.logger.Debug("could not trade state with a member after joining", slog.String("gossip", addr), slog.Any("error", err))
			}
		}()
	}
	wg.Wait()
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

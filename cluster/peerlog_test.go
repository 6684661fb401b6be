package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a logger's text lines; safe for concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines that contain every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		match := l != ""
		for _, p := range parts {
			match = match && strings.Contains(l, p)
		}
		if match {
			out = append(out, l)
		}
	}
	return out
}

// TestPeerLogSaysOnceWhatMembershipAlreadySays: protoactor's warnings and
// errors about a peer that is gone go to DEBUG; about an alive peer they
// show once a minute for each message; those about no peer all show; once
// the node stops, they all go to DEBUG; protoactor's INFO is dropped.
func TestPeerLogSaysOnceWhatMembershipAlreadySays(t *testing.T) {
	var buf logBuffer
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	peers := newPeerLogState()
	peers.now = func() time.Time { return now }
	peers.setAlive(map[string]bool{"10.0.0.1:7947": true, "idA": true})
	log := slog.New(peerLog{Handler: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		min: slog.LevelWarn, peers: peers}).With(slog.String("component", "protoactor"))

	steps := []struct {
		name    string
		advance time.Duration
		stop    bool
		log     func()
		want    string // the level logged, "" for no line
	}{
		{name: "routine", log: func() { log.Info("Started EndpointActor", slog.String("address", "10.0.0.1:7947")) }},
		{name: "gone peer", log: func() { log.Error("EndpointWriter lost connection", slog.String("address", "10.0.0.2:7947")) }, want: "DEBUG"},
		{name: "alive peer", log: func() { log.Error("EndpointWriter lost connection", slog.String("address", "10.0.0.1:7947")) }, want: "ERROR"},
		{name: "alive peer again", advance: 59 * time.Second, log: func() {
			log.Error("EndpointWriter lost connection", slog.String("address", "10.0.0.1:7947"))
		}, want: "DEBUG"},
		{name: "alive peer, another message", log: func() {
			log.Error("EndpointWriter failed to connect", slog.String("address", "10.0.0.1:7947"))
		}, want: "ERROR"},
		{name: "alive member ID", log: func() { log.Warn("sendGossipForMember failed", slog.String("MemberId", "idA")) }, want: "WARN"},
		{name: "gone member ID", log: func() { log.Warn("sendGossipForMember failed", slog.String("MemberId", "idB")) }, want: "DEBUG"},
		{name: "no peer", log: func() { log.Error("[Supervision]", slog.String("reason", "x")) }, want: "ERROR"},
		{name: "no peer again: maybe another fault", log: func() { log.Error("[Supervision]", slog.String("reason", "y")) }, want: "ERROR"},
		{name: "alive peer, a minute later", advance: 2 * time.Second, log: func() {
			log.Error("EndpointWriter lost connection", slog.String("address", "10.0.0.1:7947"))
		}, want: "ERROR"},
		{name: "stopping", stop: true, log: func() { log.Error("EndpointWriter error when closing the stream") }, want: "DEBUG"},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.stop {
			peers.stopping.Store(true)
		}
		before := len(buf.lines())
		s.log()
		got := buf.lines()[before:]
		switch {
		case s.want == "" && len(got) != 0:
			t.Errorf("%s: logged %q, want nothing", s.name, got)
		case s.want != "" && (len(got) != 1 || !strings.Contains(got[0], "level="+s.want+" ")):
			t.Errorf("%s: logged %q, want one line at %s", s.name, got, s.want)
		}
	}

	// At the default level, what went to DEBUG is not seen at all.
	var info logBuffer
	quiet := slog.New(peerLog{Handler: slog.NewTextHandler(&info, nil), min: slog.LevelWarn, peers: peers})
	quiet.Error("EndpointWriter lost connection", slog.String("address", "10.0.0.1:7947"))
	if got := info.lines(); len(got) != 0 {
		t.Errorf("at level INFO a stopping node logged %q", got)
	}
}

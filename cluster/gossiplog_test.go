package cluster

import (
	"errors"
	"log"
	"log/slog"
	"testing"
	"time"
)

// TestGossipRefusalReadsMemberlistsLines: memberlist's lines about gossip
// it could not read for want of the secret name the peer and the reason;
// others do not.
func TestGossipRefusalReadsMemberlistsLines(t *testing.T) {
	for _, tc := range []struct {
		line      string
		encrypted bool
		remote    string
		reason    string
	}{
		{"[ERR] memberlist: Decrypt packet failed: unsupported encryption version 7 from=10.0.0.9:7946", true,
			"10.0.0.9:7946", "not encrypted with this cluster's secret"},
		{"[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:7946", true,
			"10.0.0.9:7946", "not encrypted with this cluster's secret"},
		{"[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.9:51234", true,
			"10.0.0.9:51234", "encrypted with a secret this node does not have"},
		{"[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:51234", true,
			"10.0.0.9:51234", "not encrypted: the other node has no secret"},
		{"[ERR] memberlist: failed to receive: remote state is encrypted and encryption is not configured from=10.0.0.9:51234", false,
			"10.0.0.9:51234", "encrypted, and this node has no secret"},
		{"[ERR] memberlist: Failed to decode indirect ping request: msgpack decode error [pos 1]: only encoded map or array can be decoded into a struct from=10.0.0.9:7946", false,
			"10.0.0.9:7946", "unreadable; encrypted? this node has no secret"},
		// With a secret, an undecodable packet was decrypted: not a
		// matter of secrets.
		{"[ERR] memberlist: Failed to decode indirect ping request: msgpack decode error from=10.0.0.9:7946", true, "", ""},
		{"[DEBUG] memberlist: Stream connection from=10.0.0.9:51234", true, "", ""},
		{"[WARN] memberlist: Binding to public address without encryption!", false, "", ""},
	} {
		remote, reason, ok := gossipRefusal(tc.line, tc.encrypted)
		if remote != tc.remote || reason != tc.reason || ok != (tc.reason != "") {
			t.Errorf("%q: %q, %q, %v; want %q, %q", tc.line, remote, reason, ok, tc.remote, tc.reason)
		}
	}
}

// TestMemberlistLogWarnsOncePerPeerAndReasonAMinute: a peer that keeps
// knocking shows once a minute for each reason, whatever its port; every
// line of memberlist's goes to DEBUG.
func TestMemberlistLogWarnsOncePerPeerAndReasonAMinute(t *testing.T) {
	var buf logBuffer
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	once := newOnceAMinute()
	once.now = func() time.Time { return now }
	ml := log.New(memberlistLog{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		encrypted: true, once: once}, "", 0)
	wrongKey := func(port string) {
		ml.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.9:%s", port)
	}
	wrongKey("50001")
	wrongKey("50002")
	ml.Printf("[ERR] memberlist: Decrypt packet failed: unsupported encryption version 7 from=10.0.0.9:7946")
	ml.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.8:50003")
	now = now.Add(59 * time.Second)
	wrongKey("50004")
	now = now.Add(2 * time.Second)
	wrongKey("50005")
	got := buf.lines("level=WARN")
	want := []string{"remote=10.0.0.9:50001", "remote=10.0.0.9:7946", "remote=10.0.0.8:50003", "remote=10.0.0.9:50005"}
	if len(got) != len(want) {
		t.Fatalf("warned %q, want %d lines", got, len(want))
	}
	for i, w := range want {
		if len(buf.lines("level=WARN", w)) != 1 {
			t.Errorf("line %d: no single warning with %s in %q", i, w, got)
		}
	}
	if got := buf.lines("level=DEBUG", "[ERR] memberlist:"); len(got) != 6 {
		t.Errorf("memberlist's own lines at DEBUG: %q", got)
	}
}

// TestJoinRefusalTellsHowTheSecretsDiffer reads the errors memberlist's
// Join returns when the secrets differ.
func TestJoinRefusalTellsHowTheSecretsDiffer(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"failed to join 10.0.0.9:7946: remote error: no installed keys could decrypt the message", "the cluster has no key for this node's first secret"},
		{"failed to join 10.0.0.9:7946: no installed keys could decrypt the message", "the cluster encrypts with a secret this node does not have"},
		{"failed to join 10.0.0.9:7946: remote state is encrypted and encryption is not configured", "the cluster encrypts its gossip, and this node has no secret"},
		{"failed to join 10.0.0.9:7946: encryption is configured but remote state is not encrypted", "the cluster's gossip is not encrypted, and this node has a secret"},
		{"failed to join 10.0.0.9:7946: dial tcp 10.0.0.9:7946: connect: connection refused", ""},
	} {
		got, ok := joinRefusal(errors.New(tc.err))
		if ok != (tc.want != "") || ok && got != "gossip secrets differ: "+tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.err, got, ok, tc.want)
		}
	}
}

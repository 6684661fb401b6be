package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
)

// TestLoadTLSNamesTheFileAndWhatIsWrong: a certificate, key or CA file
// that cannot serve stops the node at NewNode, with an error that says
// which file and why.
func TestLoadTLSNamesTheFileAndWhatIsWrong(t *testing.T) {
	ca, other := clustertest.NewCA(t, "ca"), clustertest.NewCA(t, "other")
	cert, key := ca.Issue(t, "node")
	_, otherKey := ca.Issue(t, "node2")
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	now := time.Now()
	for _, tc := range []struct {
		name string
		cfg  TLSConfig
		now  time.Time
		want []string // in the error
	}{
		{"no key", TLSConfig{CertFile: cert}, now, []string{"needs a certificate file and a key file"}},
		{"missing certificate", TLSConfig{CertFile: missing, KeyFile: key}, now, []string{missing, "no such file"}},
		{"missing key", TLSConfig{CertFile: cert, KeyFile: missing}, now, []string{missing, "no such file"}},
		{"certificate not PEM", TLSConfig{CertFile: junk, KeyFile: key}, now, []string{junk, "no PEM CERTIFICATE block"}},
		{"key not PEM", TLSConfig{CertFile: cert, KeyFile: junk}, now, []string{junk, "no PEM block"}},
		{"key of another certificate", TLSConfig{CertFile: cert, KeyFile: otherKey}, now, []string{otherKey, cert, "does not match"}},
		{"expired", TLSConfig{CertFile: cert, KeyFile: key}, now.Add(48 * time.Hour), []string{cert, "expired"}},
		{"not yet valid", TLSConfig{CertFile: cert, KeyFile: key}, now.Add(-48 * time.Hour), []string{cert, "valid only from"}},
		{"missing CA", TLSConfig{CertFile: cert, KeyFile: key, CAFile: missing}, now, []string{missing, "no such file"}},
		{"CA not PEM", TLSConfig{CertFile: cert, KeyFile: key, CAFile: junk}, now, []string{junk, "no PEM certificate"}},
		{"another CA", TLSConfig{CertFile: cert, KeyFile: key, CAFile: other.File}, now, []string{cert, other.File, "does not verify", "unknown authority"}},
	} {
		_, err := loadTLS(tc.cfg, tc.now)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, w)
			}
		}
	}
	if _, err := loadTLS(TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca.File}, now); err != nil {
		t.Errorf("good files: %v", err)
	}
	_, err := NewNode(Config{Kinds: []*cluster.Kind{cluster.NewKind("echo",
		actor.PropsFromProducer(func() actor.Actor { return &echo{} }))}, TLS: &TLSConfig{CertFile: cert, KeyFile: otherKey}})
	if err == nil || !strings.Contains(err.Error(), otherKey) {
		t.Errorf("NewNode with a key of another certificate: %v", err)
	}
}

// withTLS gives a node a certificate of ca, for mutual TLS.
func withTLS(t *testing.T, ca *clustertest.CA, name string) func(*Config) {
	cert, key := ca.Issue(t, name)
	return func(c *Config) { c.TLS = &TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca.File} }
}

// TestClusterMutualTLS: two members with certificates of the cluster's CA
// exchange grain requests; a node that does not speak TLS is not admitted
// (its gossip says so), and one whose certificate another CA signed gets no
// grain request through to them, and the TLS members' logs say why.
func TestClusterMutualTLS(t *testing.T) {
	ca := clustertest.NewCA(t, "cluster")
	t0 := mustJoin(t, "t0", nil, withTLS(t, ca, "t0"))
	join := []string{t0.GossipAddress()}
	t1 := mustJoin(t, "t1", join, withTLS(t, ca, "t1"))
	waitFor(t, "the TLS members to see each other", func() bool { return sees(t0.Node, "t0", "t1") && sees(t1.Node, "t0", "t1") })
	ctx := context.Background()
	homes := map[string]int{}
	for i := range 30 {
		for _, n := range []member{t0, t1} {
			res, err := n.Request(ctx, "where", fmt.Sprintf("id%d", i), wrapperspb.String("?"))
			if err != nil {
				t.Fatal(err)
			}
			homes[res.(*wrapperspb.StringValue).Value]++
		}
	}
	if len(homes) != 2 {
		t.Fatalf("grains of both members answered from %v", homes)
	}

	if _, err := joinNode(t, "plain", join, nil); !errors.Is(err, ErrRefused) ||
		!strings.Contains(err.Error(), "the cluster's actor ports speak TLS, and this node's plain gRPC") {
		t.Fatalf("a node without TLS joins: %v", err)
	}
	waitLogged(t, "t0", t0.log, "refused member", "member=plain", "its actor port speaks plain gRPC, and this node's TLS")

	for _, bad := range []struct {
		name   string
		adjust func(*Config)
		says   string // in the TLS members' logs
	}{
		{"foreign", withTLS(t, clustertest.NewCA(t, "foreign"), "foreign"), "certificate signed by unknown authority"},
	} {
		b := mustJoin(t, bad.name, join, bad.adjust)
		waitFor(t, bad.name+" to be a member", func() bool { return len(b.Members()) == 3 })
		// An identity the TLS members own, as b sees the cluster.
		var id string
		for i := 0; id == ""; i++ {
			if owner := b.lookup.view.Load().owner("where", fmt.Sprintf("b%d", i)); owner == t0.Address() || owner == t1.Address() {
				id = fmt.Sprintf("b%d", i)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := b.Request(rctx, "where", id, wrapperspb.String("?"))
		cancel()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: a grain request to a TLS member: %v, want ErrUnavailable", bad.name, err)
		}
		waitFor(t, "the TLS members to log the refused "+bad.name+" connection", func() bool {
			return len(t0.log.lines("level=WARN", "component=tls", "TLS handshake failed", bad.says))+
				len(t1.log.lines("level=WARN", "component=tls", "TLS handshake failed", bad.says)) > 0
		})
		b.Stop()
	}
}

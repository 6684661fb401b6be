package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSConfig makes the actor port speak TLS. The files are PEM.
type TLSConfig struct {
	// CertFile and KeyFile are this node's certificate and its key: the
	// server presents them, and, under mutual TLS, so does the client.
	CertFile, KeyFile string
	// CAFile, if set, holds the certificates of the CA that signs every
	// member's: the server then requires a client certificate signed by
	// it, and the client verifies the server against it (mutual TLS).
	// Without it the client verifies the server against the system's
	// roots, and the server asks for no client certificate.
	CAFile string
}

// actorCreds are the credentials of the actor port's connections: the
// server's (nil for grpc's default, in the clear) and the client's.
type actorCreds struct {
	server, client credentials.TransportCredentials
}

// actorCredentials loads cfg.TLS, if set.
func actorCredentials(cfg Config) (actorCreds, error) {
	if cfg.TLS == nil {
		return actorCreds{client: insecure.NewCredentials()}, nil
	}
	t, err := loadTLS(*cfg.TLS, time.Now())
	if err != nil {
		return actorCreds{}, err
	}
	logger, once := cfg.Logger.With(slog.String("component", "tls")), newOnceAMinute()
	return actorCreds{
		server: loggedCreds{TransportCredentials: credentials.NewTLS(t.server), logger: logger, once: once},
		client: loggedCreds{TransportCredentials: credentials.NewTLS(t.client), logger: logger, once: once},
	}, nil
}

// actorTLS is what a TLSConfig loads: the server's and the client's side.
type actorTLS struct {
	server, client *tls.Config
}

// loadTLS reads and checks the files of c, so that a wrong file stops the
// node at start-up with an error that names it, not at its first peer.
func loadTLS(c TLSConfig, now time.Time) (*actorTLS, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("cluster: TLS needs a certificate file and a key file")
	}
	certPEM, err := os.ReadFile(c.CertFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: TLS key: %w", err)
	}
	if b, _ := pem.Decode(certPEM); b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("cluster: TLS certificate file %s: no PEM CERTIFICATE block in it", c.CertFile)
	}
	if b, _ := pem.Decode(keyPEM); b == nil {
		return nil, fmt.Errorf("cluster: TLS key file %s: no PEM block in it", c.KeyFile)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error says what is wrong: a key that does not match, or
		// that cannot be parsed.
		return nil, fmt.Errorf("cluster: TLS key file %s with certificate file %s: %w", c.KeyFile, c.CertFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("cluster: TLS certificate file %s: %w", c.CertFile, err)
		}
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("cluster: TLS certificate file %s: the certificate expired on %s", c.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("cluster: TLS certificate file %s: the certificate is valid only from %s", c.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	out := &actorTLS{
		server: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13},
		client: &tls.Config{MinVersion: tls.VersionTLS13},
	}
	if c.CAFile == "" {
		return out, nil
	}
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster: TLS CA file %s: no PEM certificate in it", c.CAFile)
	}
	// Under mutual TLS this certificate serves both ends of a connection:
	// a peer that cannot verify it refuses every connection of this node.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("cluster: TLS certificate file %s does not verify against CA file %s for %s: %w", c.CertFile, c.CAFile, usageName(usage), err)
		}
	}
	out.server.ClientAuth = tls.RequireAndVerifyClientCert
	out.server.ClientCAs = pool
	out.client.Certificates = []tls.Certificate{pair}
	out.client.RootCAs = pool
	return out, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageClientAuth {
		return "client authentication"
	}
	return "server authentication"
}

// loggedCreds are transport credentials that log the handshakes that fail:
// grpc says nothing of them (protoactor discards grpc's log), and a peer
// refused for its certificate would otherwise only show as requests that
// time out.
type loggedCreds struct {
	credentials.TransportCredentials
	logger *slog.Logger
	once   *onceAMinute
}

func (c loggedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	// A connection closed before it says anything is this project's own
	// check that a port is open (see down.go), or a health check.
	if err != nil && !errors.Is(err, io.EOF) {
		remote := conn.RemoteAddr().String()
		if c.once.first(hostOf(remote) + "\x00" + err.Error()) {
			c.logger.Warn("refused actor connection: TLS handshake failed", slog.String("remote", remote), slog.Any("error", err))
		}
	}
	return out, info, err
}

func (c loggedCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil && ctx.Err() == nil {
		if c.once.first(authority + "\x00" + err.Error()) {
			c.logger.Warn("cannot connect to a member's actor port: TLS handshake failed", slog.String("address", authority), slog.Any("error", err))
		}
	}
	return out, info, err
}

func (c loggedCreds) Clone() credentials.TransportCredentials {
	return loggedCreds{TransportCredentials: c.TransportCredentials.Clone(), logger: c.logger, once: c.once}
}

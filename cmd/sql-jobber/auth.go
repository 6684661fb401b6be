package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// authConfig is the [auth] section: the API's tokens, and caps on what
// clients hold at once.
type authConfig struct {
	Tokens map[string]tokenConfig `toml:"tokens"`
	// The caps (see http.Limits); 0 for the default.
	MaxResultsReads          int `toml:"max_results_reads"`
	MaxResultsReadsPerClient int `toml:"max_results_reads_per_client"`
	MaxWaits                 int `toml:"max_waits"`
	MaxWaitsPerClient        int `toml:"max_waits_per_client"`
}

// tokenConfig is an [auth.tokens.<name>] section. A token's secrets are any
// of secret, secrets (in the clear) and secret_sha256, secrets_sha256 (the
// hex SHA-256 of a secret, which keeps the secret itself out of the file);
// more than one while a secret is rotated.
type tokenConfig struct {
	Secret        string   `toml:"secret"`
	Secrets       []string `toml:"secrets"`
	SecretSHA256  string   `toml:"secret_sha256"`
	SecretsSHA256 []string `toml:"secrets_sha256"`
	Scopes        []string `toml:"scopes"`
}

// checkAuth checks the [auth] section and makes the API's tokens and
// limits. Errors never quote a secret.
func (c *config) checkAuth(fa authConfig, lines map[string]int, fail func(string, error) error) error {
	c.limits = sjhttp.Limits{ResultsReads: fa.MaxResultsReads, ResultsReadsPerClient: fa.MaxResultsReadsPerClient,
		Waits: fa.MaxWaits, WaitsPerClient: fa.MaxWaitsPerClient}
	for _, l := range []struct {
		key string
		v   int
	}{{"max_results_reads", fa.MaxResultsReads}, {"max_results_reads_per_client", fa.MaxResultsReadsPerClient},
		{"max_waits", fa.MaxWaits}, {"max_waits_per_client", fa.MaxWaitsPerClient}} {
		if l.v < 0 {
			return fail("auth."+l.key, errors.New("must be at least 1"))
		}
	}
	owners := map[[sha256.Size]byte]string{}
	for _, name := range sortedByLine(fa.Tokens, "auth.tokens", lines) {
		tc := fa.Tokens[name]
		key := "auth.tokens." + name
		if !sqlexec.ValidName(name) {
			return fail(key, errors.New("invalid name: use 1-128 letters, digits, '_', '-' or '.'"))
		}
		t := sjhttp.Token{Name: name}
		for _, f := range secretFields(tc) {
			h, err := hashOf(f.value, f.hashed)
			if err != nil && f.entry > 0 {
				err = fmt.Errorf("entry %d: %w", f.entry, err)
			}
			if err != nil {
				return fail(key+"."+f.key, err)
			}
			if other, dup := owners[h]; dup {
				// A request could not tell which of them it is.
				return fail(key+"."+f.key, fmt.Errorf("is a secret of token %q too; give each token its own", other))
			}
			owners[h] = name
			t.Secrets = append(t.Secrets, h)
		}
		if len(t.Secrets) == 0 {
			return fail(key, errors.New("no secret: set secret or secret_sha256"))
		}
		if len(tc.Scopes) == 0 {
			return fail(key+".scopes", fmt.Errorf("none: list what the token may do, of %s", scopeNames()))
		}
		for _, s := range tc.Scopes {
			if !slices.Contains(sjhttp.Scopes(), sjhttp.Scope(s)) {
				return fail(key+".scopes", fmt.Errorf("unknown scope %.40q: use %s", s, scopeNames()))
			}
			t.Scopes = append(t.Scopes, sjhttp.Scope(s))
		}
		c.tokens = append(c.tokens, t)
	}
	if _, err := sjhttp.NewAuth(c.tokens, c.limits); err != nil {
		return keyFail(fail, "auth", err)
	}
	return nil
}

// scopeNames lists the scopes for an error message.
func scopeNames() string {
	var s []string
	for _, sc := range sjhttp.Scopes() {
		s = append(s, string(sc))
	}
	return strings.Join(s, ", ")
}

// secretField is one secret of a token as the file gives it.
type secretField struct {
	key    string // secret, secrets, ...
	entry  int    // its place in a list (from 1), or 0
	value  string
	hashed bool // value is the secret's SHA-256, in hex
}

func secretFields(tc tokenConfig) []secretField {
	var out []secretField
	if tc.Secret != "" {
		out = append(out, secretField{key: "secret", value: tc.Secret})
	}
	for i, s := range tc.Secrets {
		out = append(out, secretField{key: "secrets", entry: i + 1, value: s})
	}
	if tc.SecretSHA256 != "" {
		out = append(out, secretField{key: "secret_sha256", value: tc.SecretSHA256, hashed: true})
	}
	for i, s := range tc.SecretsSHA256 {
		out = append(out, secretField{key: "secrets_sha256", entry: i + 1, value: s, hashed: true})
	}
	return out
}

// hashOf is what a token keeps of a secret, given in the clear or hashed.
func hashOf(v string, hashed bool) ([sha256.Size]byte, error) {
	if hashed {
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != sha256.Size {
			return [sha256.Size]byte{}, errors.New(`must be 64 hex digits, the SHA-256 of the secret (e.g. printf %s "$secret" | sha256sum)`)
		}
		return [sha256.Size]byte(b), nil
	}
	switch {
	case len(v) < sjhttp.MinSecretLen:
		return [sha256.Size]byte{}, fmt.Errorf("must be at least %d characters (e.g. the output of: openssl rand -hex 32)", sjhttp.MinSecretLen)
	case strings.TrimSpace(v) != v:
		return [sha256.Size]byte{}, errors.New("must not begin or end with white space")
	}
	return sjhttp.HashSecret(v), nil
}

// openAPIWarning is the warning of a node whose API, at addr, is open to
// every client that reaches it: no tokens, and an address that is not
// loopback.
func openAPIWarning(tokens []sjhttp.Token, addr string) string {
	if len(tokens) > 0 {
		return ""
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return ""
	}
	return "the HTTP API has no tokens and listens on " + addr + ": any client that reaches it can submit, read, cancel and purge every job; add [auth.tokens.<name>] sections (see README, Security)"
}

package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Scope is what a token may do.
type Scope string

// The scopes. Admin may do everything, and sees every client's jobs.
const (
	ScopeSubmit  Scope = "jobs:submit"  // POST jobs and groups
	ScopeRead    Scope = "jobs:read"    // GET jobs, groups and queues
	ScopeCancel  Scope = "jobs:cancel"  // DELETE jobs and groups
	ScopeResults Scope = "results:read" // GET results
	ScopeAdmin   Scope = "admin"        // all of them, every client's jobs, /metrics, /readyz, /cluster/members
)

// Scopes are the scopes, in the order the documentation lists them.
func Scopes() []Scope { return []Scope{ScopeSubmit, ScopeRead, ScopeCancel, ScopeResults, ScopeAdmin} }

// anyToken is the "scope" of a route that any valid token may use.
const anyToken Scope = ""

// Token is an API token: a name, which owns the jobs and groups the token
// submits, the SHA-256 of each secret that presents it (more than one
// while a secret is rotated), and what it may do.
type Token struct {
	Name    string
	Secrets [][sha256.Size]byte
	Scopes  []Scope
}

// MinSecretLen is the shortest secret a token may have: a secret sent in
// the clear in a configuration must not be guessable.
const MinSecretLen = 16

// HashSecret is what a token keeps of a secret.
func HashSecret(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// Limits cap what clients hold at once: results reads (each holds a
// connection to a results database while it streams) and long polls
// (?wait=), per token and in all. 0 leaves a cap off.
type Limits struct {
	ResultsReads          int
	ResultsReadsPerClient int
	Waits                 int
	WaitsPerClient        int
}

// Defaults for Limits.
const (
	ResultsReadsDefault          = 64
	ResultsReadsPerClientDefault = 16
	WaitsDefault                 = 10_000
	WaitsPerClientDefault        = 1_000
)

// WithDefaults returns l with unset caps at their defaults.
func (l Limits) WithDefaults() Limits {
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.ResultsReads, ResultsReadsDefault)
	set(&l.ResultsReadsPerClient, ResultsReadsPerClientDefault)
	set(&l.Waits, WaitsDefault)
	set(&l.WaitsPerClient, WaitsPerClientDefault)
	return l
}

// Validate checks l.
func (l Limits) Validate() error {
	for _, c := range []struct {
		key string
		v   int
	}{{"max_results_reads", l.ResultsReads}, {"max_results_reads_per_client", l.ResultsReadsPerClient},
		{"max_waits", l.Waits}, {"max_waits_per_client", l.WaitsPerClient}} {
		if c.v < 1 {
			return &sqlexec.KeyError{Key: c.key, Err: errors.New("must be at least 1")}
		}
	}
	return nil
}

// Auth decides who a request comes from and what it may do. Without
// tokens, every request may do everything, as before tokens existed.
type Auth struct {
	tokens []Token
	reads  *gate
	waits  *gate
}

// NewAuth checks the tokens and limits (with their defaults) and returns
// the API's authority over them.
func NewAuth(tokens []Token, limits Limits) (*Auth, error) {
	limits = limits.WithDefaults()
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	seen := map[[sha256.Size]byte]string{}
	names := map[string]bool{}
	for _, t := range tokens {
		if !sqlexec.ValidName(t.Name) {
			return nil, fmt.Errorf("token %.40q: invalid name: use 1-128 letters, digits, '_', '-' or '.'", t.Name)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("token %q: configured twice", t.Name)
		}
		names[t.Name] = true
		if len(t.Secrets) == 0 {
			return nil, fmt.Errorf("token %q: no secret", t.Name)
		}
		for _, h := range t.Secrets {
			if other, dup := seen[h]; dup {
				// A request could not tell which of them it is.
				return nil, fmt.Errorf("token %q: has a secret of token %q; give each its own", t.Name, other)
			}
			seen[h] = t.Name
		}
		if len(t.Scopes) == 0 {
			return nil, fmt.Errorf("token %q: no scopes: list some of %s", t.Name, scopeList())
		}
		for _, s := range t.Scopes {
			if !slices.Contains(Scopes(), s) {
				return nil, fmt.Errorf("token %q: unknown scope %.40q: use %s", t.Name, s, scopeList())
			}
		}
	}
	return &Auth{
		tokens: slices.Clone(tokens),
		reads:  newGate(limits.ResultsReads, limits.ResultsReadsPerClient),
		waits:  newGate(limits.Waits, limits.WaitsPerClient),
	}, nil
}

func scopeList() string {
	s := make([]string, len(Scopes()))
	for i, sc := range Scopes() {
		s[i] = string(sc)
	}
	return strings.Join(s, ", ")
}

// Open reports whether the API runs without tokens.
func (a *Auth) Open() bool { return a == nil || len(a.tokens) == 0 }

// realm is what a 401 asks for.
const realm = `Bearer realm="sql-jobber"`

// authError is a request refused for who it comes from.
type authError struct {
	status int
	msg    string
	// invalid: credentials were presented, and they are wrong.
	invalid bool
}

func (e *authError) Error() string { return e.msg }

// identify returns the caller that r's credentials name, or why not. The
// secret is compared, hashed, with every token's in constant time, so that
// neither a match nor its position shows in the time taken.
func (a *Auth) identify(r *http.Request) (sqljobber.Caller, []Scope, error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return sqljobber.Caller{}, nil, &authError{status: http.StatusUnauthorized, msg: "this API needs a token: send Authorization: Bearer <secret>"}
	}
	scheme, secret, ok := strings.Cut(h[0], " ")
	if len(h) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return sqljobber.Caller{}, nil, &authError{status: http.StatusUnauthorized, invalid: true,
			msg: "malformed Authorization header: send one, as Bearer <secret>"}
	}
	sum := HashSecret(strings.TrimSpace(secret))
	found := -1
	for i, t := range a.tokens {
		for _, s := range t.Secrets {
			if subtle.ConstantTimeCompare(sum[:], s[:]) == 1 {
				found = i
			}
		}
	}
	if found < 0 {
		return sqljobber.Caller{}, nil, &authError{status: http.StatusUnauthorized, invalid: true, msg: "unknown token"}
	}
	t := a.tokens[found]
	return sqljobber.Caller{Name: t.Name, Admin: slices.Contains(t.Scopes, ScopeAdmin)}, t.Scopes, nil
}

// authorize lets requests with a token that has scope (any token for
// anyToken) through to h, with their caller in their context; others get
// 401 or 403. Without tokens, every request goes through unrestricted.
func (s *Server) authorize(scope Scope, h http.HandlerFunc) http.HandlerFunc {
	a := s.cfg.Auth
	if a.Open() {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		caller, scopes, err := a.identify(r)
		if err == nil && scope != anyToken && !caller.Admin && !slices.Contains(scopes, scope) {
			err = &authError{status: http.StatusForbidden, msg: fmt.Sprintf("token %q lacks scope %s", caller.Name, scope)}
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r.WithContext(sqljobber.WithCaller(r.Context(), caller)))
	}
}

// gate counts what clients hold at once, per client and in all.
type gate struct {
	total, perClient int
	mu               sync.Mutex
	n                int
	by               map[string]int
}

func newGate(total, perClient int) *gate {
	return &gate{total: total, perClient: perClient, by: map[string]int{}}
}

// limitError is a request refused because its client, or all clients,
// hold as much as they may.
type limitError struct {
	what string
	max  int
	all  bool
}

func (e *limitError) Error() string {
	if e.all {
		return fmt.Sprintf("too many %s at once on this node (at most %d); try again shortly", e.what, e.max)
	}
	return fmt.Sprintf("too many %s at once for this client (at most %d); try again shortly", e.what, e.max)
}

// retryAfter is what a 429 asks the client to wait, in seconds.
const retryAfter = "1"

// enter takes a place for client (known: a token's; else only the total
// counts), or says why not; leave gives it back.
func (g *gate) enter(client string, known bool, what string) (leave func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case known && g.by[client] >= g.perClient:
		return nil, &limitError{what: what, max: g.perClient}
	case g.n >= g.total:
		return nil, &limitError{what: what, max: g.total, all: true}
	}
	g.n++
	g.by[client]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.n--
			if g.by[client]--; g.by[client] == 0 {
				delete(g.by, client)
			}
		})
	}, nil
}

// hold takes a place at g for r's client (what names it in a refusal).
// Without an Auth there are no caps; without tokens, only the totals.
func (s *Server) hold(r *http.Request, pick func(*Auth) *gate, what string) (func(), error) {
	if s.cfg.Auth == nil {
		return func() {}, nil
	}
	c, known := sqljobber.CallerFrom(r.Context())
	return pick(s.cfg.Auth).enter(c.Name, known, what)
}

// waitOn runs wait, a long poll, in a place of the client's waits.
func (s *Server) waitOn(r *http.Request, wait func() error) error {
	leave, err := s.hold(r, waitsGate, "waiting requests (?wait=)")
	if err != nil {
		return err
	}
	defer leave()
	return wait()
}

func readsGate(a *Auth) *gate { return a.reads }
func waitsGate(a *Auth) *gate { return a.waits }

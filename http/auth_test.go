package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/resultsink"
)

// holding is a Service whose results reads and waits hold until released,
// telling entered as each begins; what it is asked says who asked.
type holding struct {
	failing
	entered chan string // the caller's name
	release chan struct{}
}

func (h holding) hold(ctx context.Context) error {
	c, _ := sqljobber.CallerFrom(ctx)
	h.entered <- c.Name
	select {
	case <-h.release:
		return fmt.Errorf("%w: released", sqljobber.ErrJobNotFound)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h holding) Results(ctx context.Context, _ string, _ resultsink.Query) (*resultsink.Page, error) {
	return nil, h.hold(ctx)
}

func (h holding) WaitJob(ctx context.Context, _ string, _ time.Duration) (*sqljobber.Job, error) {
	return nil, h.hold(ctx)
}

func testTokens(names ...string) []Token {
	var out []Token
	for _, n := range names {
		out = append(out, Token{Name: n, Secrets: [][32]byte{HashSecret(n + "-secret-0123456789")}, Scopes: []Scope{ScopeRead, ScopeResults}})
	}
	return out
}

// getAs sends GET path with name's token ("" for none) and returns the
// status, Retry-After and message.
func getAs(t *testing.T, base, path, name string) (int, string, string) {
	t.Helper()
	req, _ := nethttp.NewRequest("GET", base+path, nil)
	if name != "" {
		req.Header.Set("Authorization", "Bearer "+name+"-secret-0123456789")
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var env envelope
	_ = json.Unmarshal(b, &env)
	return res.StatusCode, res.Header.Get("Retry-After"), env.Message
}

// TestClientsHoldNoMoreThanTheirShare: results reads and waits beyond a
// client's cap, or beyond the node's, get 429 with Retry-After at once;
// another client still gets its share, and a place freed is free again.
func TestClientsHoldNoMoreThanTheirShare(t *testing.T) {
	for _, tc := range []struct{ name, path, what string }{
		{"results", "/jobs/x/results", "results reads"},
		{"waits", "/jobs/x?wait=1m", "waiting requests (?wait=)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth, err := NewAuth(testTokens("alice", "bob", "carol"), Limits{ResultsReads: 2, ResultsReadsPerClient: 1, Waits: 2, WaitsPerClient: 1})
			if err != nil {
				t.Fatal(err)
			}
			svc := holding{entered: make(chan string, 10), release: make(chan struct{})}
			srv := httptest.NewServer(NewServer(svc, Config{Auth: auth}).Handler())
			defer srv.Close()
			var wg sync.WaitGroup
			defer wg.Wait()
			var once sync.Once
			release := func() { once.Do(func() { close(svc.release) }) }
			defer release()
			for _, who := range []string{"alice", "bob"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _, _ = getAs(t, srv.URL, tc.path, who)
				}()
				if got := <-svc.entered; got != who {
					t.Fatalf("entered: %s, want %s", got, who)
				}
			}
			for _, c := range []struct{ who, msg string }{
				{"alice", fmt.Sprintf("too many %s at once for this client (at most 1); try again shortly", tc.what)},
				{"carol", fmt.Sprintf("too many %s at once on this node (at most 2); try again shortly", tc.what)},
			} {
				code, retry, msg := getAs(t, srv.URL, tc.path, c.who)
				if code != 429 || retry != "1" || msg != c.msg {
					t.Errorf("%s beyond the cap: %d, Retry-After %q, %q; want 429 %q", c.who, code, retry, msg, c.msg)
				}
			}
			release()
			wg.Wait()
			// The places are free again.
			for _, who := range []string{"alice", "carol"} {
				if code, _, msg := getAs(t, srv.URL, tc.path, who); code != 404 {
					t.Errorf("%s after the release: %d %s", who, code, msg)
				}
				<-svc.entered
			}
		})
	}
}

// TestOpenAPICapsOnlyTheTotal: without tokens clients cannot be told apart,
// so only the node's cap holds.
func TestOpenAPICapsOnlyTheTotal(t *testing.T) {
	auth, err := NewAuth(nil, Limits{ResultsReads: 2, ResultsReadsPerClient: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc := holding{entered: make(chan string, 10), release: make(chan struct{})}
	srv := httptest.NewServer(NewServer(svc, Config{Auth: auth}).Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = getAs(t, srv.URL, "/jobs/x/results", "")
		}()
		<-svc.entered
	}
	code, retry, msg := getAs(t, srv.URL, "/jobs/x/results", "")
	close(svc.release)
	wg.Wait()
	if code != 429 || retry != "1" || !strings.Contains(msg, "on this node (at most 2)") {
		t.Errorf("a third read: %d %q %q", code, retry, msg)
	}
}

func TestNewAuthRefusesBadTokens(t *testing.T) {
	ok := testTokens("a")[0]
	for _, tc := range []struct {
		name   string
		tokens []Token
		limits Limits
		want   string
	}{
		{"bad name", []Token{{Name: "a b\x00", Secrets: ok.Secrets, Scopes: ok.Scopes}}, Limits{}, `token "a b\x00": invalid name`},
		{"twice", []Token{ok, ok}, Limits{}, `token "a": configured twice`},
		{"no secret", []Token{{Name: "a", Scopes: ok.Scopes}}, Limits{}, `token "a": no secret`},
		{"shared secret", []Token{ok, {Name: "b", Secrets: ok.Secrets, Scopes: ok.Scopes}}, Limits{}, `token "b": has a secret of token "a"`},
		{"no scopes", []Token{{Name: "a", Secrets: ok.Secrets}}, Limits{}, `token "a": no scopes`},
		{"unknown scope", []Token{{Name: "a", Secrets: ok.Secrets, Scopes: []Scope{"jobs:*"}}}, Limits{}, `token "a": unknown scope "jobs:*"`},
		{"negative cap", nil, Limits{Waits: -1}, "max_waits: must be at least 1"},
	} {
		if _, err := NewAuth(tc.tokens, tc.limits); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}

package http

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/cluster"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

const liveTasks = `
-- name: entries_of
SELECT id, user_id, amount FROM entries WHERE user_id = ? ORDER BY id;

-- name: slow
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT COUNT(*) AS n FROM c;
`

// The live API's tokens: their secrets are the name and "-secret-0123456789".
var liveTokens = map[string][]Scope{
	"admin":            {ScopeAdmin},
	"app":              {ScopeSubmit, ScopeRead, ScopeCancel, ScopeResults},
	"reader":           {ScopeRead},
	"nobody-with-read": {ScopeSubmit, ScopeCancel, ScopeResults},
}

// live is a real node (an engine on SQLite databases, its cluster node and
// the API with every route) whose answers are checked against the document.
type live struct {
	t       *testing.T
	spec    *spec
	srv     *Server
	base    string
	engine  *actors.Engine
	ready   *atomic.Bool
	covered map[string]bool // "METHOD /template status"
}

func startLive(t *testing.T) *live {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	src, err := sqlexec.Open(ctx, sqlexec.DBConfig{Name: "demo", Type: sqlexec.SQLite, DSN: filepath.Join(dir, "src.db")}, sqlexec.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	for _, stmt := range []string{
		"CREATE TABLE entries (id INTEGER PRIMARY KEY, user_id TEXT, amount DECIMAL(12,2))",
		"INSERT INTO entries VALUES (1, 'USER1', '10.50'), (2, 'USER1', '20.25'), (3, 'USER2', '1.00')",
	} {
		if _, err := src.SQL().ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	res, err := resultsink.Open(ctx, resultsink.Config{DBConfig: sqlexec.DBConfig{Name: "res", Type: sqlexec.SQLite, DSN: filepath.Join(dir, "res.db")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	tasks, _, err := sqlexec.ParseTasks("tasks.sql", []byte(liveTasks))
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		tk.Queue = "default"
	}
	reg, err := sqlexec.NewRegistry(tasks, []*sqlexec.DB{src}, []string{"res"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	jobs, err := ledger.New(res.DB(), res.Durable(), ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jobs.Close)
	if err := jobs.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reader, err := resultsink.NewReader([]*resultsink.Backend{res}, resultsink.ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := actors.NewEngine(jobs, reg, map[string]actors.Results{"res": res}, reader, actors.Config{
		NodeName: "openapi-test", Queues: map[string]int{"default": 2}, PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.NewNode(cluster.Config{Kinds: eng.Kinds()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Stop)
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Stop)

	var tokens []Token
	for name, scopes := range liveTokens {
		tokens = append(tokens, Token{Name: name, Secrets: [][32]byte{HashSecret(name + "-secret-0123456789")}, Scopes: scopes})
	}
	// One wait at a time per client: the 429 is one request away.
	auth, err := NewAuth(tokens, Limits{WaitsPerClient: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := &live{t: t, spec: loadSpec(t), engine: eng, ready: &atomic.Bool{}, covered: map[string]bool{}}
	l.ready.Store(true)
	metrics := prometheus.NewRegistry()
	ops := NewOps(metrics, func(context.Context) []Check {
		if l.ready.Load() {
			return []Check{{Name: "db.demo", OK: true}, {Name: "tasks", OK: true}}
		}
		return []Check{{Name: "db.demo", OK: false, Error: "cannot be reached"}, {Name: "tasks", OK: true}}
	})
	l.srv = NewServer(eng, Config{Auth: auth, Ops: ops, Metrics: metrics, BodyTimeout: 300 * time.Millisecond})
	ts := httptest.NewServer(l.srv.Handler())
	t.Cleanup(ts.Close)
	l.base = ts.URL
	return l
}

// do sends a request as token ("" for none) and checks the answer against
// the document; it returns the status and the body.
func (l *live) do(token, method, path, body string) (int, []byte) {
	l.t.Helper()
	req, err := nethttp.NewRequest(method, l.base+path, strings.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token+"-secret-0123456789")
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		l.t.Fatal(err)
	}
	l.check(method, path, body, res.StatusCode, res.Header, b)
	return res.StatusCode, b
}

// expect is do, failing unless the status is want.
func (l *live) expect(want int, token, method, path, body string) []byte {
	l.t.Helper()
	status, b := l.do(token, method, path, body)
	if status != want {
		l.t.Fatalf("%s %s: %d %s, want %d", method, path, status, clip(string(b)), want)
	}
	return b
}

// check holds an answer to the document: its status is documented for
// the operation, with its content type, required headers and schema; and
// a request body the server took matches the documented one.
func (l *live) check(method, path, reqBody string, status int, h nethttp.Header, body []byte) {
	l.t.Helper()
	what := fmt.Sprintf("%s %s answered %d", method, path, status)
	var match mux.RouteMatch
	l.srv.router.Match(httptest.NewRequest(method, path, nil), &match)
	var respPtr, op string
	switch {
	case errors.Is(match.MatchErr, mux.ErrMethodMismatch):
		respPtr = "/components/responses/MethodNotAllowed"
	case match.Route == nil || match.MatchErr != nil:
		respPtr = "/components/responses/NotFound"
	default:
		tpl, err := match.Route.GetPathTemplate()
		if err != nil {
			l.t.Fatal(err)
		}
		op = method + " " + tpl
		opPtr := pointer("paths", tpl, strings.ToLower(method))
		if l.spec.lookup(opPtr) == nil {
			l.t.Errorf("%s: http/openapi.json has no operation %s: %s", what, op, updateSpec)
			return
		}
		respPtr = opPtr + pointer("responses", strconv.Itoa(status))
		if l.spec.lookup(respPtr) == nil {
			l.t.Errorf("%s, which http/openapi.json does not document for %s: %s", what, op, updateSpec)
			return
		}
		l.covered[op+" "+strconv.Itoa(status)] = true
		if reqPtr := opPtr + "/requestBody/content/application~1json/schema"; status == 200 && strings.TrimSpace(reqBody) != "" && l.spec.lookup(reqPtr) != nil {
			l.validate(what+": its request body", reqPtr, []byte(reqBody))
		}
	}
	respPtr = l.spec.deref(respPtr)
	if hs, ok := l.spec.lookup(respPtr + "/headers").(map[string]any); ok {
		for name := range hs {
			hp := l.spec.deref(respPtr + pointer("headers", name))
			if l.spec.lookup(hp+"/required") == true && h.Get(name) == "" {
				l.t.Errorf("%s without the header %s that http/openapi.json says it has: %s", what, name, updateSpec)
			}
		}
	}
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		l.t.Errorf("%s with Content-Type %q: %v", what, h.Get("Content-Type"), err)
		return
	}
	schemaPtr := respPtr + pointer("content", mt, "schema")
	if l.spec.lookup(schemaPtr) == nil {
		l.t.Errorf("%s as %s, which http/openapi.json does not document: %s", what, mt, updateSpec)
		return
	}
	switch mt {
	case "application/json":
		l.validate(what, schemaPtr, body)
	case "application/x-ndjson":
		for i, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
			l.validate(fmt.Sprintf("%s: line %d", what, i+1), schemaPtr, line)
		}
	}
}

// validate checks JSON b against the schema at ptr.
func (l *live) validate(what, ptr string, b []byte) {
	l.t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		l.t.Errorf("%s: not JSON: %v: %s", what, err, clip(string(b)))
		return
	}
	sch, err := l.spec.schema(l.spec.deref(ptr))
	if err != nil {
		l.t.Fatalf("%s: schema %s: %v", what, ptr, err)
	}
	if err := sch.Validate(v); err != nil {
		l.t.Errorf("%s: the answer does not match http/openapi.json (a field added to the API must be documented there; %s): %v\n%s",
			what, updateSpec, err, clip(string(b)))
	}
}

// waitState polls job id until it is in state.
func (l *live) waitState(id, state string) {
	l.t.Helper()
	testwait.For(l.t, 30*time.Second, "job "+id+" "+state, func() (bool, string) {
		b := l.expect(200, "app", "GET", "/jobs/"+id, "")
		return bytes.Contains(b, []byte(`"state":"`+state+`"`)), string(b)
	})
}

// TestOpenAPIMatchesLiveAnswers drives a real node through every route,
// as the clients of each scope would, into its successes and its errors,
// and checks each answer against http/openapi.json: a status, header,
// content type or field the document does not describe fails the test.
func TestOpenAPIMatchesLiveAnswers(t *testing.T) {
	l := startLive(t)

	// Open routes, the operations endpoints, and tokens.
	if b := l.expect(200, "", "GET", "/openapi.json", ""); !bytes.Equal(b, openAPI) {
		t.Fatal("GET /openapi.json is not the document")
	}
	l.expect(400, "", "GET", "/openapi.json?x=1", "")
	l.expect(200, "", "GET", "/healthz", "")
	l.expect(200, "admin", "GET", "/readyz", "")
	l.ready.Store(false)
	l.expect(503, "admin", "GET", "/readyz", "")
	l.ready.Store(true)
	l.expect(403, "app", "GET", "/readyz", "")
	l.expect(200, "admin", "GET", "/metrics", "")
	l.expect(401, "", "GET", "/metrics", "")
	l.expect(200, "reader", "GET", "/tasks", "")
	l.expect(401, "", "GET", "/tasks", "")
	l.expect(401, "nobody", "GET", "/tasks", "")
	l.expect(200, "admin", "GET", "/cluster/members", "")
	l.expect(403, "app", "GET", "/cluster/members", "")
	l.expect(404, "app", "GET", "/nowhere", "")
	l.expect(405, "app", "PUT", "/jobs/x", "")

	// A job that succeeds, its results in each format, and one answered
	// from its results.
	l.expect(200, "app", "POST", "/tasks/entries_of/jobs", `{"job_id": "j1", "args": ["USER1"], "retries": 1}`)
	l.expect(200, "app", "GET", "/jobs/j1?wait=30s", "")
	l.waitState("j1", "SUCCESS")
	l.expect(200, "app", "GET", "/jobs/j1/results", "")
	l.expect(200, "app", "GET", "/jobs/j1/results?limit=1&order_by=-amount", "")
	l.expect(200, "app", "GET", "/jobs/j1/results?format=ndjson&filter[amount][gte]=10", "")
	l.expect(200, "app", "GET", "/jobs/j1/results?format=csv&csv_safe=true&limit=1", "")
	l.expect(400, "app", "GET", "/jobs/j1/results?sort=amount", "")
	l.expect(403, "reader", "GET", "/jobs/j1/results", "")
	l.expect(404, "app", "GET", "/jobs/nope/results", "")
	l.expect(200, "app", "POST", "/tasks/entries_of/jobs", `{"job_id": "j2", "args": ["USER1"], "max_age": "10m"}`)
	l.waitState("j2", "SUCCESS")
	if b := l.expect(200, "admin", "GET", "/jobs/j2", ""); !bytes.Contains(b, []byte(`"reused_from":"j1"`)) {
		t.Fatalf("j2 was not answered from j1: %s", b)
	}

	// Submissions refused.
	l.expect(404, "app", "POST", "/tasks/nope/jobs", `{}`)
	l.expect(400, "app", "POST", "/tasks/entries_of/jobs", `{"JOB_ID": "x"}`)
	l.expect(400, "app", "POST", "/tasks/entries_of/jobs", `{"args": []}`)
	l.expect(400, "app", "POST", "/tasks/a%20b/jobs", `{}`)
	l.expect(403, "reader", "POST", "/tasks/entries_of/jobs", `{}`)
	l.expect(413, "app", "POST", "/tasks/entries_of/jobs", `{"args": ["`+strings.Repeat("x", MaxBodyBytes)+`"]}`)
	l.rawPost(415, "/tasks/entries_of/jobs", "text/plain", "{}", "")
	l.rawPost(408, "/tasks/entries_of/jobs", "application/json", `{"job_id": "late"}`, "trickle")

	// A running job: its record, what cannot be done to it yet, a second
	// wait of one client, and its cancellation.
	l.expect(200, "app", "POST", "/tasks/slow/jobs", `{"job_id": "s1", "max_age": "10m"}`)
	l.waitState("s1", "STARTED")
	l.expect(200, "app", "POST", "/tasks/slow/jobs", `{"job_id": "s2", "max_age": 600}`)
	if b := l.expect(200, "app", "GET", "/jobs/s2", ""); !bytes.Contains(b, []byte(`"joined":"s1"`)) {
		t.Fatalf("s2 did not join s1's flight: %s", b)
	}
	l.expect(200, "app", "DELETE", "/jobs/s2", "")
	l.expect(409, "app", "POST", "/tasks/slow/jobs", `{"job_id": "s1"}`)
	l.expect(409, "app", "GET", "/jobs/s1/results", "")
	l.tooManyWaits("s1")
	l.expect(200, "app", "DELETE", "/jobs/s1", "")
	l.waitState("s1", "CANCELLED")
	l.expect(409, "app", "DELETE", "/jobs/s1", "")
	l.expect(400, "app", "DELETE", "/jobs/s1?purge=maybe", "")

	// A job that waits for its ETA, in its queue's list.
	l.expect(200, "app", "POST", "/tasks/entries_of/jobs", `{"job_id": "later", "args": ["USER2"], "eta": "2099-01-01 00:00:00", "ttl": 0}`)
	if b := l.expect(200, "admin", "GET", "/jobs/queue/default", ""); !bytes.Contains(b, []byte(`"later"`)) {
		t.Fatalf("the queue does not list the job that waits: %s", b)
	}
	l.expect(400, "reader", "GET", "/jobs/queue/a%20b", "")

	// Listings.
	l.expect(200, "reader", "GET", "/jobs", "")
	l.expect(200, "admin", "GET", "/jobs?state=SUCCESS&state=CANCELLED&queue=default&limit=1", "")
	l.expect(200, "app", "GET", "/jobs?task=entries_of&created_after=2020-01-01T00:00:00Z&created_before=2099-01-01T00:00:00Z", "")
	l.expect(400, "app", "GET", "/jobs?state=DONE", "")
	l.expect(400, "app", "GET", "/jobs?cursor=forged", "")
	l.expect(200, "admin", "GET", "/queues", "")
	l.expect(200, "app", "GET", "/queues", "")
	l.expect(400, "app", "GET", "/queues?queue=default", "")
	l.expect(200, "admin", "GET", "/databases", "")
	l.expect(200, "app", "GET", "/databases", "")
	l.expect(400, "app", "GET", "/databases?db=db0", "")

	// A group, from submission to purge.
	group := `{"group_id": "g1", "concurrency": 1, "jobs": [{"job_id": "ga", "task": "entries_of", "args": ["USER1"]}, {"job_id": "gb", "task": "entries_of", "args": ["USER2"], "ttl": 60}]}`
	l.expect(200, "app", "POST", "/groups", group)
	l.expect(409, "app", "POST", "/groups", group)
	l.expect(400, "app", "POST", "/groups", `{"jobs": []}`)
	l.expect(200, "app", "GET", "/groups/g1?wait=30s", "")
	testwait.For(t, 30*time.Second, "group g1 to succeed", func() (bool, string) {
		b := l.expect(200, "app", "GET", "/groups/g1", "")
		return bytes.Contains(b, []byte(`"group_id":"g1","state":"SUCCESS"`)), string(b)
	})
	l.expect(200, "admin", "GET", "/jobs?group_id=g1", "")
	l.expect(409, "app", "DELETE", "/groups/g1", "")
	l.expect(200, "app", "DELETE", "/groups/g1?purge=true", "")
	l.expect(404, "app", "GET", "/groups/g1", "")
	l.expect(400, "app", "GET", "/groups/g1?wait=soon", "")
	l.expect(404, "app", "DELETE", "/groups/g1", "")
	l.expect(400, "app", "DELETE", "/groups/g%201", "")
	l.expect(413, "app", "POST", "/groups", `{"jobs": [{"task": "`+strings.Repeat("x", MaxBodyBytes)+`"}]}`)
	l.rawPost(415, "/groups", "application/json; charset=latin1", group, "")
	l.rawPost(408, "/groups", "application/json", group, "trickle")

	// Gone: purged results, and a job whose record expired.
	l.expect(200, "app", "DELETE", "/jobs/j1?purge=true", "")
	l.expect(410, "app", "GET", "/jobs/j1/results", "")
	l.expect(404, "app", "GET", "/jobs/j1", "")
	l.expect(404, "app", "DELETE", "/jobs/j1", "")
	l.expect(400, "app", "GET", "/jobs/j%201", "")
	l.expect(400, "app", "GET", "/jobs/j2?wait=-1s", "")
	l.expect(200, "app", "POST", "/tasks/entries_of/jobs", `{"job_id": "brief", "args": ["USER2"], "ttl": 1}`)
	testwait.For(t, 30*time.Second, "job brief to expire", func() (bool, string) {
		status, b := l.do("app", "GET", "/jobs/brief", "")
		return status == 410, string(b)
	})

	// A node that stops takes no more jobs.
	l.engine.Stop()
	l.expect(503, "app", "POST", "/tasks/entries_of/jobs", `{"args": ["USER1"]}`)

	// Every route that takes a token refuses a request without one, and
	// one with a token of another scope.
	for _, op := range l.spec.operations() {
		method, path, _ := strings.Cut(op, " ")
		sec, _ := l.spec.lookup(pointer("paths", path, strings.ToLower(method), "security")).([]any)
		if len(sec) == 0 {
			continue
		}
		path = strings.NewReplacer("{jobID}", "j2", "{groupID}", "g1", "{taskName}", "entries_of", "{queue}", "default").Replace(path)
		l.expect(401, "", method, path, "")
		if scopes := sec[0].(map[string]any)["bearerAuth"].([]any); len(scopes) == 1 {
			other := "reader"
			if scopes[0] == string(ScopeRead) {
				other = "nobody-with-read"
			}
			l.expect(403, other, method, path, "")
		}
	}

	// Every operation's success was seen; the errors not driven here
	// are listed.
	var missed []string
	for _, op := range l.spec.operations() {
		if !l.covered[op+" 200"] {
			t.Errorf("%s: no successful answer was checked: add one to this test", op)
		}
		method, path, _ := strings.Cut(op, " ")
		codes, _ := l.spec.lookup(pointer("paths", path, strings.ToLower(method), "responses")).(map[string]any)
		for code := range codes {
			if !l.covered[op+" "+code] {
				missed = append(missed, op+" "+code)
			}
		}
	}
	slices.Sort(missed)
	t.Logf("documented answers not driven live: %s", strings.Join(missed, ", "))
}

// rawPost posts body with Content-Type ct as the app token, over a
// connection of its own; with how "trickle" it sends the headers and a
// first byte, then nothing, until the server answers. The answer must be
// want, and is checked against the document.
func (l *live) rawPost(want int, path, ct, body, how string) {
	l.t.Helper()
	addr := strings.TrimPrefix(l.base, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		l.t.Fatal(err)
	}
	defer conn.Close()
	head := "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer app-secret-0123456789\r\nContent-Type: " + ct +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n"
	send := head + body
	if how == "trickle" {
		send = head + body[:1]
	}
	if _, err := io.WriteString(conn, send); err != nil {
		l.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		l.t.Fatal(err)
	}
	if res.StatusCode != want {
		l.t.Fatalf("POST %s (%s, %s): %d %s, want %d", path, ct, how, res.StatusCode, b, want)
	}
	l.check("POST", path, body, res.StatusCode, res.Header, b)
}

// tooManyWaits holds a long wait on job id as the app token, and sends
// short ones until one is refused (429): the client holds one at most. A
// holder that a probe beat to the place (and was refused itself) is
// started again.
func (l *live) tooManyWaits(id string) {
	l.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var done chan struct{}
	hold := func() {
		done = make(chan struct{})
		go func(done chan struct{}) {
			defer close(done)
			req, _ := nethttp.NewRequestWithContext(ctx, "GET", l.base+"/jobs/"+id+"?wait=60s", nil)
			req.Header.Set("Authorization", "Bearer app-secret-0123456789")
			if res, err := nethttp.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}(done)
	}
	hold()
	defer func() { cancel(); <-done }()
	testwait.For(l.t, 30*time.Second, "a second wait of one client refused", func() (bool, string) {
		select {
		case <-done:
			hold()
		default:
		}
		status, b := l.do("app", "GET", "/jobs/"+id+"?wait=1ms", "")
		return status == 429, string(b)
	})
}

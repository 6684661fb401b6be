package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// fuzzService answers as an engine would for job and group "j" (and any
// submission), serves the real results table "t", and finds nothing else.
type fuzzService struct{ envResults }

func (fuzzService) Job(_ context.Context, id string) (*sqljobber.Job, error) {
	if id != "j" {
		return nil, fmt.Errorf("%w: %q", sqljobber.ErrJobNotFound, id)
	}
	return &sqljobber.Job{ID: id, Task: "t", Queue: "q", State: sqljobber.StateSuccess}, nil
}

func (fuzzService) Group(_ context.Context, id string) (*sqljobber.Group, error) {
	if id != "j" {
		return nil, fmt.Errorf("%w: %q", sqljobber.ErrGroupNotFound, id)
	}
	return &sqljobber.Group{ID: id, State: sqljobber.StateSuccess, Concurrency: 1}, nil
}

func (fuzzService) Submit(_ context.Context, req actors.SubmitRequest) (*actors.Receipt, error) {
	return &actors.Receipt{JobID: req.JobID, Task: req.Task, Queue: req.Queue, ETA: req.ETA, Retries: req.Retries}, nil
}

func (fuzzService) SubmitGroup(_ context.Context, req actors.GroupRequest) (*actors.GroupReceipt, error) {
	return &actors.GroupReceipt{GroupID: req.GroupID}, nil
}

func (fuzzService) WaitJob(context.Context, string, time.Duration) (*sqljobber.Job, error) {
	return nil, nil
}
func (fuzzService) WaitGroup(context.Context, string, time.Duration) error { return nil }
func (fuzzService) Queue(context.Context, string) ([]*sqljobber.Job, error) {
	return nil, nil
}

// fuzzContentTypes are the Content-Types a fuzzed request may carry.
var fuzzContentTypes = []string{"", "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded"}

// FuzzRouter sends any method, path, query and body to every route of the
// API, over a real PostgreSQL results table: nothing panics, no answer is
// a 5xx but 503, and every refusal is the JSON error envelope with a
// short message.
func FuzzRouter(f *testing.F) {
	for _, s := range []struct {
		method, path, query, body string
		ct                        uint8
	}{
		{"GET", "/tasks", "", "", 0},
		{"POST", "/tasks/t/jobs", "", `{"job_id": "a", "args": ["x", 1, true, null], "eta": "2026-12-01 10:00:00", "retries": 2, "ttl": 60}`, 1},
		{"POST", "/tasks/t/jobs", "", `{"job_id": "a", "JOB_ID": "b"}`, 2},
		{"POST", "/tasks/t/jobs", "", `{"job_id": "a"}`, 3},
		{"POST", "/tasks/t%00/jobs", "", ``, 1},
		{"GET", "/jobs/j", "wait=1ms", "", 0},
		{"GET", "/jobs/j", "wait=soon", "", 0},
		{"GET", "/jobs/a\x00b", "", "", 0},
		{"DELETE", "/jobs/j", "purge=true", "", 0},
		{"DELETE", "/jobs/j", "purge=maybe", "", 0},
		{"GET", "/jobs/queue/q", "", "", 0},
		{"GET", "/jobs/queue/" + strings.Repeat("q", 200), "", "", 0},
		{"GET", "/jobs/t/results", "format=csv&limit=2&order_by=-name&csv_safe=true", "", 0},
		{"GET", "/jobs/t/results", "filter[id][gte]=1&filter[name][eq]=a%00&cursor=x", "", 0},
		{"GET", "/jobs/t/results", "filter[at][lt]=2026-01-01T00:00:00Z&filter[f][gt]=1.5&filter[name][null]=false", "", 0},
		{"GET", "/jobs/t/results", "order_by=%ff&format=ndjson", "", 0},
		{"GET", "/jobs/t/results", "limit=99999999999999999999", "", 0},
		{"POST", "/groups", "", `{"group_id": "g", "concurrency": 2147483648, "jobs": [{"task": "t"}]}`, 1},
		{"POST", "/groups", "", `{"jobs": [{"task": "t", "job_id": "a", "args": [{"a": 1, "a": 2}]}]}`, 1},
		{"GET", "/groups/j", "wait=1s", "", 0},
		{"DELETE", "/groups/g", "purge=true", "", 0},
		{"PUT", "/jobs/j", "", "", 0},
		{"GET", "/cluster/members", "", "", 0},
		{"GET", "/databases", "", "", 0},
		{"GET", "/databases", "db=x", "", 0},
		{"GET", "/healthz", "", "", 0},
		{"GET", "//jobs/../x", "", "", 0},
		{"GET", "/ui/", "", "", 0},
		{"GET", "/ui", "", "", 0},
		{"GET", "/ui/js/app.js", "v=1", "", 0},
		{"POST", "/ui/index.html", "", "{}", 1},
		{"GET", "/ui/../ui/js/../nope", "", "", 0},
	} {
		f.Add(s.method, s.path, s.query, s.body, s.ct)
	}
	env := resultsinktest.NewEnv(f, sqlexec.Postgres, resultsink.ReaderConfig{PageSize: 2, MaxPageSize: 10})
	cols := []sqlexec.Column{{Name: "id", Type: sqlexec.TypeInt64}, {Name: "name", Type: sqlexec.TypeText},
		{Name: "f", Type: sqlexec.TypeFloat64}, {Name: "at", Type: sqlexec.TypeTimestampTZ}}
	names := []any{"=b", "a", "", nil, "c,\"d\"\n"}
	env.Succeed("t", &resultsinktest.FuncRows{Cols: cols, N: len(names), Row: func(i int) []any {
		return []any{int64(i), names[i], float64(i) / 3, time.Date(2025, 1, i+1, 0, 0, 0, 0, time.UTC)}
	}})
	h := NewServer(fuzzService{envResults{failing: failing{err: sqljobber.ErrJobNotFound}, env: env}},
		Config{MaxWait: time.Millisecond}).Handler()

	f.Fuzz(func(t *testing.T, method, path, query, body string, ct uint8) {
		if !validMethod(method) {
			return // net/http refuses it before any handler
		}
		r := &nethttp.Request{Method: method, URL: &url.URL{Path: "/" + strings.TrimPrefix(path, "/"), RawQuery: query},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: nethttp.Header{}, Host: "x",
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
		r = r.WithContext(context.Background())
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			r.Header.Set("Content-Type", c)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		res := w.Result()
		if res.StatusCode >= 500 && res.StatusCode != 503 {
			t.Fatalf("%s %q ? %q (%q): %d %s", method, path, query, body, res.StatusCode, w.Body.Bytes())
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s %q: no nosniff", method, path)
		}
		if res.StatusCode < 400 {
			return
		}
		var e struct {
			Status  string          `json:"status"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Status != "error" || e.Message == "" ||
			len(e.Message) > maxMessage || string(e.Data) != "null" {
			t.Fatalf("%s %q ? %q: %d, not the error envelope with a short message: %.2000s", method, path, query, res.StatusCode, w.Body.Bytes())
		}
		if res.StatusCode == 405 && res.Header.Get("Allow") == "" {
			t.Fatalf("%s %q: 405 without Allow", method, path)
		}
	})
}

// validMethod reports whether m is an HTTP token, as net/http requires of
// a method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

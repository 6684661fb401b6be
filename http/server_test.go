package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// protoactor's gossiper starts a throttle goroutine per member
		// that nothing stops; one per node started (openapi_live_test.go
		// starts one), never more.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	)
}

// failing is a Service whose every call fails with err: it injects the
// engine's errors to check how each becomes a status. (The API's success
// paths are tested against a real engine in cmd/sql-jobber, http/client
// and openapi_live_test.go.)
type failing struct{ err error }

func (f failing) Tasks() []*sqlexec.Task { return nil }
func (f failing) Submit(context.Context, actors.SubmitRequest) (*actors.Receipt, error) {
	return nil, f.err
}
func (f failing) Job(context.Context, string) (*sqljobber.Job, error) { return nil, f.err }
func (f failing) Results(context.Context, string, resultsink.Query) (*resultsink.Page, error) {
	return nil, f.err
}
func (f failing) Cancel(context.Context, string, bool) error { return f.err }
func (f failing) Queue(context.Context, string) ([]*sqljobber.Job, error) {
	return nil, f.err
}
func (f failing) SubmitGroup(context.Context, actors.GroupRequest) (*actors.GroupReceipt, error) {
	return nil, f.err
}
func (f failing) Group(context.Context, string) (*sqljobber.Group, error) { return nil, f.err }
func (f failing) CancelGroup(context.Context, string, bool) error         { return f.err }
func (f failing) Members() []sqljobber.Member                             { return nil }
func (f failing) WaitJob(context.Context, string, time.Duration) (*sqljobber.Job, error) {
	return nil, f.err
}
func (f failing) WaitGroup(context.Context, string, time.Duration) error { return f.err }

// ValidateID is the engine's rule, with the longest IDs any engine takes.
func (f failing) ValidateID(field, id string) error { return actors.CheckID(field, id, 255) }
func (f failing) Workers(string) int                { return 0 }

func TestErrorsMapToStatuses(t *testing.T) {
	for _, tc := range []struct {
		err     error
		status  int
		message string
	}{
		{fmt.Errorf("%w: %q", sqljobber.ErrJobNotFound, "x"), 404, `job not found: "x"`},
		{fmt.Errorf("%w: %q", sqljobber.ErrGroupNotFound, "x"), 404, `group not found: "x"`},
		{&sqljobber.ActiveError{ID: "x", State: "STARTED"}, 409, `job "x" is STARTED`},
		{&sqljobber.FinishedError{Kind: "job", ID: "x", State: "SUCCESS"}, 409, `job "x" has finished (SUCCESS)`},
		{&sqljobber.InvalidError{Field: "args", Reason: "too many"}, 400, "args: too many"},
		{fmt.Errorf("submit job: %w", sqljobber.ErrUnavailable), 503, "submit job: grain unavailable"},
		{sqljobber.ErrStopping, 503, "node is shutting down"},
		{&sqljobber.GoneError{ID: "x", Reason: sqljobber.GoneExpired, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, 410,
			`job "x" expired at 2026-01-02T03:04:05Z: its results are gone`},
		{&sqljobber.NotReadyError{ID: "x", State: "RETRY"}, 409, `job "x" is RETRY: its results are not ready yet`},
		{resultsink.ErrCursorStale, 409, "cursor: the job has run again"},
		{&resultsink.QueryError{Param: "order_by", Err: errors.New("no column")}, 400, "order_by: no column"},
		{errors.New("connection refused to postgres://user:secret@db"), 500, "internal error"},
	} {
		srv := httptest.NewServer(NewServer(failing{tc.err}, Config{}).Handler())
		res, err := nethttp.Get(srv.URL + "/jobs/x")
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Status  string          `json:"status"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		srv.Close()
		if res.StatusCode != tc.status || env.Status != "error" || !strings.HasPrefix(env.Message, tc.message) || string(env.Data) != "null" {
			t.Errorf("%v: got %d %+v, want %d %q", tc.err, res.StatusCode, env, tc.status, tc.message)
		}
		if strings.Contains(env.Message, "secret") {
			t.Errorf("an internal error leaked its text: %q", env.Message)
		}
	}
}

func TestWaitParam(t *testing.T) {
	s := NewServer(failing{}, Config{MaxWait: time.Minute})
	for _, tc := range []struct {
		query string
		want  time.Duration
		err   string
	}{
		{"", 0, ""},
		{"?wait=30s", 30 * time.Second, ""},
		{"?wait=45", 45 * time.Second, ""},
		{"?wait=0", 0, ""},
		{"?wait=2h", time.Minute, ""}, // capped
		{"?wait=-1s", 0, `wait: "-1s" is negative`},
		{"?wait=soon", 0, `wait: "soon" is not a duration`},
		{"?wait=1e3", 0, `wait: "1e3" is not a duration`},
	} {
		got, err := s.waitParam(httptest.NewRequest("GET", "/jobs/x"+tc.query, nil))
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("%s: got %v, %v; want %v, %q", tc.query, got, err, tc.want, tc.err)
		}
	}
	// A bad wait is refused before anything is read, on jobs and groups.
	srv := httptest.NewServer(NewServer(failing{errors.New("must not be reached")}, Config{}).Handler())
	defer srv.Close()
	for _, path := range []string{"/jobs/x?wait=soon", "/groups/x?wait=-5s"} {
		res, err := nethttp.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 || !strings.Contains(string(body), `"wait: `) {
			t.Errorf("%s: %d %s", path, res.StatusCode, body)
		}
	}
}

func TestDecodeJobRequest(t *testing.T) {
	s := NewServer(failing{}, Config{ETALocation: time.FixedZone("X", 3600)})
	for _, tc := range []struct {
		body string
		want string // the error, or "" for none
	}{
		{``, ""},
		{`{}`, ""},
		{`{"job_id": "a", "args": ["x", 1, 1.5, true, null], "eta": "2026-12-01 10:00:00", "retries": 2, "ttl": 60}`, ""},
		{`{"args": [[1]]}`, "args[0]: must be a string, number, boolean or null"},
		{`[]`, "the body must be a JSON object, not array"},
		{`{"args": []}}`, "malformed JSON: data after the object"},
		{`{"retries": 1.5}`, "retries: must be an integer, not number"},
		{`{"retries": 1001}`, "retries: must be between 0 and 1000"},
		{`{"ttl": 99999999999999}`, "ttl: must be between 0 and"},
		{`{"eta": "2026-13-01 10:00:00"}`, `eta: "2026-13-01 10:00:00" is neither`},
		{`{"job_id": 5}`, "job_id: must be a string, not number"},
		{`{"nope": 1}`, `unknown field "nope"`},
		{`{`, "malformed JSON"},
	} {
		req := httptest.NewRequest("POST", "/tasks/t/jobs", strings.NewReader(tc.body))
		var body jobRequest
		err := s.decodeBody(httptest.NewRecorder(), req, &body)
		if err == nil {
			_, err = s.submitRequest("", "t", body)
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.body, err, tc.want)
		}
	}
	r, err := s.submitRequest("", "t", jobRequest{ETA: "2026-12-01 10:00:00"})
	if err != nil || !r.ETA.Equal(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("ETA without a zone is in the configured zone: %v, %v", r.ETA, err)
	}
}

// FuzzJobRequest: any body either decodes into a request whose arguments
// are all scalars, or is refused as a bad request; nothing panics.
func FuzzJobRequest(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"job_id": "a", "args": ["x", 1, true, null]}`, `{"eta": "2026-12-01 10:00:00"}`,
		`{"retries": -1}`, `{"ttl": 1e30}`, `{"args": [{"a": 1}]}`, `[]`, `{"jobs": []}`} {
		f.Add(seed)
	}
	s := NewServer(failing{}, Config{})
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/tasks/t/jobs", strings.NewReader(body))
		var jb jobRequest
		err := s.decodeBody(httptest.NewRecorder(), req, &jb)
		if err == nil {
			var r actors.SubmitRequest
			r, err = s.submitRequest("", "t", jb)
			if err == nil {
				for _, a := range r.Args {
					switch a.(type) {
					case string, json.Number, bool, nil:
					default:
						t.Fatalf("argument %T accepted", a)
					}
				}
				if r.Retries < 0 || r.TTL != nil && *r.TTL < 0 {
					t.Fatalf("negative retries or ttl accepted: %+v", r)
				}
				return
			}
		}
		if status, _ := statusOf(err); status != 400 && status != 413 {
			t.Fatalf("body %q: error %v maps to %d", body, err, status)
		}
	})
}

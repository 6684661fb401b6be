package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	nethttp "net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/http/client"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// TestClient walks the client's job and group calls against one server, in
// the order a user makes them (one long test: each step needs the last's
// state).
func TestClient(t *testing.T) {
	ctx := context.Background()
	c := client.New(testServer(t), nil)

	tasks, err := c.Tasks(ctx)
	if err != nil || len(tasks) != 3 || tasks[0].Name != "entries_of" || tasks[0].NumArgs == nil || *tasks[0].NumArgs != 1 ||
		!strings.Contains(tasks[0].SQL, "FROM entries") {
		t.Fatalf("Tasks: %+v, %v", tasks, err)
	}

	rec, err := c.PostJob(ctx, "entries_of", client.JobRequest{JobID: "j1", Args: []any{"USER1"}})
	if err != nil || rec.JobID != "j1" || rec.Task != "entries_of" || rec.Queue != "default" || rec.ETA != nil {
		t.Fatalf("PostJob: %+v, %v", rec, err)
	}
	j, err := c.WaitJob(ctx, "j1")
	if err != nil || j.State != client.StateSuccess || j.Count != 2 || j.ResultsTable != "results_j1" || j.FinishedAt == nil || j.ExpiresAt == nil {
		t.Fatalf("WaitJob: %+v, %v", j, err)
	}
	// An identical job may be answered from j1's results.
	if _, err := c.PostJob(ctx, "entries_of", client.JobRequest{JobID: "again", Args: []any{"USER1"}, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if j, err := c.GetJob(ctx, "again"); err != nil || j.State != client.StateSuccess || j.ReusedFrom != "j1" || j.Count != 2 {
		t.Fatalf("a job answered from j1's results: %+v, %v", j, err)
	}
	if _, err := c.PostJob(ctx, "entries_of", client.JobRequest{JobID: "fresh", Args: []any{"USER1"}, Fresh: true}); err != nil {
		t.Fatal(err)
	}
	if j, err := c.WaitJob(ctx, "fresh"); err != nil || j.State != client.StateSuccess || j.ReusedFrom != "" {
		t.Fatalf("a fresh job: %+v, %v", j, err)
	}
	// The server keeps results an hour by default; KeepResults keeps them.
	if _, err := c.PostJob(ctx, "entries_of", client.JobRequest{JobID: "kept", Args: []any{"USER1"}, KeepResults: true}); err != nil {
		t.Fatal(err)
	}
	if j, err := c.WaitJob(ctx, "kept"); err != nil || j.State != client.StateSuccess || j.ExpiresAt != nil {
		t.Fatalf("a job that keeps its results: %+v, %v", j, err)
	}

	// Errors are testable with errors.Is and carry the server's message.
	_, err = c.GetJob(ctx, "nope")
	var apiErr *client.Error
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.Message, `"nope"`) {
		t.Fatalf("GetJob unknown: %v", err)
	}
	if _, err := c.PostJob(ctx, "entries_of", client.JobRequest{}); !errors.Is(err, client.ErrBadRequest) ||
		!strings.Contains(err.Error(), `args: task "entries_of" takes 1 arguments, got 0`) {
		t.Fatalf("PostJob without args: %v", err)
	}
	if _, err := c.PostJob(ctx, "nope", client.JobRequest{}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("PostJob unknown task: %v", err)
	}

	// A running job holds its ID, is listed nowhere as pending, and is
	// cancelled at the database.
	if _, err := c.PostJob(ctx, "slow", client.JobRequest{JobID: "s1"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "s1", client.StateStarted)
	if _, err := c.PostJob(ctx, "slow", client.JobRequest{JobID: "s1"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("PostJob on a running ID: %v", err)
	}
	eta := time.Now().Add(time.Hour)
	if _, err := c.PostJob(ctx, "slow", client.JobRequest{JobID: "later", ETA: eta, Retries: 2, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	pending, err := c.PendingJobs(ctx, "default")
	if err != nil || len(pending) != 1 || pending[0].JobID != "later" || pending[0].ETA == nil || !pending[0].ETA.Equal(eta.Truncate(time.Microsecond)) {
		t.Fatalf("PendingJobs: %+v, %v", pending, err)
	}
	if err := c.DeleteJob(ctx, "s1", false); err != nil {
		t.Fatalf("DeleteJob running: %v", err)
	}
	if j, err := c.WaitJob(ctx, "s1"); err != nil || j.State != client.StateCancelled {
		t.Fatalf("cancelled job: %+v, %v", j, err)
	}
	if err := c.DeleteJob(ctx, "s1", false); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("DeleteJob finished: %v", err)
	}
	if err := c.DeleteJob(ctx, "s1", true); err != nil {
		t.Fatalf("DeleteJob purge: %v", err)
	}
	if _, err := c.GetJob(ctx, "s1"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("purged job: %v", err)
	}
	if err := c.DeleteJob(ctx, "later", true); err != nil {
		t.Fatalf("DeleteJob pending with purge: %v", err)
	}

	// Groups.
	grec, err := c.PostGroup(ctx, client.GroupRequest{GroupID: "g", Concurrency: 1, Jobs: []client.GroupJob{
		{Task: "entries_of", JobRequest: client.JobRequest{JobID: "g1", Args: []any{"USER1"}}},
		{Task: "entries_of", JobRequest: client.JobRequest{JobID: "g2", Args: []any{"USER2"}}},
	}})
	if err != nil || grec.GroupID != "g" || len(grec.Jobs) != 2 || grec.Jobs[1].JobID != "g2" {
		t.Fatalf("PostGroup: %+v, %v", grec, err)
	}
	g, err := c.WaitGroup(ctx, "g")
	if err != nil {
		t.Fatalf("WaitGroup: %v", err)
	}
	if g.State != client.StateSuccess || g.Concurrency != 1 || g.Jobs[0].Count != 2 || g.Jobs[1].Count != 1 {
		t.Fatalf("GetGroup: %+v", g)
	}
	if err := c.DeleteGroup(ctx, "g", false); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("DeleteGroup finished: %v", err)
	}
	if err := c.DeleteGroup(ctx, "g", true); err != nil {
		t.Fatalf("DeleteGroup purge: %v", err)
	}
	if _, err := c.GetGroup(ctx, "g"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("purged group: %v", err)
	}
	if _, err := c.PostGroup(ctx, client.GroupRequest{}); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("empty group: %v", err)
	}
}

// TestResults reads one job's results through every option of the
// client's results calls, on one server (one long test: the job's table is
// made once).
func TestResults(t *testing.T) {
	ctx := context.Background()
	c := client.New(testServer(t), nil)
	for _, id := range []string{"mine", "typed"} {
		task, args := "entries_of", []any{"USER1"}
		if id == "typed" {
			task, args = "typed", nil
		}
		if _, err := c.PostJob(ctx, task, client.JobRequest{JobID: id, Args: args}); err != nil {
			t.Fatal(err)
		}
		if j, err := c.WaitJob(ctx, id); err != nil || j.State != client.StateSuccess {
			t.Fatalf("job %s: %+v, %v", id, j, err)
		}
	}

	// Every type decodes to its Go type, NULL to nil.
	p, err := c.Results(ctx, "typed", client.ResultsQuery{})
	if err != nil || len(p.Rows) != 2 || p.More || p.Next != "" {
		t.Fatalf("typed: %+v, %v", p, err)
	}
	var types []string
	for _, col := range p.Columns {
		types = append(types, col.Name+":"+col.Type)
	}
	if strings.Join(types, " ") != "i:int64 d:decimal f:float64 b:bool day:date ts:timestamp tz:timestamptz j:json bin:bytes t:text" {
		t.Fatalf("columns %v", types)
	}
	want := []any{int64(math.MinInt64), "-12.50", 0.1, true, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), time.Date(2024, 1, 2, 3, 4, 5, 500000000, time.UTC),
		json.RawMessage(`{"a":[1,2.50]}`), []byte{0, 0xff}, `Grüße "x"`}
	if !reflect.DeepEqual(p.Rows[0], want) {
		t.Errorf("values\n got %#v\nwant %#v", p.Rows[0], want)
	}
	if !reflect.DeepEqual(p.Rows[1], make([]any, len(want))) {
		t.Errorf("NULLs: %#v", p.Rows[1])
	}

	// Pages follow each other through Next.
	q := client.ResultsQuery{Limit: 1, OrderBy: "-amount", Filters: []client.Filter{{Column: "amount", Op: "gt", Value: "1"}}}
	var ids []any
	for pages := 0; ; pages++ {
		p, err := c.Results(ctx, "mine", q)
		if err != nil || pages > 2 {
			t.Fatalf("page %d: %+v, %v", pages, p, err)
		}
		for _, r := range p.Rows {
			ids = append(ids, r[0])
		}
		if !p.More {
			break
		}
		q.Cursor = p.Next
	}
	if !reflect.DeepEqual(ids, []any{int64(2), int64(1)}) {
		t.Fatalf("ids by amount descending: %v", ids)
	}

	// Streams in each format, with the headers' paging.
	s, err := c.DownloadResults(ctx, "mine", "csv", client.ResultsQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(s)
	s.Close()
	if string(body) != "id,user_id,amount\r\n1,USER1,10.5\r\n" || !s.More || s.Next == "" || !strings.HasPrefix(s.ContentType, "text/csv") {
		t.Fatalf("csv: %q %+v", body, s)
	}
	s, err = c.DownloadResults(ctx, "mine", "ndjson", client.ResultsQuery{Cursor: s.Next})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(s)
	s.Close()
	if string(body) != `{"id":2,"user_id":"USER1","amount":"20.25"}`+"\n" || s.More || s.Next != "" {
		t.Fatalf("ndjson: %q %+v", body, s)
	}

	// Errors, with errors.Is.
	for _, tc := range []struct {
		id   string
		q    client.ResultsQuery
		want error
		msg  string
	}{
		{"nope", client.ResultsQuery{}, client.ErrNotFound, `job not found: "nope"`},
		{"mine", client.ResultsQuery{OrderBy: "nope"}, client.ErrBadRequest, `order_by: no column "nope"`},
		{"mine", client.ResultsQuery{Filters: []client.Filter{{Column: "id", Op: "eq", Value: "one"}}}, client.ErrBadRequest,
			`filter[id][eq]: "one" is not a 64-bit integer`},
	} {
		_, err := c.Results(ctx, tc.id, tc.q)
		var apiErr *client.Error
		if !errors.Is(err, tc.want) || !errors.As(err, &apiErr) || !strings.HasPrefix(apiErr.Message, tc.msg) {
			t.Errorf("%s %+v: %v", tc.id, tc.q, err)
		}
		if _, err := c.DownloadResults(ctx, tc.id, "csv", tc.q); !errors.Is(err, tc.want) {
			t.Errorf("download %s %+v: %v", tc.id, tc.q, err)
		}
	}
	if _, err := c.PostJob(ctx, "slow", client.JobRequest{JobID: "running"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "running", client.StateStarted)
	if _, err := c.Results(ctx, "running", client.ResultsQuery{}); !errors.Is(err, client.ErrConflict) || !strings.Contains(err.Error(), "STARTED") {
		t.Fatalf("results of a running job: %v", err)
	}
	if err := c.DeleteJob(ctx, "running", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Results(ctx, "running", client.ResultsQuery{}); !errors.Is(err, client.ErrGone) {
		t.Fatalf("results of a purged job: %v", err)
	}
}

func TestClientReportsUnreachableServer(t *testing.T) {
	c := client.New("http://127.0.0.1:1", nil)
	_, err := c.Tasks(context.Background())
	var apiErr *client.Error
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("err %v: want a transport error, not an API answer", err)
	}
}

// waitState waits until job id is in state.
func waitState(t *testing.T, c *client.Client, id, state string) {
	t.Helper()
	testwait.For(t, 30*time.Second, "job "+id+" to be "+state, func() (bool, string) {
		j, err := c.GetJob(context.Background(), id)
		if err != nil {
			return false, err.Error()
		}
		return j.State == state, "it is " + j.State
	})
}

// TestClientSendsItsToken: a client with a token sees its own jobs; one
// without gets ErrUnauthorized, one without the scope ErrForbidden, and
// another client's jobs are ErrNotFound.
func TestClientSendsItsToken(t *testing.T) {
	ctx := context.Background()
	token := func(name string, scopes ...sjhttp.Scope) sjhttp.Token {
		return sjhttp.Token{Name: name, Secrets: [][32]byte{sjhttp.HashSecret(name + "-secret-0123456789")}, Scopes: scopes}
	}
	base := testServer(t, token("alice", sjhttp.ScopeSubmit, sjhttp.ScopeRead, sjhttp.ScopeResults),
		token("bob", sjhttp.ScopeRead), token("root", sjhttp.ScopeAdmin))
	alice := client.New(base, nil).WithToken("alice-secret-0123456789")
	if _, err := alice.PostJob(ctx, "entries_of", client.JobRequest{JobID: "a1", Args: []any{"USER1"}}); err != nil {
		t.Fatal(err)
	}
	if j, err := alice.WaitJob(ctx, "a1"); err != nil || j.State != client.StateSuccess {
		t.Fatalf("alice waits: %+v, %v", j, err)
	}
	if p, err := alice.Results(ctx, "a1", client.ResultsQuery{}); err != nil || len(p.Rows) != 2 {
		t.Fatalf("alice's results: %+v, %v", p, err)
	}
	var apiErr *client.Error
	if _, err := client.New(base, nil).GetJob(ctx, "a1"); !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("no token: %v", err)
	}
	bob := client.New(base, nil).WithToken("bob-secret-0123456789")
	if _, err := bob.GetJob(ctx, "a1"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("bob reads alice's job: %v", err)
	}
	if _, err := bob.PostJob(ctx, "entries_of", client.JobRequest{Args: []any{"USER1"}}); !errors.Is(err, client.ErrForbidden) ||
		!strings.Contains(err.Error(), `token "bob" lacks scope jobs:submit`) {
		t.Fatalf("bob submits: %v", err)
	}
	if j, err := client.New(base, nil).WithToken("root-secret-0123456789").GetJob(ctx, "a1"); err != nil || j.Owner != "alice" {
		t.Fatalf("root reads alice's job: %+v, %v", j, err)
	}
}

// TestClientErrorsMatchTheirStatus: each error answer of the API is the
// sentinel a caller tests for, with the server's message.
func TestClientErrorsMatchTheirStatus(t *testing.T) {
	for status, want := range map[int]error{400: client.ErrBadRequest, 404: client.ErrNotFound, 409: client.ErrConflict,
		410: client.ErrGone, 401: client.ErrUnauthorized, 403: client.ErrForbidden, 429: client.ErrTooManyRequests, 503: client.ErrUnavailable} {
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, _ *nethttp.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"status": "error", "message": "said %d", "data": null}`, status)
		}))
		_, err := client.New(srv.URL, nil).GetJob(context.Background(), "j")
		srv.Close()
		var apiErr *client.Error
		if !errors.Is(err, want) || !errors.As(err, &apiErr) || apiErr.StatusCode != status || apiErr.Message != fmt.Sprintf("said %d", status) {
			t.Errorf("status %d: %v, want %v", status, err, want)
		}
	}
}

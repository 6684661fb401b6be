package http

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
)

func (f failing) ListJobs(context.Context, sqljobber.JobFilter) (*sqljobber.JobPage, error) {
	return nil, f.err
}
func (f failing) Queues(context.Context) ([]sqljobber.QueueSummary, error) { return nil, f.err }
func (f failing) Databases(context.Context) ([]sqljobber.DBSummary, error) { return nil, f.err }

// listing answers listings with fixed pages, and records the filter asked.
type listing struct {
	failing
	got chan sqljobber.JobFilter
}

func (l listing) ListJobs(_ context.Context, f sqljobber.JobFilter) (*sqljobber.JobPage, error) {
	l.got <- f
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return &sqljobber.JobPage{Jobs: []*sqljobber.Job{{ID: "j1", Task: "t", Queue: "q", State: sqljobber.StateSuccess,
		ResultsTable: "results_j1", CreatedAt: created}}, Next: "c2"}, nil
}

func (l listing) Queues(context.Context) ([]sqljobber.QueueSummary, error) {
	return []sqljobber.QueueSummary{
		{Queue: "idle"},
		{Queue: "q", Pending: 3, Running: 1, Workers: 2, Finished: map[sqljobber.State]int64{sqljobber.StateFailure: 4},
			OldestReady: time.Now().Add(-90 * time.Second)},
	}, nil
}

func (l listing) Databases(context.Context) ([]sqljobber.DBSummary, error) {
	return []sqljobber.DBSummary{
		{DB: "capped", MaxRunning: 2, Running: 2, Ready: 5, HeldBack: 5},
		{DB: "free", Running: 1, Ready: 1},
	}, nil
}

// TestListJobsReadsItsParameters: each filter reaches the engine as
// given; state repeats; the answer is the jobs as GET /jobs/{id} shows
// them and the next page's cursor.
func TestListJobsReadsItsParameters(t *testing.T) {
	svc := listing{failing: failing{errReached}, got: make(chan sqljobber.JobFilter, 1)}
	srv := httptest.NewServer(NewServer(svc, Config{}).Handler())
	defer srv.Close()
	q := url.Values{"state": {"PENDING", "FAILURE", "PENDING"}, "queue": {"q"}, "task": {"t"}, "group_id": {"g:1"}, "node": {"host 1 (ü)"},
		"created_after": {"2026-12-01T10:00:00+01:00"}, "created_before": {"2026-12-02T00:00:00.5Z"}, "limit": {"1000"}, "cursor": {"abc.def"}}
	status, _, env := send(t, "GET", srv.URL+"/jobs?"+q.Encode(), "", "")
	if status != 200 {
		t.Fatalf("%d %s", status, env.Message)
	}
	want := sqljobber.JobFilter{States: []sqljobber.State{sqljobber.StatePending, sqljobber.StateFailure}, Queue: "q", Task: "t", GroupID: "g:1",
		Node: "host 1 (ü)", CreatedAfter: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), CreatedBefore: time.Date(2026, 12, 2, 0, 0, 0, 5e8, time.UTC),
		Limit: 1000, Cursor: "abc.def"}
	got := <-svc.got
	if !got.CreatedAfter.Equal(want.CreatedAfter) || !got.CreatedBefore.Equal(want.CreatedBefore) {
		t.Fatalf("times %v %v", got.CreatedAfter, got.CreatedBefore)
	}
	got.CreatedAfter, got.CreatedBefore, want.CreatedAfter, want.CreatedBefore = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("filter %+v\nwant %+v", got, want)
	}
	b, _ := json.Marshal(env.Data)
	if s := string(b); !strings.Contains(s, `"next":"c2"`) || !strings.Contains(s, `"job_id":"j1"`) ||
		!strings.Contains(s, `"results_table":"results_j1"`) || !strings.Contains(s, `"created_at":"2026-12-01T10:00:00Z"`) {
		t.Fatalf("answer %s", s)
	}
	// No parameters: the engine's defaults.
	if status, _, env := send(t, "GET", srv.URL+"/jobs", "", ""); status != 200 {
		t.Fatalf("%d %s", status, env.Message)
	}
	if got := <-svc.got; !reflect.DeepEqual(got, sqljobber.JobFilter{}) {
		t.Fatalf("no parameters: %+v", got)
	}
}

// TestListJobsRefusesHostileParameters: anything that is not a filter
// this endpoint knows, in the form it knows, is 400 naming the parameter,
// before the engine is asked.
func TestListJobsRefusesHostileParameters(t *testing.T) {
	srv := httptest.NewServer(NewServer(failing{errReached}, Config{}).Handler())
	defer srv.Close()
	long := "abcdefgh" + strings.Repeat("x", 100<<10)
	for _, tc := range []struct{ query, want string }{
		{"status=PENDING", `unknown parameter "status": use state, queue`},
		{"STATE=PENDING", `unknown parameter "STATE"`},
		{"state=pending", `state: "pending" is not PENDING`},
		{"state=PENDING'%20OR%20'1'='1", `state: "PENDING' OR '1'='1" is not`},
		{"state=", `state: "" is not`},
		{"state=" + long, `state: "abcdefghxx`},
		{"queue=a%00b", "queue: holds a NUL byte"},
		{"queue=a%C3%28", "queue: holds a NUL byte or is not UTF-8"},
		{"queue=q&queue=r", "queue: given 2 times"},
		{"queue=q%3BDROP%20TABLE%20x", `queue: "q;DROP TABLE x" is not 1 to 128`},
		{"queue=" + long, `queue: "abcdefghxx`},
		{"task=", `task: "" is not`},
		{"group_id=a/b", "group_id: must be 1 to 255"},
		{"group_id=" + long, "group_id: must be 1 to 255"},
		{"node=", "node: must be a worker name"},
		{"node=" + long, "node: must be a worker name"},
		{"created_after=yesterday", `created_after: "yesterday" is not an RFC 3339 time`},
		{"created_after=2026-12-01", `created_after: "2026-12-01" is not an RFC 3339 time`},
		{"created_before=2026-12-01%2010:00:00", `created_before: "2026-12-01 10:00:00" is not`},
		{"created_after=2026-12-02T00:00:00Z&created_before=2026-12-01T00:00:00Z", "created_before: must be later than created_after"},
		{"limit=0", `limit: "0" is not an integer from 1 to 1000`},
		{"limit=1001", `limit: "1001" is not`},
		{"limit=-1", `limit: "-1" is not`},
		{"limit=1.5", `limit: "1.5" is not`},
		{"limit=99999999999999999999999", `limit: "99999999999999999999999" is not`},
		{"limit=ten", `limit: "ten" is not`},
		{"limit=1&limit=2", "limit: given 2 times"},
		{"cursor=", "cursor: empty"},
		{"cursor=a%00", "cursor: holds a NUL byte"},
		{"%00=1", `parameter "\x00": its name holds a NUL byte`},
		{"a=%zz", "malformed query string"},
	} {
		status, _, env := send(t, "GET", srv.URL+"/jobs?"+tc.query, "", "")
		if status != 400 || env.Status != "error" || !strings.HasPrefix(env.Message, tc.want) {
			t.Errorf("%s: %d %q, want 400 %q", clip(tc.query), status, clip(env.Message), tc.want)
		}
		if len(env.Message) > 300 {
			t.Errorf("%s: the message quotes too much: %s", clip(tc.query), clip(env.Message))
		}
	}
	// Not a job ID: /jobs/ with nothing after it is no route.
	if status, _, _ := send(t, "GET", srv.URL+"/jobs/", "", ""); status != 404 {
		t.Errorf("GET /jobs/: %d", status)
	}
	if status, h, _ := send(t, "POST", srv.URL+"/jobs", "application/json", "{}"); status != 405 || h.Get("Allow") != "GET" {
		t.Errorf("POST /jobs: %d, Allow %q", status, h.Get("Allow"))
	}
	for _, q := range []string{"x=1", "queue=q", "%00=1", "a=%zz"} {
		if status, _, env := send(t, "GET", srv.URL+"/queues?"+q, "", ""); status != 400 || !strings.Contains(env.Message, "parameter") && !strings.Contains(env.Message, "query string") {
			t.Errorf("GET /queues?%s: %d %q", q, status, env.Message)
		}
	}
}

// TestQueuesAnswer: every final state is counted (0 when none finished),
// and the oldest ready job's wait is in seconds, null when none waits.
func TestQueuesAnswer(t *testing.T) {
	svc := listing{failing: failing{errReached}}
	srv := httptest.NewServer(NewServer(svc, Config{}).Handler())
	defer srv.Close()
	status, _, env := send(t, "GET", srv.URL+"/queues", "", "")
	if status != 200 {
		t.Fatalf("%d %s", status, env.Message)
	}
	b, _ := json.Marshal(env.Data)
	var got []struct {
		Queue    string           `json:"queue"`
		Pending  int64            `json:"pending"`
		Running  int64            `json:"running"`
		Finished map[string]int64 `json:"finished_last_hour"`
		Oldest   *float64         `json:"oldest_ready_seconds"`
		Workers  int              `json:"workers"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Queue != "idle" || got[0].Oldest != nil || len(got[0].Finished) != 3 ||
		got[1].Pending != 3 || got[1].Workers != 2 || got[1].Finished["FAILURE"] != 4 || got[1].Finished["SUCCESS"] != 0 ||
		got[1].Oldest == nil || *got[1].Oldest < 89 || *got[1].Oldest > 3600 {
		t.Fatalf("answer %s", b)
	}
	if got[1].Running != 1 {
		t.Fatalf("answer %s", b)
	}
}

// TestDatabasesAnswer: each database's cap (null when it has none), its
// jobs running, ready and held back by the cap; no parameter is taken.
func TestDatabasesAnswer(t *testing.T) {
	svc := listing{failing: failing{errReached}}
	srv := httptest.NewServer(NewServer(svc, Config{}).Handler())
	defer srv.Close()
	status, _, env := send(t, "GET", srv.URL+"/databases", "", "")
	if status != 200 {
		t.Fatalf("%d %s", status, env.Message)
	}
	b, _ := json.Marshal(env.Data)
	if want := `[{"db":"capped","held_back":5,"max_running":2,"ready":5,"running":2},{"db":"free","held_back":0,"max_running":null,"ready":1,"running":1}]`; string(b) != want {
		t.Fatalf("answer %s, want %s", b, want)
	}
	for _, q := range []string{"x=1", "db=capped", "%00=1", "a=%zz", strings.Repeat("a", 5000) + "=1"} {
		if status, _, env := send(t, "GET", srv.URL+"/databases?"+q, "", ""); status != 400 || len(env.Message) > 200 ||
			!strings.Contains(env.Message, "parameter") && !strings.Contains(env.Message, "query string") {
			t.Errorf("GET /databases?%s: %d %q", clip(q), status, env.Message)
		}
	}
	if status, h, _ := send(t, "POST", srv.URL+"/databases", "application/json", "{}"); status != 405 || h.Get("Allow") != "GET" {
		t.Errorf("POST /databases: %d, Allow %q", status, h.Get("Allow"))
	}
}

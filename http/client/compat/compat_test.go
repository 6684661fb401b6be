package compat_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sjhttp "github.com/sql-jobber/sql-jobber/http"
	native "github.com/sql-jobber/sql-jobber/http/client"
	"github.com/sql-jobber/sql-jobber/http/client/compat"
	"github.com/sql-jobber/sql-jobber/http/client/compat/models"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// within bounds every wait: generous, since the tests must pass on a busy
// two-core machine.
const within = 30 * time.Second

// waitJob polls GetJobStatus, as a dungbeetle program does, until the job
// is in state.
func waitJob(t *testing.T, c *compat.Client, id, state string) models.JobStatusResp {
	t.Helper()
	var last models.JobStatusResp
	testwait.For(t, within, "job "+id+" "+state, func() (bool, string) {
		s, err := c.GetJobStatus(id)
		if err != nil {
			t.Fatalf("GetJobStatus(%q): %v", id, err)
		}
		last = s
		return s.State == state, fmt.Sprintf("%+v", s)
	})
	return last
}

// TestJob posts a job, reads its status with dungbeetle's model until it
// succeeds, and deletes it the ways dungbeetle's client can.
func TestJob(t *testing.T) {
	c := compat.New(&compat.Opt{RootURL: testNode(t)})

	resp, err := c.PostJob(models.JobReq{TaskName: "entries_of", JobID: "j1", Args: []string{"USER1"}, TTL: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if resp.JobID != "j1" || resp.TaskName != "entries_of" || resp.Queue != "default" || resp.Retries != 0 ||
		resp.ETA == nil || !resp.ETA.IsZero() {
		t.Fatalf("PostJob: %+v", resp)
	}
	if s := waitJob(t, c, "j1", "SUCCESS"); s != (models.JobStatusResp{JobID: "j1", State: "SUCCESS", Count: 2}) {
		t.Fatalf("status: %+v", s)
	}

	// A finished job is deleted only with purge, as with dungbeetle.
	if err := c.DeleteJob("j1", false); !errors.Is(err, native.ErrConflict) {
		t.Fatalf("DeleteJob without purge: %v", err)
	}
	if err := c.DeleteJob("j1", true); err != nil {
		t.Fatalf("DeleteJob with purge: %v", err)
	}
	if _, err := c.GetJobStatus("j1"); !errors.Is(err, native.ErrNotFound) && !errors.Is(err, native.ErrGone) {
		t.Fatalf("status of a purged job: %v", err)
	}

	// The server refuses what dungbeetle refused, with the native errors.
	if _, err := c.PostJob(models.JobReq{TaskName: "entries_of", JobID: "j2"}); !errors.Is(err, native.ErrBadRequest) {
		t.Fatalf("a job without its argument: %v", err)
	}
	if _, err := c.GetJobStatus("nope"); !errors.Is(err, native.ErrNotFound) {
		t.Fatalf("status of an unknown job: %v", err)
	}
}

// TestPendingJobs lists the jobs waiting in a queue, as tasqueue messages,
// and cancels one: it reports FAILURE with the error "cancelled".
func TestPendingJobs(t *testing.T) {
	c := compat.New(&compat.Opt{RootURL: testNode(t)})

	resp, err := c.PostJob(models.JobReq{TaskName: "entries_of", JobID: "p1", Queue: idleQueue, Args: []string{"USER2"},
		ETA: "2030-01-02 03:04:05", Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	eta := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if resp.Queue != idleQueue || resp.Retries != 2 || resp.ETA == nil || !resp.ETA.Equal(eta) {
		t.Fatalf("PostJob: %+v (eta %v)", resp, resp.ETA)
	}
	if _, err := c.PostJob(models.JobReq{TaskName: "entries_of", JobID: "p2", Queue: idleQueue, Args: []string{"USER2"},
		ETA: "2030-01-02T04:04:05+01:00"}); err != nil {
		t.Fatalf("an RFC 3339 ETA: %v", err)
	}

	pending, err := c.GetPendingJobs(idleQueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 {
		t.Fatalf("pending: %+v", pending)
	}
	for i, want := range []string{"p1", "p2"} {
		p := pending[i]
		if p.ID != want || p.Status != "queued" || p.Queue != idleQueue || p.Job == nil || p.Job.Task != "entries_of" ||
			p.Job.Opts.ID != want || p.Job.Opts.Queue != idleQueue || !p.Job.Opts.ETA.Equal(eta) {
			t.Fatalf("pending[%d]: %+v, job %+v", i, p, p.Job)
		}
	}
	if s, err := c.GetJobStatus("p1"); err != nil || s.State != "PENDING" {
		t.Fatalf("status: %+v, %v", s, err)
	}

	if err := c.DeleteJob("p1", false); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if s, err := c.GetJobStatus("p1"); err != nil || s != (models.JobStatusResp{JobID: "p1", State: "FAILURE", Error: "cancelled"}) {
		t.Fatalf("status of a cancelled job: %+v, %v", s, err)
	}
	if pending, err := c.GetPendingJobs(idleQueue); err != nil || len(pending) != 1 || pending[0].ID != "p2" {
		t.Fatalf("pending after the cancel: %+v, %v", pending, err)
	}
	if pending, err := c.GetPendingJobs("nobody"); err != nil || len(pending) != 0 {
		t.Fatalf("pending of an empty queue: %+v, %v", pending, err)
	}
}

// TestGroup posts a group, reads its status until every job succeeded,
// purges it, and cancels a group whose jobs wait.
func TestGroup(t *testing.T) {
	c := compat.New(&compat.Opt{RootURL: testNode(t)})

	resp, err := c.PostJobGroup(models.GroupReq{GroupID: "g1", Jobs: []models.JobReq{
		{TaskName: "entries_of", JobID: "g1-a", Args: []string{"USER1"}},
		{TaskName: "entries_of", JobID: "g1-b", Args: []string{"USER2"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GroupID != "g1" || len(resp.Jobs) != 2 || resp.Jobs[0].JobID != "g1-a" || resp.Jobs[1].JobID != "g1-b" ||
		resp.Jobs[1].TaskName != "entries_of" || resp.Jobs[1].ETA == nil {
		t.Fatalf("PostJobGroup: %+v", resp)
	}
	var last models.GroupStatusResp
	testwait.For(t, within, "group g1 SUCCESS", func() (bool, string) {
		s, err := c.GetGroupStatus("g1")
		if err != nil {
			t.Fatal(err)
		}
		last = s
		return s.State == "SUCCESS", fmt.Sprintf("%+v", s)
	})
	want := []models.JobStatusResp{{JobID: "g1-a", State: "SUCCESS", Count: 2}, {JobID: "g1-b", State: "SUCCESS", Count: 1}}
	if last.GroupID != "g1" || len(last.Jobs) != 2 || last.Jobs[0] != want[0] || last.Jobs[1] != want[1] {
		t.Fatalf("group status: %+v", last)
	}
	if err := c.DeleteGroupJob("g1", false); !errors.Is(err, native.ErrConflict) {
		t.Fatalf("DeleteGroupJob of a finished group without purge: %v", err)
	}
	if err := c.DeleteGroupJob("g1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetGroupStatus("g1"); err == nil {
		t.Fatal("a purged group still answers")
	}

	if _, err := c.PostJobGroup(models.GroupReq{GroupID: "g2", Jobs: []models.JobReq{
		{TaskName: "entries_of", JobID: "g2-a", Queue: idleQueue, Args: []string{"USER1"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteGroupJob("g2", false); err != nil {
		t.Fatalf("cancel a waiting group: %v", err)
	}
	s, err := c.GetGroupStatus("g2")
	if err != nil || s.State != "FAILURE" || len(s.Jobs) != 1 || s.Jobs[0] != (models.JobStatusResp{JobID: "g2-a", State: "FAILURE", Error: "cancelled"}) {
		t.Fatalf("status of a cancelled group: %+v, %v", s, err)
	}

	// A bad job is named by its place in the group.
	_, err = c.PostJobGroup(models.GroupReq{Jobs: []models.JobReq{{TaskName: "entries_of", Args: []string{"x"}}, {TaskName: "entries_of", ETA: "tomorrow"}}})
	if err == nil || !strings.Contains(err.Error(), "jobs[1]: eta") {
		t.Fatalf("a group with a bad ETA: %v", err)
	}
}

// TestRequestsRefusedBeforeSending: what the server could not make sense
// of is refused by the client, with an error naming the field.
func TestRequestsRefusedBeforeSending(t *testing.T) {
	// Nothing listens here: a request that were sent would fail otherwise.
	c := compat.New(&compat.Opt{RootURL: "http://127.0.0.1:1"})
	for _, tc := range []struct {
		req  models.JobReq
		want string
	}{
		{models.JobReq{JobID: "x"}, "TaskName is empty"},
		{models.JobReq{TaskName: "t", ETA: "2030-01-02"}, `eta "2030-01-02": want "2006-01-02 15:04:05" (UTC) or RFC 3339`},
	} {
		if _, err := c.PostJob(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PostJob(%+v): %v, want %q", tc.req, err, tc.want)
		}
	}
	if _, err := compat.New(nil).GetJobStatus("x"); err == nil {
		t.Error("a client of no server answers")
	}
}

// TestToken: a server with API tokens answers a client with Opt.Token,
// and refuses one without (which dungbeetle's client was).
func TestToken(t *testing.T) {
	const secret = "reports-secret-0123456789"
	base := testNode(t, sjhttp.Token{Name: "reports", Secrets: [][32]byte{sjhttp.HashSecret(secret)},
		Scopes: []sjhttp.Scope{sjhttp.ScopeSubmit, sjhttp.ScopeRead}})

	if _, err := compat.New(&compat.Opt{RootURL: base}).GetPendingJobs("default"); !errors.Is(err, native.ErrUnauthorized) {
		t.Fatalf("without a token: %v", err)
	}
	c := compat.New(&compat.Opt{RootURL: base, Token: secret})
	if _, err := c.PostJob(models.JobReq{TaskName: "entries_of", JobID: "t1", Args: []string{"USER1"}}); err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, "t1", "SUCCESS")
	if err := c.DeleteJob("t1", true); !errors.Is(err, native.ErrForbidden) {
		t.Fatalf("a delete without the jobs:cancel scope: %v", err)
	}
}

// TestModelsJSON: the models marshal under dungbeetle's names, so that
// what a program stored or logged reads the same.
func TestModelsJSON(t *testing.T) {
	eta := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{models.JobReq{TaskName: "t", JobID: "j", Queue: "q", ETA: "2030-01-02 03:04:05", Retries: 1, TTL: 2, Args: []string{"a"}, DB: "d"},
			`{"task":"t","job_id":"j","queue":"q","eta":"2030-01-02 03:04:05","retries":1,"ttl":2,"args":["a"],"db":"d"}`},
		{models.JobResp{JobID: "j", TaskName: "t", Queue: "q", ETA: &eta, Retries: 1},
			`{"job_id":"j","task":"t","queue":"q","eta":"2030-01-02T03:04:05Z","retries":1}`},
		{models.GroupStatusResp{GroupID: "g", State: "PENDING", Jobs: []models.JobStatusResp{{JobID: "j", State: "PENDING", Count: 0, Error: ""}}},
			`{"group_id":"g","state":"PENDING","jobs":[{"job_id":"j","state":"PENDING","count":0,"error":""}]}`},
		{models.GroupReq{GroupID: "g", Jobs: []models.JobReq{}}, `{"group_id":"g","jobs":[]}`},
		{models.GroupResp{GroupID: "g", Jobs: []models.JobResp{}}, `{"group_id":"g","jobs":[]}`},
		{models.HTTPResp{Status: "success", Data: true}, `{"status":"success","data":true}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T: %s, %v\nwant %s", tc.v, b, err, tc.want)
		}
	}
}

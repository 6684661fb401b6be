package client_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/http/client"
)

func jobIDs(jobs []client.Job) []string {
	out := []string{}
	for _, j := range jobs {
		out = append(out, j.JobID)
	}
	return out
}

// TestListJobsAndQueues: a token without admin lists and counts its own
// jobs alone, as if no other existed; an admin token every client's. The
// listing is newest first, pages with its cursor, filters, shows each job
// as GetJob does, and refuses a tampered cursor; a token without jobs:read
// is refused both.
func TestListJobsAndQueues(t *testing.T) {
	ctx := context.Background()
	token := func(name string, scopes ...sjhttp.Scope) sjhttp.Token {
		return sjhttp.Token{Name: name, Secrets: [][32]byte{sjhttp.HashSecret(name + "-secret-0123456789")}, Scopes: scopes}
	}
	base := testServer(t, token("alice", sjhttp.ScopeSubmit, sjhttp.ScopeRead), token("bob", sjhttp.ScopeSubmit, sjhttp.ScopeRead),
		token("carol", sjhttp.ScopeResults), token("root", sjhttp.ScopeAdmin))
	as := func(name string) *client.Client { return client.New(base, nil).WithToken(name + "-secret-0123456789") }
	alice, bob, root := as("alice"), as("bob"), as("root")
	for _, s := range []struct {
		c  *client.Client
		id string
	}{{alice, "a1"}, {bob, "b1"}, {alice, "a2"}} {
		if _, err := s.c.PostJob(ctx, "entries_of", client.JobRequest{JobID: s.id, Args: []any{"USER1"}}); err != nil {
			t.Fatal(err)
		}
		if j, err := s.c.WaitJob(ctx, s.id); err != nil || j.State != "SUCCESS" {
			t.Fatalf("%s: %+v, %v", s.id, j, err)
		}
	}

	page, err := alice.ListJobs(ctx, client.JobFilter{})
	if err != nil || !slices.Equal(jobIDs(page.Jobs), []string{"a2", "a1"}) || page.Next != "" {
		t.Fatalf("alice's jobs: %+v, %v", page, err)
	}
	got, err := alice.GetJob(ctx, "a2")
	if err != nil || !reflect.DeepEqual(page.Jobs[0], *got) || got.ResultsTable == "" || got.Count != 2 {
		t.Fatalf("a listed job %+v\nis not as GetJob shows it: %+v, %v", page.Jobs[0], got, err)
	}
	if page, err := bob.ListJobs(ctx, client.JobFilter{}); err != nil || !slices.Equal(jobIDs(page.Jobs), []string{"b1"}) {
		t.Fatalf("bob's jobs: %+v, %v", page, err)
	}
	if page, err := bob.ListJobs(ctx, client.JobFilter{GroupID: "nope", Task: "entries_of"}); err != nil || len(page.Jobs) != 0 {
		t.Fatalf("no such group: %+v, %v", page, err)
	}

	// The admin pages through everyone's, one at a time.
	var all []string
	f := client.JobFilter{Limit: 1, States: []string{"SUCCESS", "FAILURE"}, Queue: "default", Task: "entries_of", Node: "client-test",
		CreatedAfter: time.Now().Add(-time.Hour), CreatedBefore: time.Now().Add(time.Hour)}
	for range 5 {
		page, err := root.ListJobs(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, jobIDs(page.Jobs)...)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	if !slices.Equal(all, []string{"a2", "b1", "a1"}) {
		t.Fatalf("every client's jobs, a page at a time: %v", all)
	}
	if page, err := root.ListJobs(ctx, client.JobFilter{States: []string{"PENDING"}}); err != nil || len(page.Jobs) != 0 {
		t.Fatalf("pending jobs: %+v, %v", page, err)
	}

	first, err := root.ListJobs(ctx, client.JobFilter{Limit: 1})
	if err != nil || first.Next == "" {
		t.Fatal(first, err)
	}
	tampered := []byte(first.Next)
	tampered[2] ^= 1
	for _, c := range []struct {
		c      *client.Client
		cursor string
	}{{root, string(tampered)}, {root, first.Next + "A"}, {alice, first.Next}} {
		var apiErr *client.Error
		if _, err := c.c.ListJobs(ctx, client.JobFilter{Limit: 1, Cursor: c.cursor}); !errors.Is(err, client.ErrBadRequest) ||
			!errors.As(err, &apiErr) || !strings.HasPrefix(apiErr.Message, "cursor: ") {
			t.Errorf("cursor %q: %v", c.cursor, err)
		}
	}
	if _, err := root.ListJobs(ctx, client.JobFilter{States: []string{"DONE"}}); !errors.Is(err, client.ErrBadRequest) || !strings.Contains(err.Error(), "state:") {
		t.Errorf("an unknown state: %v", err)
	}
	if _, err := as("carol").ListJobs(ctx, client.JobFilter{}); !errors.Is(err, client.ErrForbidden) || !strings.Contains(err.Error(), "jobs:read") {
		t.Errorf("carol lists: %v", err)
	}
	if _, err := as("carol").Queues(ctx); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("carol's queues: %v", err)
	}
	if _, err := client.New(base, nil).ListJobs(ctx, client.JobFilter{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("no token: %v", err)
	}

	// Workers as GET /tasks counts them (this node, run without cluster
	// metadata, names no queues).
	tasks, err := root.Tasks(ctx)
	if err != nil || len(tasks) == 0 {
		t.Fatal(tasks, err)
	}
	for _, c := range []struct {
		name    string
		c       *client.Client
		success int64
	}{{"alice", alice, 2}, {"bob", bob, 1}, {"root", root, 3}} {
		qs, err := c.c.Queues(ctx)
		if err != nil || len(qs) != 1 {
			t.Fatalf("%s's queues: %+v, %v", c.name, qs, err)
		}
		q := qs[0]
		if q.Queue != "default" || q.Pending != 0 || q.Running != 0 || q.Workers != tasks[0].Workers || q.OldestReadySeconds != nil ||
			!reflect.DeepEqual(q.FinishedLastHour, map[string]int64{"SUCCESS": c.success, "FAILURE": 0, "CANCELLED": 0}) {
			t.Errorf("%s's queue: %+v", c.name, q)
		}
	}
	// Databases, as GET /databases summarises them: the tasks' one, no cap,
	// nothing running or waiting.
	dbs, err := alice.Databases(ctx)
	if err != nil || len(dbs) != 1 || dbs[0].DB == "" || dbs[0].MaxRunning != nil || dbs[0].Running != 0 || dbs[0].Ready != 0 || dbs[0].HeldBack != 0 {
		t.Errorf("alice's databases: %+v, %v", dbs, err)
	}
	if _, err := as("carol").Databases(ctx); !errors.Is(err, client.ErrForbidden) || !strings.Contains(err.Error(), "jobs:read") {
		t.Errorf("carol's databases: %v", err)
	}
}

// TestMembers: an admin token lists the cluster's members, this node among
// them; another token is refused with the scope it lacks.
func TestMembers(t *testing.T) {
	ctx := context.Background()
	base := testServer(t,
		sjhttp.Token{Name: "alice", Secrets: [][32]byte{sjhttp.HashSecret("alice-secret-0123456789")}, Scopes: []sjhttp.Scope{sjhttp.ScopeRead}},
		sjhttp.Token{Name: "root", Secrets: [][32]byte{sjhttp.HashSecret("root-secret-0123456789")}, Scopes: []sjhttp.Scope{sjhttp.ScopeAdmin}})
	members, err := client.New(base, nil).WithToken("root-secret-0123456789").Members(ctx)
	if err != nil || len(members) != 1 {
		t.Fatalf("members: %+v, %v", members, err)
	}
	// This node, started without cluster metadata, has no name or queues.
	if m := members[0]; !m.Self || m.State != "alive" || m.ID == "" || m.Address == "" || m.Queues == nil {
		t.Errorf("this node: %+v", m)
	}
	if _, err := client.New(base, nil).WithToken("alice-secret-0123456789").Members(ctx); !errors.Is(err, client.ErrForbidden) || !strings.Contains(err.Error(), "admin") {
		t.Errorf("alice lists the members: %v", err)
	}
}

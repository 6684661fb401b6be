package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/http/client"
)

func TestClient(t *testing.T) {
	ctx := context.Background()
	c := client.New(testServer(t), nil)

	tasks, err := c.Tasks(ctx)
	if err != nil || len(tasks) != 2 || tasks[0].Name != "entries_of" || tasks[0].NumArgs == nil || *tasks[0].NumArgs != 1 {
		t.Fatalf("Tasks: %+v, %v", tasks, err)
	}

	rec, err := c.PostJob(ctx, "entries_of", client.JobRequest{JobID: "j1", Args: []any{"USER1"}})
	if err != nil || rec.JobID != "j1" || rec.Task != "entries_of" || rec.Queue != "default" || rec.ETA != nil {
		t.Fatalf("PostJob: %+v, %v", rec, err)
	}
	j, err := c.WaitJob(ctx, "j1")
	if err != nil || j.State != client.StateSuccess || j.Count != 2 || j.ResultsTable != "results_j1" || j.FinishedAt == nil {
		t.Fatalf("WaitJob: %+v, %v", j, err)
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

func TestClientReportsUnreachableServer(t *testing.T) {
	c := client.New("http://127.0.0.1:1", nil)
	_, err := c.Tasks(context.Background())
	var apiErr *client.Error
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("err %v: want a transport error, not an API answer", err)
	}
}

func waitState(t *testing.T, c *client.Client, id, state string) {
	t.Helper()
	waitFor(t, func() bool {
		j, err := c.GetJob(context.Background(), id)
		return err == nil && j.State == state
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

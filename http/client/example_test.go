package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sql-jobber/sql-jobber/http/client"
)

func Example() {
	base, stop := exampleServer() // e.g. "http://127.0.0.1:6060"
	defer stop()
	ctx := context.Background()
	c := client.New(base, nil)

	rec, err := c.PostJob(ctx, "entries_of", client.JobRequest{JobID: "report-1", Args: []any{"USER1"}})
	if err != nil {
		fmt.Println("post:", err)
		return
	}
	job, err := c.WaitJob(ctx, rec.JobID)
	if err != nil {
		fmt.Println("wait:", err)
		return
	}
	fmt.Println(job.State, job.Count, "rows in", job.ResultsTable)
	// Output: SUCCESS 2 rows in results_report-1
}

func ExampleClient_PostJob_conflict() {
	base, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c := client.New(base, nil)

	// A job ID runs once at a time: while "nightly" runs, a second job
	// with that ID is refused.
	if _, err := c.PostJob(ctx, "slow", client.JobRequest{JobID: "nightly"}); err != nil {
		fmt.Println(err)
		return
	}
	_, err := c.PostJob(ctx, "slow", client.JobRequest{JobID: "nightly"})
	fmt.Println(errors.Is(err, client.ErrConflict))
	fmt.Println(c.DeleteJob(ctx, "nightly", true))
	// Output:
	// true
	// <nil>
}

func ExampleClient_PostGroup() {
	base, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c := client.New(base, nil)

	_, err := c.PostGroup(ctx, client.GroupRequest{GroupID: "month-end", Concurrency: 2, Jobs: []client.GroupJob{
		{Task: "entries_of", JobRequest: client.JobRequest{Args: []any{"USER1"}}},
		{Task: "entries_of", JobRequest: client.JobRequest{Args: []any{"USER2"}}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		g, err := c.GetGroup(ctx, "month-end")
		if err != nil {
			fmt.Println(err)
			return
		}
		if client.Finished(g.State) {
			fmt.Println(g.State, len(g.Jobs), "jobs")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Output: SUCCESS 2 jobs
}

func ExampleClient_GetJob_notFound() {
	base, stop := exampleServer()
	defer stop()
	_, err := client.New(base, nil).GetJob(context.Background(), "no-such-job")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output: true
}

package client_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
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
	// WaitGroup long-polls until every job has finished, for a minute at
	// most.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	g, err := c.WaitGroup(ctx, "month-end")
	if err != nil {
		fmt.Println("wait:", err)
		return
	}
	fmt.Println(g.State, len(g.Jobs), "jobs")
	// Output: SUCCESS 2 jobs
}

func ExampleClient_GetJob_notFound() {
	base, stop := exampleServer()
	defer stop()
	_, err := client.New(base, nil).GetJob(context.Background(), "no-such-job")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output: true
}

func ExampleClient_Results() {
	base, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c := client.New(base, nil)

	finishedJob(c, "report-2", "entries_of", "USER1")
	// A page at a time, largest amount first; Next reads the next page.
	q := client.ResultsQuery{OrderBy: "-amount", Limit: 1, Filters: []client.Filter{{Column: "amount", Op: "gte", Value: "10"}}}
	for {
		page, err := c.Results(ctx, "report-2", q)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, row := range page.Rows {
			fmt.Println(row...)
		}
		if !page.More {
			break
		}
		q.Cursor = page.Next
	}
	// Output:
	// 2 USER1 20.25
	// 1 USER1 10.5
}

func ExampleClient_DownloadResults() {
	base, stop := exampleServer()
	defer stop()
	c := client.New(base, nil)
	finishedJob(c, "report-3", "entries_of", "USER1")

	// The whole table as CSV, streamed: nothing is held in memory.
	s, err := c.DownloadResults(context.Background(), "report-3", "csv", client.ResultsQuery{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	r := csv.NewReader(s)
	for {
		record, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(record)
	}
	fmt.Println("more:", s.More)
	// Output:
	// [id user_id amount]
	// [1 USER1 10.5]
	// [2 USER1 20.25]
	// more: false
}

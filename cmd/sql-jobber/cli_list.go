package main

// The client's listings: jobs, queues, databases, tasks, members, as aligned tables or
// JSON.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sql-jobber/sql-jobber/http/client"
)

func (c *cli) jobs(ctx context.Context, args []string) int {
	fs := c.flags("[flags]", `List jobs, newest first, a page at a time: with a token that is not an
admin's, the token's own. When more follow, stderr says the --cursor of the
next page (give it with the same filters).`)
	var f client.JobFilter
	fs.Var(&listFlag{values: &f.States}, "state", "jobs in this state: PENDING, STARTED, RETRY, SUCCESS, FAILURE, CANCELLED (repeatable)")
	fs.StringVar(&f.Queue, "queue", "", "jobs of this queue")
	fs.StringVar(&f.Task, "task", "", "jobs of this task")
	fs.StringVar(&f.GroupID, "group", "", "jobs of this group")
	fs.StringVar(&f.Node, "node", "", "jobs that run or ran on this worker")
	after := fs.String("created-after", "", "jobs created at or after this time (RFC 3339, e.g. 2026-01-02T15:04:05Z)")
	before := fs.String("created-before", "", "jobs created before this time (RFC 3339)")
	fs.IntVar(&f.Limit, "limit", 0, "jobs in the page, 1 to 1000 (default: the server's, 100)")
	fs.StringVar(&f.Cursor, "cursor", "", "the page after this cursor, as a page gave it")
	_, code, ok := c.parse(fs, args, nil, false)
	if !ok {
		return code
	}
	for i, s := range f.States {
		f.States[i] = strings.ToUpper(s)
	}
	for _, t := range []struct {
		flag string
		s    string
		t    *time.Time
	}{{"--created-after", *after, &f.CreatedAfter}, {"--created-before", *before, &f.CreatedBefore}} {
		if t.s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.s)
		if err != nil {
			return c.usageError("%s: %s is not an RFC 3339 time such as 2026-01-02T15:04:05Z", t.flag, quoteArg(t.s))
		}
		*t.t = v
	}
	if f.Limit < 0 || fs.isSet("limit") && f.Limit == 0 {
		return c.usageError("--limit must be at least 1, got %d", f.Limit)
	}
	page, err := c.api.ListJobs(ctx, f)
	if err != nil {
		return c.fail(ctx, err)
	}
	if c.json {
		return c.printJSON(page)
	}
	if code := c.jobTable(page.Jobs); code != exitOK {
		return code
	}
	if page.Next != "" {
		fmt.Fprintf(c.stderr, "%s: more jobs follow: add --cursor %s\n", c.name, sanitize(page.Next))
	}
	return exitOK
}

func (c *cli) jobTable(jobs []client.Job) int {
	if len(jobs) == 0 {
		fmt.Fprintf(c.stderr, "%s: no jobs\n", c.name)
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB ID\tTASK\tQUEUE\tSTATE\tROWS\tCREATED (UTC)\tDURATION\tNODE\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", clip(j.JobID, 64), clip(j.Task, 40), clip(j.Queue, 40), clip(j.State, 20), j.Count,
			formatTime(j.CreatedAt), cellOr(runTime(&j)), clip(cellOr(j.Node), 40), clip(cellOr(j.Error), 60))
	}
	return c.flush(tw)
}

// cellOr is "-" for an empty cell, so that columns stay readable.
func cellOr(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) queues(ctx context.Context, args []string) int {
	fs := c.flags("[flags]", `Summarise each queue: jobs waiting and running, jobs finished in the last
hour by final state, how long the oldest job ready to start has waited, and
the cluster members that work it. With a token that is not an admin's, of
the token's own jobs.`)
	if _, code, ok := c.parse(fs, args, nil, false); !ok {
		return code
	}
	qs, err := c.api.Queues(ctx)
	if err != nil {
		return c.fail(ctx, err)
	}
	if c.json {
		return c.printJSON(qs)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPENDING\tRUNNING\tSUCCESS 1H\tFAILURE 1H\tCANCELLED 1H\tOLDEST WAIT\tWORKERS")
	for _, q := range qs {
		wait := "-"
		if q.OldestReadySeconds != nil {
			wait = (time.Duration(*q.OldestReadySeconds * float64(time.Second))).Round(time.Second).String()
		}
		h := q.FinishedLastHour
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\n", clip(q.Queue, 64), q.Pending, q.Running,
			h[client.StateSuccess], h[client.StateFailure], h[client.StateCancelled], wait, q.Workers)
	}
	return c.flush(tw)
}

func (c *cli) databases(ctx context.Context, args []string) int {
	fs := c.flags("[flags]", `Summarise each source database: its cap on running jobs across the cluster
([db.<name>] max_running; - when it has none), and its jobs running, ready
to start, and held back by the cap. With a token that is not an admin's, of
the token's own jobs.`)
	if _, code, ok := c.parse(fs, args, nil, false); !ok {
		return code
	}
	dbs, err := c.api.Databases(ctx)
	if err != nil {
		return c.fail(ctx, err)
	}
	if c.json {
		return c.printJSON(dbs)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DB\tMAX RUNNING\tRUNNING\tREADY\tHELD BACK")
	for _, d := range dbs {
		max := "-"
		if d.MaxRunning != nil {
			max = strconv.Itoa(*d.MaxRunning)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", clip(d.DB, 64), max, d.Running, d.Ready, d.HeldBack)
	}
	return c.flush(tw)
}

func (c *cli) tasks(ctx context.Context, args []string) int {
	fs := c.flags("[flags]", `List the server's tasks: their queue, number of arguments, databases,
results backends, and the cluster members that work their queue (0: jobs
wait until one joins).`)
	if _, code, ok := c.parse(fs, args, nil, false); !ok {
		return code
	}
	tasks, err := c.api.Tasks(ctx)
	if err != nil {
		return c.fail(ctx, err)
	}
	if c.json {
		return c.printJSON(tasks)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tQUEUE\tARGS\tDBS\tRESULTS\tRAW\tWORKERS")
	for _, t := range tasks {
		args := "?" // raw tasks: the server does not know
		if t.NumArgs != nil {
			args = strconv.Itoa(*t.NumArgs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%d\n", clip(t.Name, 64), clip(t.Queue, 40), args,
			clip(strings.Join(t.DBs, ","), 60), clip(strings.Join(t.Results, ","), 60), t.Raw, t.Workers)
	}
	return c.flush(tw)
}

func (c *cli) members(ctx context.Context, args []string) int {
	fs := c.flags("[flags]", `List the cluster's members as the server sees them: their state, API
address, and the queues they work with their slots. Needs an admin token
where tokens are configured.`)
	if _, code, ok := c.parse(fs, args, nil, false); !ok {
		return code
	}
	members, err := c.api.Members(ctx)
	if err != nil {
		return c.fail(ctx, err)
	}
	if c.json {
		return c.printJSON(members)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tAPI\tADDRESS\tQUEUES\tID")
	for _, m := range members {
		var qs []string
		for _, q := range slices.Sorted(maps.Keys(m.Queues)) {
			qs = append(qs, fmt.Sprintf("%s=%d", q, m.Queues[q]))
		}
		name := cellOr(m.Name)
		if m.Self {
			name += " (this node)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clip(name, 64), clip(m.State, 20), clip(cellOr(m.API), 64), clip(m.Address, 64),
			clip(cellOr(strings.Join(qs, ",")), 80), clip(m.ID, 40))
	}
	return c.flush(tw)
}

// Package compat is a Go client for sql-jobber with the API of
// dungbeetle's (github.com/zerodha/dungbeetle/v2/client): the same
// constructor, options, methods and models, so that moving a program from
// dungbeetle to sql-jobber is a change of import paths:
//
//	client "github.com/sql-jobber/sql-jobber/http/client/compat"        // was github.com/zerodha/dungbeetle/v2/client
//	"github.com/sql-jobber/sql-jobber/http/client/compat/models"        // was github.com/zerodha/dungbeetle/v2/models
//	"github.com/sql-jobber/sql-jobber/http/client/compat/tasqueue"      // was github.com/kalbhor/tasqueue/v2
//
// The models are in a subpackage, and the pending-job type in another,
// because dungbeetle's callers write models.JobReq and
// tasqueue.JobMessage: with the same last path elements, only the import
// lines change, never the code. New code should use the native client,
// github.com/sql-jobber/sql-jobber/http/client, which this package is
// built on and which has what dungbeetle's has not (contexts, waiting,
// results, groups' concurrency, errors to test with errors.Is).
//
// # Job states
//
// dungbeetle reports five states (its mapping of tasqueue's, named as
// Machinery named them); sql-jobber has six. They map as:
//
//	sql-jobber   dungbeetle
//	PENDING      PENDING
//	STARTED      STARTED
//	RETRY        RETRY
//	SUCCESS      SUCCESS
//	FAILURE      FAILURE
//	CANCELLED    FAILURE, with Error "cancelled"
//
// dungbeetle had no cancelled state (a cancelled job was deleted, and its
// status was an error); a program that waits for SUCCESS or FAILURE
// would wait forever on an unknown state, so a cancelled job is a failure
// here. A group's state maps the same way.
//
// # Differences
//
// Errors are the native client's (*client.Error, and errors.Is with
// client.ErrNotFound, ErrConflict, ...), whose text differs from
// dungbeetle's "404: job not found". Cancelling a job without purge keeps
// its record (CANCELLED, reported as FAILURE) where dungbeetle deleted it.
// A group's jobs are listed in submission order. Opt.Logger is accepted
// and unused, as dungbeetle's client never logged either.
package compat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sql-jobber/sql-jobber/http/client"
	"github.com/sql-jobber/sql-jobber/http/client/compat/models"
	"github.com/sql-jobber/sql-jobber/http/client/compat/tasqueue"
)

// Opt configures a Client.
type Opt struct {
	// RootURL is the server's address, e.g. "http://127.0.0.1:6060".
	RootURL string
	// HTTPClient makes the requests; nil means http.DefaultClient (with
	// dungbeetle's client it was required). Its Timeout bounds the calls
	// without a context.
	HTTPClient *http.Client
	// Logger is accepted for compatibility; the client logs nothing.
	Logger *slog.Logger
	// Token is the secret of one of the server's API tokens
	// ([auth.tokens.*]), sent as a bearer token with every request; ""
	// sends none. dungbeetle had no authentication, so this is the one
	// field a migrated program may need to add, and only if the server
	// is configured with tokens.
	Token string
}

// Client calls one sql-jobber server with dungbeetle's API.
type Client struct {
	c *client.Client
}

// New returns a client configured by o, which it reads once: later changes
// to *o do not reach the client. A nil o is an empty Opt, whose calls fail
// with an error rather than a panic.
func New(o *Opt) *Client {
	if o == nil {
		o = &Opt{}
	}
	c := client.New(o.RootURL, o.HTTPClient)
	if o.Token != "" {
		c = c.WithToken(o.Token)
	}
	return &Client{c: c}
}

// Native returns the native client this one calls, for what dungbeetle's
// API has no method for (waiting, reading results, listing tasks).
func (c *Client) Native() *client.Client {
	return c.c
}

// The methods without a context are dungbeetle's signatures, which a
// migrated program calls; like database/sql's Query and QueryContext, each
// calls its Context variant with context.Background(), and new code
// should call the variants.

// PostJob queues a job of j.TaskName.
func (c *Client) PostJob(j models.JobReq) (models.JobResp, error) {
	return c.PostJobContext(context.Background(), j)
}

// PostJobContext is PostJob with a context.
func (c *Client) PostJobContext(ctx context.Context, j models.JobReq) (models.JobResp, error) {
	if j.TaskName == "" {
		return models.JobResp{}, errors.New("compat: PostJob: models.JobReq.TaskName is empty: name the task to run")
	}
	req, err := jobRequest(j)
	if err != nil {
		return models.JobResp{}, fmt.Errorf("compat: PostJob: %w", err)
	}
	rec, err := c.c.PostJob(ctx, j.TaskName, req)
	if err != nil {
		return models.JobResp{}, err
	}
	return jobResp(*rec), nil
}

// GetJobStatus returns a job's status.
func (c *Client) GetJobStatus(jobID string) (models.JobStatusResp, error) {
	return c.GetJobStatusContext(context.Background(), jobID)
}

// GetJobStatusContext is GetJobStatus with a context.
func (c *Client) GetJobStatusContext(ctx context.Context, jobID string) (models.JobStatusResp, error) {
	j, err := c.c.GetJob(ctx, jobID)
	if err != nil {
		return models.JobStatusResp{}, err
	}
	return jobStatus(*j), nil
}

// DeleteJob cancels an unfinished job; with purge it also deletes the
// job's record and results table, finished or not. Deleting a finished job
// without purge is an error (client.ErrConflict), as it was with
// dungbeetle.
func (c *Client) DeleteJob(jobID string, purge bool) error {
	return c.DeleteJobContext(context.Background(), jobID, purge)
}

// DeleteJobContext is DeleteJob with a context.
func (c *Client) DeleteJobContext(ctx context.Context, jobID string, purge bool) error {
	return c.c.DeleteJob(ctx, jobID, purge)
}

// DeleteGroupJob cancels every unfinished job of the group groupID (the
// parameter is named jobID in dungbeetle's signature); with purge it also
// deletes the group, its jobs' records and their results tables.
func (c *Client) DeleteGroupJob(jobID string, purge bool) error {
	return c.DeleteGroupJobContext(context.Background(), jobID, purge)
}

// DeleteGroupJobContext is DeleteGroupJob with a context.
func (c *Client) DeleteGroupJobContext(ctx context.Context, groupID string, purge bool) error {
	return c.c.DeleteGroup(ctx, groupID, purge)
}

// GetPendingJobs lists the jobs of queue that have not started, in the
// order they will start. Each is a tasqueue.JobMessage with ID, Status
// (tasqueue.StatusStarted, "queued"), Queue, and Job's Task and Opts' ID,
// ETA and Queue set; sql-jobber's listing has no arguments (Payload) nor
// retry counts, so those stay zero.
func (c *Client) GetPendingJobs(queue string) ([]tasqueue.JobMessage, error) {
	return c.GetPendingJobsContext(context.Background(), queue)
}

// GetPendingJobsContext is GetPendingJobs with a context.
func (c *Client) GetPendingJobsContext(ctx context.Context, queue string) ([]tasqueue.JobMessage, error) {
	pending, err := c.c.PendingJobs(ctx, queue)
	if err != nil {
		return nil, err
	}
	out := make([]tasqueue.JobMessage, 0, len(pending))
	for _, p := range pending {
		var eta time.Time
		if p.ETA != nil {
			eta = *p.ETA
		}
		out = append(out, tasqueue.JobMessage{
			Meta: tasqueue.Meta{ID: p.JobID, Status: tasqueue.StatusStarted, Queue: p.Queue},
			Job:  &tasqueue.Job{Task: p.Task, Opts: tasqueue.JobOpts{ID: p.JobID, ETA: eta, Queue: p.Queue}},
		})
	}
	return out, nil
}

// PostJobGroup queues the jobs of g as one group. dungbeetle's request has
// no concurrency, so the group runs default_group_concurrency jobs at once
// (use the native client's PostGroup to choose).
func (c *Client) PostJobGroup(g models.GroupReq) (models.GroupResp, error) {
	return c.PostJobGroupContext(context.Background(), g)
}

// PostJobGroupContext is PostJobGroup with a context.
func (c *Client) PostJobGroupContext(ctx context.Context, g models.GroupReq) (models.GroupResp, error) {
	req := client.GroupRequest{GroupID: g.GroupID, Jobs: make([]client.GroupJob, 0, len(g.Jobs))}
	for i, j := range g.Jobs {
		// An empty task is left to the server, which names the job in
		// its 400 (jobs[i].task), as it names every other bad field.
		r, err := jobRequest(j)
		if err != nil {
			return models.GroupResp{}, fmt.Errorf("compat: PostJobGroup: jobs[%d]: %w", i, err)
		}
		req.Jobs = append(req.Jobs, client.GroupJob{Task: j.TaskName, JobRequest: r})
	}
	rec, err := c.c.PostGroup(ctx, req)
	if err != nil {
		return models.GroupResp{}, err
	}
	out := models.GroupResp{GroupID: rec.GroupID, Jobs: make([]models.JobResp, 0, len(rec.Jobs))}
	for _, j := range rec.Jobs {
		out.Jobs = append(out.Jobs, jobResp(j))
	}
	return out, nil
}

// GetGroupStatus returns a group's state and its jobs', in submission
// order.
func (c *Client) GetGroupStatus(groupID string) (models.GroupStatusResp, error) {
	return c.GetGroupStatusContext(context.Background(), groupID)
}

// GetGroupStatusContext is GetGroupStatus with a context.
func (c *Client) GetGroupStatusContext(ctx context.Context, groupID string) (models.GroupStatusResp, error) {
	g, err := c.c.GetGroup(ctx, groupID)
	if err != nil {
		return models.GroupStatusResp{}, err
	}
	out := models.GroupStatusResp{GroupID: g.GroupID, State: state(g.State), Jobs: make([]models.JobStatusResp, 0, len(g.Jobs))}
	for _, j := range g.Jobs {
		out.Jobs = append(out.Jobs, jobStatus(j))
	}
	return out, nil
}

// etaLayout is the ETA format dungbeetle parsed, as UTC.
const etaLayout = "2006-01-02 15:04:05"

// jobRequest turns dungbeetle's request into the native client's.
func jobRequest(j models.JobReq) (client.JobRequest, error) {
	r := client.JobRequest{JobID: j.JobID, Queue: j.Queue, DB: j.DB, Retries: j.Retries, TTL: time.Duration(j.TTL) * time.Second}
	if j.Args != nil {
		r.Args = make([]any, len(j.Args))
		for i, a := range j.Args {
			r.Args[i] = a
		}
	}
	if j.ETA != "" {
		// Parsed here, not passed on as written: the server reads an ETA
		// without a zone in its eta_timezone, and dungbeetle read it as
		// UTC, which a migrated program expects.
		eta, err := time.Parse(etaLayout, j.ETA)
		if err != nil {
			var rfcErr error
			if eta, rfcErr = time.Parse(time.RFC3339Nano, j.ETA); rfcErr != nil {
				return client.JobRequest{}, fmt.Errorf("eta %q: want %q (UTC) or RFC 3339", j.ETA, etaLayout)
			}
		}
		r.ETA = eta
	}
	return r, nil
}

// jobResp turns an accepted job into dungbeetle's answer.
func jobResp(rec client.JobReceipt) models.JobResp {
	eta := rec.ETA
	if eta == nil {
		eta = new(time.Time)
	}
	return models.JobResp{JobID: rec.JobID, TaskName: rec.Task, Queue: rec.Queue, ETA: eta, Retries: rec.Retries}
}

// jobStatus turns a job's status into dungbeetle's.
func jobStatus(j client.Job) models.JobStatusResp {
	out := models.JobStatusResp{JobID: j.JobID, State: state(j.State), Count: int(j.Count), Error: j.Error}
	if j.State == client.StateCancelled && out.Error == "" {
		out.Error = "cancelled"
	}
	return out
}

// state maps a job's or group's state onto dungbeetle's five (see the
// package comment).
func state(s string) string {
	if s == client.StateCancelled {
		return client.StateFailure
	}
	return s
}

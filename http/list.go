package http

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Lister is what the job and queue listings need from the job engine.
type Lister interface {
	// ListJobs returns a page of the jobs f selects that the caller may
	// see, newest first.
	ListJobs(ctx context.Context, f sqljobber.JobFilter) (*sqljobber.JobPage, error)
	// Queues summarises each queue, as the caller may see it.
	Queues(ctx context.Context) ([]sqljobber.QueueSummary, error)
	// Databases summarises each source database, as the caller may see
	// it.
	Databases(ctx context.Context) ([]sqljobber.DBSummary, error)
}

// listParams are the parameters of GET /jobs, in the order errors list
// them.
var listParams = []string{"state", "queue", "task", "group_id", "node", "created_after", "created_before", "limit", "cursor"}

// maxNodeName bounds the node filter: worker names are the ledger's short
// text.
const maxNodeName = 255

// jobFilter reads the query of GET /jobs; anything else is refused, naming
// the parameter.
func (s *Server) jobFilter(v url.Values) (sqljobber.JobFilter, error) {
	var f sqljobber.JobFilter
	for _, key := range slices.Sorted(maps.Keys(v)) {
		if !cleanText(key) {
			return f, badRequest{msg: fmt.Sprintf("parameter %s: its name holds a NUL byte or is not UTF-8", quote(key))}
		}
		if !slices.Contains(listParams, key) {
			return f, badRequest{msg: fmt.Sprintf("unknown parameter %s: use %s", quote(key), joinNames(listParams))}
		}
		if key != "state" && len(v[key]) > 1 {
			return f, badRequest{msg: fmt.Sprintf("%s: given %d times; give it once", key, len(v[key]))}
		}
		for _, val := range v[key] {
			if !cleanText(val) {
				return f, badRequest{msg: key + ": holds a NUL byte or is not UTF-8"}
			}
			if err := s.setFilter(&f, key, val); err != nil {
				return f, err
			}
		}
	}
	if !f.CreatedAfter.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedBefore.After(f.CreatedAfter) {
		return f, badRequest{msg: "created_before: must be later than created_after"}
	}
	return f, nil
}

func (s *Server) setFilter(f *sqljobber.JobFilter, key, val string) error {
	name := func(dst *string) error {
		if !sqlexec.ValidName(val) {
			return badRequest{msg: fmt.Sprintf("%s: %s is not 1 to 128 letters, digits, '_', '-' or '.'", key, quote(val))}
		}
		*dst = val
		return nil
	}
	when := func(dst *time.Time) error {
		t, err := time.Parse(time.RFC3339Nano, val)
		if err != nil {
			return badRequest{msg: fmt.Sprintf("%s: %s is not an RFC 3339 time (2026-12-01T10:00:00Z)", key, quote(val))}
		}
		*dst = t
		return nil
	}
	switch key {
	case "state":
		st := sqljobber.State(val)
		if !st.Active() && !st.Final() {
			return badRequest{msg: fmt.Sprintf("state: %s is not PENDING, STARTED, RETRY, SUCCESS, FAILURE or CANCELLED", quote(val))}
		}
		if !slices.Contains(f.States, st) {
			f.States = append(f.States, st)
		}
	case "queue":
		return name(&f.Queue)
	case "task":
		return name(&f.Task)
	case "group_id":
		if err := s.svc.ValidateID("group_id", val); err != nil {
			return err
		}
		f.GroupID = val
	case "node":
		if val == "" || len(val) > maxNodeName {
			return badRequest{msg: fmt.Sprintf("node: must be a worker name of 1 to %d bytes", maxNodeName)}
		}
		f.Node = val
	case "created_after":
		return when(&f.CreatedAfter)
	case "created_before":
		return when(&f.CreatedBefore)
	case "limit":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > sqljobber.JobListLimitMax {
			return badRequest{msg: fmt.Sprintf("limit: %s is not an integer from 1 to %d", quote(val), sqljobber.JobListLimitMax)}
		}
		f.Limit = n
	case "cursor":
		if val == "" {
			return badRequest{msg: "cursor: empty; leave it out for the first page"}
		}
		// The ledger checks the rest: it made the cursor.
		f.Cursor = val
	}
	return nil
}

type jobPageJSON struct {
	Jobs []jobJSON `json:"jobs"`
	// Next is the cursor of the next page; "" when this is the last.
	Next string `json:"next"`
}

func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		// r.URL.Query() would drop what it cannot read.
		s.writeError(w, r, badRequest{msg: "malformed query string: " + clip(err.Error())})
		return
	}
	f, err := s.jobFilter(vals)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.svc.ListJobs(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := jobPageJSON{Jobs: make([]jobJSON, 0, len(page.Jobs)), Next: page.Next}
	for _, j := range page.Jobs {
		out.Jobs = append(out.Jobs, jobOf(j))
	}
	s.writeData(w, out)
}

type queueJSON struct {
	Queue   string `json:"queue"`
	Pending int64  `json:"pending"`
	Running int64  `json:"running"`
	// FinishedLastHour counts the jobs that finished in the last hour, by
	// final state (each present, 0 when none).
	FinishedLastHour map[sqljobber.State]int64 `json:"finished_last_hour"`
	// OldestReadySeconds is how long the oldest job that could start has
	// waited since it could; null when none waits.
	OldestReadySeconds *float64 `json:"oldest_ready_seconds"`
	Workers            int      `json:"workers"`
}

func (s *Server) handleQueues(w http.ResponseWriter, r *http.Request) {
	if err := noParams(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	queues, err := s.svc.Queues(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := time.Now()
	out := make([]queueJSON, 0, len(queues))
	for _, q := range queues {
		qj := queueJSON{Queue: q.Queue, Pending: q.Pending, Running: q.Running, Workers: q.Workers,
			FinishedLastHour: map[sqljobber.State]int64{sqljobber.StateSuccess: 0, sqljobber.StateFailure: 0, sqljobber.StateCancelled: 0}}
		maps.Copy(qj.FinishedLastHour, q.Finished)
		if !q.OldestReady.IsZero() {
			// Clocks of nodes differ a little: a job is never shown
			// waiting for less than nothing.
			age := max(now.Sub(q.OldestReady), 0).Seconds()
			qj.OldestReadySeconds = &age
		}
		out = append(out, qj)
	}
	s.writeData(w, out)
}

type databaseJSON struct {
	DB string `json:"db"`
	// MaxRunning is the database's cap across the cluster; null when it
	// has none.
	MaxRunning *int  `json:"max_running"`
	Running    int64 `json:"running"`
	Ready      int64 `json:"ready"`
	HeldBack   int64 `json:"held_back"`
}

func (s *Server) handleDatabases(w http.ResponseWriter, r *http.Request) {
	if err := noParams(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	dbs, err := s.svc.Databases(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]databaseJSON, 0, len(dbs))
	for _, d := range dbs {
		dj := databaseJSON{DB: d.DB, Running: d.Running, Ready: d.Ready, HeldBack: d.HeldBack}
		if d.MaxRunning > 0 {
			dj.MaxRunning = &d.MaxRunning
		}
		out = append(out, dj)
	}
	s.writeData(w, out)
}

// noParams refuses a request with a query string, for routes that take
// none: a parameter a client believes does something must not be ignored.
func noParams(r *http.Request) error {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest{msg: "malformed query string: " + clip(err.Error())}
	}
	for _, key := range slices.Sorted(maps.Keys(vals)) {
		return badRequest{msg: fmt.Sprintf("unknown parameter %s: this endpoint takes none", quote(key))}
	}
	return nil
}

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			out += " or "
		default:
			out += ", "
		}
		out += n
	}
	return out
}

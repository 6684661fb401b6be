package http

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// groupRequest is the body of POST /groups.
type groupRequest struct {
	GroupID     string            `json:"group_id"`
	Concurrency *int              `json:"concurrency"`
	Jobs        []groupJobRequest `json:"jobs"`
}

type groupJobRequest struct {
	Task string `json:"task"`
	jobRequest
}

type groupReceiptJSON struct {
	GroupID string        `json:"group_id"`
	Jobs    []receiptJSON `json:"jobs"`
}

func (s *Server) handlePostGroup(w http.ResponseWriter, r *http.Request) {
	var body groupRequest
	if err := s.decodeBody(w, r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if c := body.Concurrency; c != nil && (*c < 1 || *c > actors.MaxGroupConcurrency) {
		s.writeError(w, r, badRequest{msg: fmt.Sprintf("concurrency: must be between 1 and %d", actors.MaxGroupConcurrency)})
		return
	}
	req := actors.GroupRequest{GroupID: body.GroupID, Concurrency: body.Concurrency}
	for i, jb := range body.Jobs {
		if jb.Task != "" && !sqlexec.ValidName(jb.Task) {
			// Checked here as in a path, so that the engine's "no
			// task" does not quote it whole.
			s.writeError(w, r, badRequest{msg: fmt.Sprintf("jobs[%d].task: must be 1 to 128 letters, digits, '_', '-' or '.'", i)})
			return
		}
		jr, err := s.submitRequest(fmt.Sprintf("jobs[%d].", i), jb.Task, jb.jobRequest)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		req.Jobs = append(req.Jobs, jr)
	}
	rec, err := s.svc.SubmitGroup(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := groupReceiptJSON{GroupID: rec.GroupID, Jobs: make([]receiptJSON, 0, len(rec.Jobs))}
	for i := range rec.Jobs {
		out.Jobs = append(out.Jobs, receiptOf(&rec.Jobs[i]))
	}
	s.writeData(w, out)
}

type groupJSON struct {
	GroupID     string    `json:"group_id"`
	State       string    `json:"state"`
	Owner       string    `json:"owner,omitempty"`
	Concurrency int       `json:"concurrency"`
	Jobs        []jobJSON `json:"jobs"`
}

func (s *Server) handleGetGroup(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["groupID"]
	wait, err := s.waitParam(r)
	if err == nil && wait > 0 {
		err = s.waitOn(r, func() error { return s.svc.WaitGroup(r.Context(), id, wait) })
	}
	var g *sqljobber.Group
	if err == nil {
		g, err = s.svc.Group(r.Context(), id)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := groupJSON{GroupID: g.ID, State: string(g.State), Owner: g.Owner, Concurrency: g.Concurrency, Jobs: make([]jobJSON, 0, len(g.Jobs))}
	for _, j := range g.Jobs {
		out.Jobs = append(out.Jobs, jobOf(j))
	}
	s.writeData(w, out)
}

func (s *Server) handleDeleteGroup(w http.ResponseWriter, r *http.Request) {
	purge, err := purgeParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["groupID"]
	if err := s.svc.CancelGroup(r.Context(), id, purge); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeData(w, deletedJSON{Group: id, Purged: purge})
}

// Package models holds the request and answer types of the
// dungbeetle-compatible client (package compat), with dungbeetle's type
// names, field names and JSON tags, so that code written against
// github.com/zerodha/dungbeetle/v2/models compiles after its import path
// alone is changed. They are plain data: the mapping to and from
// sql-jobber's own API lives in package compat.
//
// dungbeetle's models package also declares ResultBackend and ResultSet,
// the interfaces its server's results writers implement. They are not
// here: a client never uses them, and sql-jobber's results backends are
// configured ([results.*]), not plugged in as Go code.
package models

import "time"

// JobReq asks for a job of TaskName.
type JobReq struct {
	TaskName string `json:"task"`
	JobID    string `json:"job_id"`
	Queue    string `json:"queue"`
	// ETA is "2006-01-02 15:04:05" (read as UTC, as dungbeetle read it)
	// or RFC 3339; "" starts the job as soon as a slot is free.
	ETA     string `json:"eta"`
	Retries int    `json:"retries"`
	// TTL is how many seconds the job's results are kept after it
	// finishes; 0 leaves it to the task and default_job_ttl.
	TTL  int      `json:"ttl"`
	Args []string `json:"args"`
	DB   string   `json:"db"`
}

// JobResp is the answer to an accepted job.
type JobResp struct {
	JobID    string `json:"job_id"`
	TaskName string `json:"task"`
	Queue    string `json:"queue"`
	// ETA is never nil, as in dungbeetle's answers: it points at the zero
	// time when the job has no ETA, so code that dereferences it keeps
	// working.
	ETA     *time.Time `json:"eta"`
	Retries int        `json:"retries"`
}

// JobStatusResp is a job's status. State is one of dungbeetle's five:
// PENDING, STARTED, RETRY, SUCCESS, FAILURE (package compat says how
// sql-jobber's states map onto them).
type JobStatusResp struct {
	JobID string `json:"job_id"`
	State string `json:"state"`
	Count int    `json:"count"`
	Error string `json:"error"`
}

// GroupReq asks for a group of jobs, each naming its own task.
type GroupReq struct {
	GroupID string   `json:"group_id"`
	Jobs    []JobReq `json:"jobs"`
}

// GroupResp is the answer to an accepted group.
type GroupResp struct {
	GroupID string    `json:"group_id"`
	Jobs    []JobResp `json:"jobs"`
}

// GroupStatusResp is a group's status and its jobs'.
type GroupStatusResp struct {
	GroupID string          `json:"group_id"`
	State   string          `json:"state"`
	Jobs    []JobStatusResp `json:"jobs"`
}

// HTTPResp is the JSON envelope every answer of the API comes in. The
// client unwraps it; the type is here for code that decodes answers
// itself.
type HTTPResp struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Data    any    `json:"data"`
}

// Package tasqueue has the shape of the one type of
// github.com/kalbhor/tasqueue/v2 that dungbeetle's client hands out:
// JobMessage, the element of GetPendingJobs' answer. Code that names
// []tasqueue.JobMessage keeps compiling after its import path alone is
// changed, without pulling the queue library, its brokers and their
// dependencies into a program that only calls an HTTP API.
//
// Only the fields sql-jobber's queue listing can fill are set (see
// compat.Client.GetPendingJobs); the others stay zero. The fields have no
// JSON tags, like tasqueue's, so a JobMessage marshals under the same
// names.
package tasqueue

import "time"

// Job states, with tasqueue's names and values. A job in a pending
// listing is always StatusStarted, tasqueue's name for a queued job.
const (
	StatusStarted    = "queued"
	StatusProcessing = "processing"
	StatusFailed     = "failed"
	StatusDone       = "successful"
	StatusRetrying   = "retrying"
)

// JobMessage is a job waiting in a queue.
type JobMessage struct {
	Meta
	Job *Job
}

// Meta is what the queue knows of a job. Of it, sql-jobber's listing
// fills ID, Status and Queue.
type Meta struct {
	ID            string
	OnSuccessIDs  []string
	Status        string
	Queue         string
	Schedule      string
	MaxRetry      uint32
	Retried       uint32
	PrevErr       string
	ProcessedAt   time.Time
	PrevJobResult []byte
}

// Job is the job as it was queued. Of it, sql-jobber's listing fills
// Task and Opts' ID, ETA and Queue; Payload (dungbeetle's encoded
// arguments) is nil, since the listing does not carry arguments.
type Job struct {
	OnSuccess []*Job
	Task      string
	Payload   []byte
	OnError   []*Job
	Opts      JobOpts
}

// JobOpts are a queued job's options.
type JobOpts struct {
	ID         string
	ETA        time.Time
	Queue      string
	MaxRetries uint32
	Schedule   string
	Timeout    time.Duration
}

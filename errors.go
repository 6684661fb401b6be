package sqljobber

import (
	"errors"
	"fmt"
	"time"
)

// Errors that callers branch on. Each comes bare, wrapped with the ID or
// name it is about, or inside one of the error types below; test for them
// with errors.Is.
var (
	ErrTaskNotFound  = errors.New("task not found")
	ErrJobNotFound   = errors.New("job not found")
	ErrGroupNotFound = errors.New("group not found")
	// ErrJobActive: an unfinished job holds an ID that an operation needs
	// free (a submission, a purge). It comes inside *ActiveError.
	ErrJobActive = errors.New("job is active")
	// ErrJobFinished: the job or group has finished and cannot be
	// cancelled. It comes inside *FinishedError.
	ErrJobFinished = errors.New("job has finished")
	// ErrGone: a job's results were removed (purged, expired, or its table
	// dropped). It comes inside *GoneError.
	ErrGone = errors.New("results are gone")
	// ErrNotReady: a job has no results to read, or none yet. It comes
	// inside *NotReadyError.
	ErrNotReady = errors.New("results are not ready")
	// ErrStopping: the node is shutting down and takes no new jobs.
	ErrStopping = errors.New("node is shutting down")
	// ErrUnavailable: the member that owns a job or group could not be
	// reached in time (it died, or the cluster is changing), or a
	// results database could not be reached; asking again later may
	// succeed.
	ErrUnavailable = errors.New("grain unavailable")
)

// ActiveError says which unfinished job holds an ID.
type ActiveError struct {
	ID    string
	State State
}

func (e *ActiveError) Error() string {
	return fmt.Sprintf("job %q is %s: a job ID runs once at a time; retry after it finishes or cancel it", e.ID, e.State)
}

func (e *ActiveError) Unwrap() error { return ErrJobActive }

// TakenError says that a finished job's or group's ID belongs to another
// client: it cannot be submitted again by this one.
type TakenError struct {
	Kind string // "job" or "group"
	ID   string
}

func (e *TakenError) Error() string {
	return fmt.Sprintf("%s ID %q is taken by another client's %s; choose another ID", e.Kind, e.ID, e.Kind)
}

func (e *TakenError) Unwrap() error { return ErrJobActive }

// FinishedError says that a job or group has finished, and how.
type FinishedError struct {
	Kind  string // "job" or "group"
	ID    string
	State State
}

func (e *FinishedError) Error() string {
	return fmt.Sprintf("%s %q has finished (%s); add purge=true to delete it and its results", e.Kind, e.ID, e.State)
}

func (e *FinishedError) Unwrap() error { return ErrJobFinished }

// Why a job's record and results were removed.
const (
	GonePurged  = "purged"
	GoneExpired = "expired"
)

// GoneError says how a job's results went.
type GoneError struct {
	ID     string
	Reason string    // GonePurged or GoneExpired; "" when only the table is missing
	At     time.Time // when, if Reason is set
	// Source is the job whose results this one reused, when its results
	// are what went.
	Source string
}

func (e *GoneError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("job %q reused the results of job %q, which are gone (purged, expired, or replaced by a new run of it)", e.ID, e.Source)
	}
	if e.Reason == "" {
		return fmt.Sprintf("job %q: its results table no longer exists", e.ID)
	}
	how := "was " + e.Reason
	if e.Reason == GoneExpired {
		how = "expired" // its results outlived their TTL
	}
	return fmt.Sprintf("job %q %s at %s: its results are gone", e.ID, how, e.At.UTC().Format(time.RFC3339))
}

func (e *GoneError) Unwrap() error { return ErrGone }

// NotReadyError says why a job has no results to read.
type NotReadyError struct {
	ID    string
	State State
	// Why, when not the state alone (a results table older than the row
	// number column).
	Why string
}

func (e *NotReadyError) Error() string {
	switch {
	case e.Why != "":
		return fmt.Sprintf("job %q: %s", e.ID, e.Why)
	case e.State.Active():
		return fmt.Sprintf("job %q is %s: its results are not ready yet", e.ID, e.State)
	}
	return fmt.Sprintf("job %q is %s: it has no results", e.ID, e.State)
}

func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// InvalidError is a request that cannot be accepted as it is, naming the
// field at fault.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

// Invalid returns an *InvalidError for field.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

package actors

import (
	"errors"
	"fmt"
)

// Errors callers branch on.
var (
	ErrTaskNotFound  = errors.New("task not found")
	ErrJobNotFound   = errors.New("job not found")
	ErrGroupNotFound = errors.New("group not found")
	// ErrJobActive: an unfinished job holds the ID. Returned wrapped in
	// *ActiveError.
	ErrJobActive = errors.New("job is active")
	// ErrJobFinished: the job has finished and cannot be cancelled.
	// Returned wrapped in *FinishedError.
	ErrJobFinished = errors.New("job has finished")
	// ErrStopping: the node is shutting down and takes no new jobs.
	ErrStopping = errors.New("node is shutting down")
)

// ActiveError says which unfinished job holds an ID.
type ActiveError struct {
	ID    string
	State string
}

func (e *ActiveError) Error() string {
	return fmt.Sprintf("job %q is %s: a job ID runs once at a time; retry after it finishes or cancel it", e.ID, e.State)
}

func (e *ActiveError) Unwrap() error { return ErrJobActive }

// FinishedError says that a job (or group) has finished, and how.
type FinishedError struct {
	Kind  string // "job" or "group"
	ID    string
	State string
}

func (e *FinishedError) Error() string {
	return fmt.Sprintf("%s %q has finished (%s); add purge=true to delete it and its results", e.Kind, e.ID, e.State)
}

func (e *FinishedError) Unwrap() error { return ErrJobFinished }

// InvalidError is a request that cannot be accepted as it is.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

package actors

import (
	"errors"
	"fmt"
)

// Errors callers branch on.
var (
	ErrTaskNotFound = errors.New("task not found")
	ErrJobNotFound  = errors.New("job not found")
	// ErrJobActive: an unfinished job holds the ID. Returned wrapped in
	// *ActiveError.
	ErrJobActive = errors.New("job is active")
	// ErrStopping: the node is shutting down and takes no new jobs.
	ErrStopping = errors.New("node is shutting down")
)

// ActiveError says which unfinished job holds an ID.
type ActiveError struct {
	ID    string
	State string
}

func (e *ActiveError) Error() string {
	return fmt.Sprintf("job %q is %s: a job ID runs once at a time; retry after it finishes", e.ID, e.State)
}

func (e *ActiveError) Unwrap() error { return ErrJobActive }

// InvalidError is a request that cannot be accepted as it is.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

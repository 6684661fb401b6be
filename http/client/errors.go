package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Errors to test for with errors.Is.
var (
	ErrBadRequest = errors.New("bad request")
	ErrNotFound   = errors.New("not found")
	// ErrConflict: the job ID is held by an unfinished job, or the job has
	// finished and cannot be cancelled, or has no results to read (yet).
	ErrConflict = errors.New("conflict")
	// ErrGone: the job's results were purged or expired.
	ErrGone = errors.New("gone")
	// ErrUnauthorized: the server wants a token (WithToken), or does not
	// know the one sent; ErrForbidden: the token lacks the scope the
	// request needs.
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	// ErrTooManyRequests: the client holds as many results reads or
	// waits as the server allows at once; Error.RetryAfter says when to
	// try again.
	ErrTooManyRequests = errors.New("too many requests")
	// ErrUnavailable: the node is stopping, or a database it needs
	// cannot be reached or is busy for a moment; the request may be sent
	// again.
	ErrUnavailable = errors.New("unavailable")
)

// Error is an error answer of the API.
type Error struct {
	StatusCode int
	Message    string
	// RetryAfter is the wait the server asks for before trying again
	// (429, 503), if it says.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("sql-jobber: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is matches ErrBadRequest, ErrNotFound and ErrConflict by status code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrGone:
		return e.StatusCode == http.StatusGone
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrTooManyRequests:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	}
	return false
}

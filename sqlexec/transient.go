package sqlexec

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectionFailed reports whether err is a failure of the connection to a
// database rather than of a statement: a connection that could not be made,
// was refused, reset, closed or timed out, in the words of the net package
// or of a driver.
func ConnectionFailed(err error) bool {
	var connect *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connect), errors.As(err, &netErr),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, os.ErrDeadlineExceeded):
		return true
	}
	// pgconn's errors for a connection that is closed or was never
	// usable, which it knows nothing was sent on.
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr) && pgconn.SafeToRetry(err)
}

// Transient reports whether err says that asking again later may succeed:
// the connection failed (ConnectionFailed), or the database refused for a
// moment — a lock it could not take in time, a deadlock, a serialization
// failure — rather than because of the statement itself.
func Transient(err error) bool {
	if ConnectionFailed(err) {
		return true
	}
	var pgErr *pgconn.PgError
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &pgErr):
		switch pgErr.Code {
		case "55P03", "40P01", "40001", "57P03": // lock_not_available, deadlock_detected, serialization_failure, cannot_connect_now
			return true
		}
	case errors.As(err, &myErr):
		switch myErr.Number {
		case 1205, 1213, 3572: // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, ER_LOCK_NOWAIT
			return true
		}
	}
	return false
}

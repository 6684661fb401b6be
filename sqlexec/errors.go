package sqlexec

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrorCode is a loggable class of a database error: the server's error code
// where there is one. Error texts are not loggable: they can quote argument
// values.
func ErrorCode(err error) string {
	var pg *pgconn.PgError
	var my *mysql.MySQLError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &pg):
		return "postgres:" + pg.Code
	case errors.As(err, &my):
		return fmt.Sprintf("mysql:%d", my.Number)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "other"
}

// UniqueViolation reports whether err says that a write would have given
// two rows the same key of a unique index.
func UniqueViolation(err error) bool {
	var pg *pgconn.PgError
	var my *mysql.MySQLError
	var lite *sqlite.Error
	switch {
	case errors.As(err, &pg):
		return pg.Code == "23505" // unique_violation
	case errors.As(err, &my):
		return my.Number == 1062 // ER_DUP_ENTRY
	case errors.As(err, &lite):
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

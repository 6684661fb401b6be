package sqlexec

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
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

package sqlexec_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("admit: %w", syscall.ECONNREFUSED), true},
		{io.ErrUnexpectedEOF, true},
		{&pgconn.PgError{Code: "55P03"}, true}, // lock_not_available
		{&pgconn.PgError{Code: "40P01"}, true}, // deadlock_detected
		{&mysql.MySQLError{Number: 1205}, true},
		{&mysql.MySQLError{Number: 1213}, true},
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined_table
		{&pgconn.PgError{Code: "22012"}, false}, // division_by_zero
		{&mysql.MySQLError{Number: 1146}, false},
		{errors.New("no such table: x"), false},
		{context.Canceled, false},
	} {
		if got := sqlexec.Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

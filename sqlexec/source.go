package sqlexec

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5/pgxpool"
)

// source is what differs between the databases that tasks read from, as
// resultsink's dialect is for the results databases: one implementation per
// database (postgresSource, mysqlSource, sqliteSource), each holding its
// pool, picked once, by Open. DB, Registry and ReadTx around it are shared.
type source interface {
	// pgxPool and sqlPool are the pool, for DB.Postgres and DB.SQL: nil
	// when the database's driver is the other kind.
	pgxPool() *pgxpool.Pool
	sqlPool() *sql.DB
	ping(ctx context.Context) error
	stats() PoolStats
	close()

	// query runs task t with args and returns its typed rows. The query
	// is cancelled at the database when ctx ends, and after t.Timeout.
	query(ctx context.Context, t *Task, args []any) (Rows, error)
	// prepare prepares query on one connection to check it, returns the
	// number of positional arguments it takes (-1 when it cannot tell),
	// and closes the statement again.
	prepare(ctx context.Context, query string) (int, error)

	// querier and inTx run sql-jobber's own statements (see Querier).
	querier() Querier
	inTx(ctx context.Context, fn func(Querier) error) error

	// readConn takes a connection from the pool for a ReadTx.
	readConn(ctx context.Context) (readConn, error)
}

// readConn is the one connection of a ReadTx.
type readConn interface {
	// begin starts the read-only transaction, whose snapshot is taken by
	// its first query.
	begin(ctx context.Context) error
	exec(ctx context.Context, stmt string) error
	// query runs query with args in the transaction and returns its rows,
	// decoded as a task's rows are.
	query(ctx context.Context, query string, args []any) (Rows, error)
	// end rolls the transaction back and gives the connection back to the
	// pool, or closes it if it may not be reused.
	end(ctx context.Context) error
}

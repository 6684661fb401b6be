package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The floors: the same rows copied with the drivers alone, the fastest ways
// we know, with no job server in between.

const entryColumns = "id, user_id, amount, entry_date, created_at, note"

// pgCopyFloor reads the source with pgx and writes a new table with
// CopyFrom, as an UNLOGGED table like the benchmark's results.
func pgCopyFloor(ctx context.Context, d *dbs, src string) (time.Duration, int64, error) {
	dst := "floor_copy"
	if _, err := d.pgRes.Exec(ctx, "DROP TABLE IF EXISTS "+dst); err != nil {
		return 0, 0, err
	}
	begin := time.Now()
	if _, err := d.pgRes.Exec(ctx, `CREATE UNLOGGED TABLE `+dst+` (id BIGINT, user_id TEXT, amount NUMERIC(12,2),
	entry_date DATE, created_at TIMESTAMP, note TEXT)`); err != nil {
		return 0, 0, err
	}
	conn, err := d.pg.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, "SELECT "+entryColumns+" FROM "+src)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	n, err := d.pgRes.CopyFrom(ctx, pgx.Identifier{dst}, strings.Split(strings.ReplaceAll(entryColumns, " ", ""), ","), copySource{rows})
	return time.Since(begin), n, err
}

type copySource struct{ rows pgx.Rows }

func (s copySource) Next() bool             { return s.rows.Next() }
func (s copySource) Values() ([]any, error) { return s.rows.Values() }
func (s copySource) Err() error             { return s.rows.Err() }

// pgPipeFloor pipes COPY ... TO STDOUT (FORMAT binary) of the query into
// COPY ... FROM STDIN (FORMAT binary) of a table of the same column types.
func pgPipeFloor(ctx context.Context, d *dbs, src string) (time.Duration, int64, error) {
	dst := "floor_pipe"
	if _, err := d.pgRes.Exec(ctx, "DROP TABLE IF EXISTS "+dst); err != nil {
		return 0, 0, err
	}
	begin := time.Now()
	if _, err := d.pgRes.Exec(ctx, fmt.Sprintf("CREATE UNLOGGED TABLE %s (LIKE %s.%s)", dst, sourceName, src)); err != nil {
		return 0, 0, err
	}
	from, err := d.pg.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer from.Release()
	to, err := d.pgRes.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer to.Release()
	r, w := io.Pipe()
	go func() {
		// CopyTo writes a row at a time; without the buffer, each row
		// would cross the pipe and go out as a COPY message of its own.
		bw := bufio.NewWriterSize(w, 1<<16)
		_, err := from.Conn().PgConn().CopyTo(ctx, bw, fmt.Sprintf("COPY (SELECT %s FROM %s) TO STDOUT (FORMAT binary)", entryColumns, src))
		if err == nil {
			err = bw.Flush()
		}
		w.CloseWithError(err)
	}()
	tag, err := to.Conn().PgConn().CopyFrom(ctx, r, fmt.Sprintf("COPY %s FROM STDIN (FORMAT binary)", dst))
	r.Close()
	return time.Since(begin), tag.RowsAffected(), err
}

// startMyFloor replaces table dst with an empty one for the entries'
// columns (keyed: and a job's _row key after them) and starts reading src:
// the floors' time counts from here, the CREATE included, as a job's does.
func startMyFloor(ctx context.Context, d *dbs, dst, src string, keyed bool) (*sql.Rows, time.Time, error) {
	if _, err := d.myRes.ExecContext(ctx, "DROP TABLE IF EXISTS "+dst); err != nil {
		return nil, time.Time{}, err
	}
	var key string
	if keyed {
		key = ", _row BIGINT NOT NULL PRIMARY KEY"
	}
	begin := time.Now()
	if _, err := d.myRes.ExecContext(ctx, `CREATE TABLE `+dst+` (id BIGINT, user_id LONGTEXT, amount DECIMAL(12,2),
	entry_date DATE, created_at DATETIME(6), note LONGTEXT`+key+`) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`); err != nil {
		return nil, time.Time{}, err
	}
	rows, err := d.my.QueryContext(ctx, "SELECT "+entryColumns+" FROM "+src)
	return rows, begin, err
}

// myLoadFloor reads the source with go-sql-driver and streams the rows into
// a new table with LOAD DATA LOCAL INFILE.
func myLoadFloor(ctx context.Context, d *dbs, src string) (time.Duration, int64, error) {
	return myLoad(ctx, d, src, false)
}

// myLoadKeyedFloor is myLoadFloor into a table of a job's shape: each row
// numbered in a last column, _row, the table's primary key (which a job's
// reader pages by). InnoDB clusters a table on its key, its own hidden one
// when it has none, but a key it is sent costs it more: this is how much.
func myLoadKeyedFloor(ctx context.Context, d *dbs, src string) (time.Duration, int64, error) {
	return myLoad(ctx, d, src, true)
}

func myLoad(ctx context.Context, d *dbs, src string, keyed bool) (time.Duration, int64, error) {
	dst, cols := "floor_load", entryColumns
	if keyed {
		dst, cols = "floor_load_keyed", entryColumns+", _row"
	}
	rows, begin, err := startMyFloor(ctx, d, dst, src, keyed)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	vals := make([]sql.RawBytes, 6)
	ptrs := make([]any, 6)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	var scanErr error
	var line []byte // reused: the reader copies each line
	gen := readerFunc(func() ([]byte, bool) {
		if scanErr != nil || !rows.Next() {
			return nil, false
		}
		if scanErr = rows.Scan(ptrs...); scanErr != nil {
			return nil, false
		}
		n++
		line = line[:0]
		for i, v := range vals {
			if i > 0 {
				line = append(line, '\t')
			}
			line = appendEscaped(line, v)
		}
		if keyed {
			line = strconv.AppendInt(append(line, '\t'), n, 10)
		}
		return append(line, '\n'), true
	})
	if err := loadData(ctx, d.myRes, dst, cols, gen); err != nil {
		return 0, 0, err
	}
	if scanErr != nil {
		return 0, 0, scanErr
	}
	return time.Since(begin), n, rows.Err()
}

func appendEscaped(b, v []byte) []byte {
	for _, c := range v {
		switch c {
		case '\\', '\t', '\n':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return b
}

// myInsertFloor writes the rows with multi-row INSERTs of 1,000 rows in one
// transaction.
func myInsertFloor(ctx context.Context, d *dbs, src string) (time.Duration, int64, error) {
	dst := "floor_insert"
	rows, begin, err := startMyFloor(ctx, d, dst, src, false)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	tx, err := d.myRes.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	const batch = 1000
	stmt := "INSERT INTO " + dst + " VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?),", batch), ",")
	prepared, err := tx.PrepareContext(ctx, stmt)
	if err != nil {
		return 0, 0, err
	}
	args := make([]any, 0, 6*batch)
	var n int64
	flush := func(last bool) error {
		if len(args) == 0 {
			return nil
		}
		var err error
		if last && len(args) < 6*batch {
			_, err = tx.ExecContext(ctx, "INSERT INTO "+dst+" VALUES "+strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?),", len(args)/6), ","), args...)
		} else {
			_, err = prepared.ExecContext(ctx, args...)
		}
		args = args[:0]
		return err
	}
	for rows.Next() {
		var id int64
		var user, amount, date, created string
		var note sql.NullString
		if err := rows.Scan(&id, &user, &amount, &date, &created, &note); err != nil {
			return 0, 0, err
		}
		args = append(args, id, user, amount, date, created, note)
		n++
		if len(args) == 6*batch {
			if err := flush(false); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := flush(true); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	return time.Since(begin), n, rows.Err()
}

// The one-row jobs' task reads one row of the entries table by its key, as
// a small report would, and its results table has the entries' six columns
// and _row. The tiny floor's tables have the same columns and types, so
// that the floor pays what the shape costs (the TEXT columns' TOAST table
// and its index on PostgreSQL) as a job does. checkTinyShape compares them.
const tinyRowID = 1

// pgTinyColumns are a one-row job's results columns on PostgreSQL, as the
// sink maps the entries' types. A small result's table has no key.
const pgTinyColumns = `(id BIGINT, user_id TEXT, amount NUMERIC(12,2), entry_date DATE, created_at TIMESTAMP, note TEXT,
	_row BIGINT NOT NULL)`

// myTinyColumns are the same on MySQL: text as LONGTEXT, and a DECIMAL one
// digit wider (the driver does not say whether the source's is UNSIGNED).
// The job's table has _row as its key; InnoDB clusters a table on a key
// anyway (its own hidden one when there is none), so the floor has none.
const myTinyColumns = `(id BIGINT, user_id LONGTEXT, amount DECIMAL(13,2), entry_date DATE, created_at DATETIME(6),
	note LONGTEXT, _row BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`

// tinyRowSQL is the row a one-row job writes, as literals both databases
// read.
func tinyRowSQL() string {
	id, user, amount, date, created, note := entryValues(tinyRowID)
	return fmt.Sprintf("(%d, '%s', %s, '%s', '%s', '%s', 1)", id, user, amount, date, created, note)
}

// tinyFloor is the tiny floor's unit of work on one database: table i of
// a one-row job's shape, made and filled with its row.
type tinyFloor func(ctx context.Context, i int) error

// pgTinyFloor is BEGIN; CREATE TABLE; INSERT one row; COMMIT with pgx, a
// round trip each, in the results schema.
func pgTinyFloor(d *dbs) tinyFloor {
	row := tinyRowSQL()
	return func(ctx context.Context, i int) error {
		return pgx.BeginFunc(ctx, d.pgRes, func(tx pgx.Tx) error {
			t := fmt.Sprintf("floor_tiny_%d", i)
			// A logged table, as the jobs' are: for one row, UNLOGGED is
			// slower (one more file to create).
			if _, err := tx.Exec(ctx, "CREATE TABLE "+t+" "+pgTinyColumns); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+t+" VALUES "+row)
			return err
		})
	}
}

// myTinyFloor is the same on MySQL, in the one-row jobs' scratch database:
// BEGIN; CREATE TABLE; INSERT one row; COMMIT, a round trip each (MySQL
// commits the CREATE by itself, so the INSERT is a transaction of its
// own). The statements carry their values, so each is one round trip of
// the text protocol, no prepared statement.
func myTinyFloor(d *dbs) tinyFloor {
	row := tinyRowSQL()
	return func(ctx context.Context, i int) error {
		tx, err := d.myTiny.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		t := fmt.Sprintf("floor_tiny_%d", i)
		if _, err := tx.ExecContext(ctx, "CREATE TABLE "+t+" "+myTinyColumns); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+t+" VALUES "+row); err != nil {
			return err
		}
		return tx.Commit()
	}
}

// myTinyAtomicFloor is the least a MySQL publication that no reader sees
// empty or half made can cost: one CREATE TABLE ... SELECT of the row,
// which MariaDB makes crash-safe as a whole (its DDL log), as a one-row
// job's publication does. The plain floor's table is there, empty, from
// its CREATE until its INSERT commits. MariaDB flushes its files more
// often for the one statement than for the two (5 flushes against 3), yet
// 10 at a time it costs its CPU less (BENCHMARKS.md).
func myTinyAtomicFloor(d *dbs) tinyFloor {
	id, user, amount, date, created, note := entryValues(tinyRowID)
	row := fmt.Sprintf("SELECT %d AS id, '%s' AS user_id, %s AS amount, '%s' AS entry_date, '%s' AS created_at, '%s' AS note, 1 AS _row",
		id, user, amount, date, created, note)
	return func(ctx context.Context, i int) error {
		_, err := d.myTiny.ExecContext(ctx, fmt.Sprintf("CREATE TABLE floor_tiny_%d %s %s", i, myTinyColumns, row))
		return err
	}
}

// runTinyFloor runs floor count times, concurrency at a time, on tables
// first to first+count-1: what count one-row jobs must do at the least. It
// returns the time and each table's latency (ms), sorted.
func runTinyFloor(ctx context.Context, floor tinyFloor, first, count, concurrency int) (time.Duration, []float64, error) {
	lat := make([]float64, count)
	took, err := concurrently(count, concurrency, func(i int) error {
		begin := time.Now()
		err := floor(ctx, first+i)
		lat[i] = float64(time.Since(begin).Microseconds()) / 1000
		return err
	})
	slices.Sort(lat)
	return took, lat, err
}

// concurrently calls fn for 0 to count-1, concurrency calls at a time, and
// returns how long they took, or the first error.
func concurrently(count, concurrency int, fn func(i int) error) (time.Duration, error) {
	next := make(chan int, count)
	for i := range count {
		next <- i
	}
	close(next)
	errs := make(chan error, concurrency)
	begin := time.Now()
	for range concurrency {
		go func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range concurrency {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	return time.Since(begin), nil
}

// tinyFloorHTTP is the tiny floor behind an HTTP server of the harness's
// own: each POST makes one floor table and is answered once it is
// committed, concurrency requests at a time. It is what any job server
// would cost here before it kept any record of its jobs: the requests, and
// a server's CPU on the same two cores as the database.
func tinyFloorHTTP(ctx context.Context, floor tinyFloor, first, count, concurrency int) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			N int `json:"n"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := floor(r.Context(), req.N); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"n":%d}}`, req.N)
	})}
	go srv.Serve(l)
	defer srv.Close()
	client, base := newClient(), "http://"+l.Addr().String()
	return concurrently(count, concurrency, func(i int) error {
		res, err := client.Post(base, "application/json", strings.NewReader(fmt.Sprintf(`{"n": %d}`, first+i)))
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP floor: %s: %s", res.Status, bytes.TrimSpace(body))
		}
		return nil
	})
}

// dropPgTinyFloor drops the PostgreSQL tiny floor's tables.
func dropPgTinyFloor(ctx context.Context, d *dbs) error {
	return dropTablesInChunks(ctx, d.pgRes, resultsName, "floor_tiny_")
}

// dropMyTinyFloor drops the MySQL tiny floor's tables, many per statement.
func dropMyTinyFloor(ctx context.Context, d *dbs) error {
	for {
		rows, err := d.myTiny.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
	WHERE table_schema = DATABASE() AND table_name LIKE 'floor\_tiny\_%' LIMIT 500`)
		if err != nil {
			return fmt.Errorf("mysql: list the floor's tables: %w", err)
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, "`"+n+"`")
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		if _, err := d.myTiny.ExecContext(ctx, "DROP TABLE "+strings.Join(names, ", ")); err != nil {
			return fmt.Errorf("mysql: drop the floor's tables: %w", err)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tinyParts is the tiny floor, then the statements one tiny job costs
// PostgreSQL added one kind at a time, with the raw driver and no job
// server: how much of the database's time each part of a job takes. Each
// step runs count "jobs", concurrency at a time, from a vacuumed catalog.
//
//	floor  BEGIN; CREATE TABLE; INSERT; COMMIT, a round trip each, the
//	       table of a one-row job's shape (pgTinyColumns), as every step's
//	P      the same, pipelined in one round trip, commit not waiting for
//	       the disk (a job's publication)
//	+S     SET LOCAL lock_timeout, DROP TABLE IF EXISTS (the replacement)
//	+U     the ledger's SUCCESS, with the ownership check
//	+Q     a query's round trip (SELECT 1: the task's key lookup costs a
//	       little more)
//	+A     the admission, a round trip and a durable commit (unbatched)
//	+C     a claim of one job, a round trip
//
// Then the least a job can cost the database, in a step of its own:
//
//	P +U +Q +a  the publication, the ledger's SUCCESS and the query, with
//	            an admission that does not even wait for the disk (+a):
//	            cheaper than any admission a job server may acknowledge.
//	            Where this step is below the floor, so is every job
//	            server that keeps a record of its jobs.
func tinyParts(ctx context.Context, d *dbs, count, concurrency int) ([]Result, error) {
	db := d.pgRes
	for _, stmt := range []string{
		"DROP TABLE IF EXISTS parts_ledger",
		`CREATE TABLE parts_ledger (job_id TEXT PRIMARY KEY, queue TEXT NOT NULL, state TEXT NOT NULL, run_id TEXT NOT NULL,
	held INTEGER NOT NULL DEFAULT 0, ready_at TIMESTAMPTZ NOT NULL DEFAULT now(), enqueued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	expires_at TIMESTAMPTZ, group_id TEXT NOT NULL DEFAULT '', count BIGINT NOT NULL DEFAULT 0, finished_at TIMESTAMPTZ,
	args TEXT NOT NULL DEFAULT '[]')`,
		"CREATE INDEX ON parts_ledger (queue, held, ready_at, enqueued_at, job_id) WHERE state IN ('PENDING', 'RETRY')",
		"CREATE INDEX ON parts_ledger (expires_at)",
		"CREATE INDEX ON parts_ledger (group_id)",
	} {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", stmt, err)
		}
	}
	defer db.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS parts_ledger")
	var out []Result
	for _, step := range []string{"floor", "P", "PS", "PSU", "PSUQ", "PSUQA", "PSUQAC", "PUQa", "floor"} {
		took, err := tinyPartsStep(ctx, d, db, step, count, concurrency)
		if err != nil {
			return nil, fmt.Errorf("tiny parts %s: %w", step, err)
		}
		name := "parts: floor"
		if step != "floor" {
			name = "parts: " + strings.Join(strings.Split(step, ""), " +")
		}
		out = append(out, Result{Name: name, Seconds: took.Seconds(), JobsPerSec: float64(count) / took.Seconds()})
	}
	return out, nil
}

func tinyPartsStep(ctx context.Context, d *dbs, db *pgxpool.Pool, step string, count, concurrency int) (time.Duration, error) {
	has := func(part string) bool { return step != "floor" && strings.Contains(step, part) }
	if _, err := db.Exec(ctx, "TRUNCATE parts_ledger"); err != nil {
		return 0, err
	}
	if !has("A") && !has("a") {
		// The jobs the step does not admit are there, started.
		if _, err := db.Exec(ctx, `INSERT INTO parts_ledger (job_id, queue, state, run_id)
	SELECT g::text, 'q', 'STARTED', 'r' FROM generate_series(0, $1) g`, count); err != nil {
			return 0, err
		}
	}
	if err := settle(ctx, d); err != nil {
		return 0, err
	}
	took, err := concurrently(count, concurrency, func(i int) error { return tinyPartsJob(ctx, db, step, has, i) })
	if err != nil {
		return 0, err
	}
	return took, dropTablesInChunks(ctx, db, resultsName, "parts_t_")
}

func tinyPartsJob(ctx context.Context, db *pgxpool.Pool, step string, has func(string) bool, i int) error {
	table := fmt.Sprintf("parts_t_%d", i)
	if step == "floor" {
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "CREATE TABLE "+table+" "+pgTinyColumns); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES "+tinyRowSQL())
			return err
		})
	}
	conn, err := db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	id := strconv.Itoa(i)
	if has("A") {
		if _, err := conn.Exec(ctx, "INSERT INTO parts_ledger (job_id, queue, state, run_id) VALUES ($1, 'q', 'PENDING', '')", id); err != nil {
			return err
		}
	}
	if has("a") {
		// Admitted as started, as a job submitted to an idle queue is.
		if _, err := conn.Exec(ctx, `BEGIN; SET LOCAL synchronous_commit = off;
INSERT INTO parts_ledger (job_id, queue, state, run_id) VALUES ('`+id+`', 'q', 'STARTED', 'r'); COMMIT`); err != nil {
			return err
		}
	}
	if has("C") {
		if _, err := conn.Exec(ctx, `UPDATE parts_ledger SET state = 'STARTED', run_id = 'r' WHERE job_id IN (SELECT job_id FROM parts_ledger
	WHERE queue = 'q' AND state IN ('PENDING', 'RETRY') AND held = 0 AND ready_at <= now() ORDER BY ready_at, enqueued_at, job_id
	LIMIT 1 FOR UPDATE SKIP LOCKED)`); err != nil {
			return err
		}
	}
	if has("Q") {
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			return err
		}
	}
	b := &pgconn.Batch{}
	add := func(sql string, params ...[]byte) { b.ExecParams(sql, params, nil, nil, nil) }
	add("BEGIN")
	add("SET LOCAL synchronous_commit = off")
	if has("S") {
		add("SET LOCAL lock_timeout = '2min'")
		add("DROP TABLE IF EXISTS " + table)
	}
	if has("U") {
		// By ID alone: with +C, a worker's claim may take another
		// worker's job, so a run check here could fail; its cost is
		// a comparison on the row already found.
		add("WITH u AS (UPDATE parts_ledger SET state = 'SUCCESS', count = 1, finished_at = now(), expires_at = now() WHERE job_id = $1 RETURNING 1) SELECT 1 / COUNT(*) FROM u",
			[]byte(id))
	}
	add("CREATE TABLE " + table + " " + pgTinyColumns)
	add("INSERT INTO " + table + " VALUES " + tinyRowSQL())
	add("COMMIT")
	_, err = conn.Conn().PgConn().ExecBatch(ctx, b).ReadAll()
	return err
}

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// measureTiny measures one-row jobs against creating and filling a one-row
// table by hand, in rounds that take turns.
func (b *bench) measureTiny(ctx context.Context) error {
	o := b.o
	if !o.want("tiny") {
		return nil
	}
	fmt.Fprintln(b.stderr, "tiny jobs...")
	// The floors and the jobs take turns, each from a vacuumed catalog:
	// creating a table costs more the more dead catalog rows the last
	// run's tables left, which is noise here.
	floorRound := func(name, comments string, fn func(context.Context, *dbs, int, int) (time.Duration, error)) func(int) (Result, error) {
		return func(int) (Result, error) {
			took, err := fn(ctx, b.d, o.tiny, o.concurrency)
			if err == nil {
				err = dropTinyFloor(ctx, b.d)
			}
			return Result{Name: name, Seconds: took.Seconds(), JobsPerSec: float64(o.tiny) / took.Seconds(), Comments: comments}, err
		}
	}
	jobsRound := func(kind string, waiting bool) func(int) (Result, error) {
		return func(round int) (Result, error) {
			tag := "a" // posted at once
			if waiting {
				tag = "w"
			}
			r, err := tinyJobs(ctx, b.srv, b.d, *o, fmt.Sprintf("tiny%d%s-", round, tag), waiting)
			r.Name += ", " + kind
			return r, err
		}
	}
	// The first is the floor the others are compared with.
	pid := b.srv.cmd.Process.Pid
	series := []*tinySeries{
		{name: "floor", run: floorRound("floor CREATE + INSERT 1 + COMMIT", "", tinyFloor)},
		{name: "floor over HTTP", run: floorRound("floor over HTTP, a POST each",
			fmt.Sprintf("%d clients; the harness serves the requests", o.concurrency), tinyFloorHTTP)},
		{name: "sql-jobber, posted at once", run: jobsRound("posted at once", false), pid: pid},
		{name: "sql-jobber, each client waiting for its job", run: jobsRound("each client waiting for its job", true), pid: pid},
	}
	for round := range o.repeat {
		if err := b.tinyRound(ctx, round, series); err != nil {
			return err
		}
	}
	floor := series[0].best
	b.add(floor)
	for _, s := range series[1:] {
		s.best.Floor, s.best.Ratio = floor.Name, s.best.JobsPerSec/floor.JobsPerSec
		s.best.Comments += "; " + roundRatios(s.ratios)
		b.add(s.best)
	}
	return nil
}

// tinyRound runs one round of each series, the first (the floor) first,
// and keeps each series' best round and its ratio to the round's floor.
func (b *bench) tinyRound(ctx context.Context, round int, series []*tinySeries) error {
	var floor float64
	for i, s := range series {
		if err := settle(ctx, b.d); err != nil {
			return err
		}
		meter := startCPUMeter(s.pid)
		r, err := s.run(round)
		cpu := meter.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		r.Comments = strings.TrimPrefix(r.Comments+"; "+cpu.perJob(b.o.tiny), "; ")
		ratio := ""
		if i == 0 {
			floor = r.JobsPerSec
		} else {
			s.ratios = append(s.ratios, r.JobsPerSec/floor)
			ratio = fmt.Sprintf(" (%.2fx)", r.JobsPerSec/floor)
		}
		fmt.Fprintf(b.stderr, "  round %d: %s %.1f jobs/s%s, %s\n", round+1, s.name, r.JobsPerSec, ratio, cpu.perJob(b.o.tiny))
		if s.best.Seconds == 0 || r.Seconds < s.best.Seconds {
			s.best = r
		}
	}
	return nil
}

// measureTinyParts measures the parts of a tiny job's cost to the
// database: only when --only names it.
func (b *bench) measureTinyParts(ctx context.Context) error {
	if b.o.only == "" || !b.o.want("tinyparts") {
		return nil
	}
	fmt.Fprintln(b.stderr, "tiny jobs' parts (the database's side alone)...")
	parts, err := tinyParts(ctx, b.d, b.o.tiny, b.o.concurrency)
	if err != nil {
		return err
	}
	for _, r := range parts {
		b.add(r)
	}
	return nil
}

// tinySeries is one of the tiny measurements over the rounds: its best
// round, and each round's ratio to the floor measured just before it. The
// machine's speed drifts between rounds, and the best rounds alone may
// pair a fast floor with a slow round, or the other way round.
type tinySeries struct {
	name   string
	run    func(round int) (Result, error)
	pid    int // the process whose CPU is the server's; 0: none
	best   Result
	ratios []float64
}

// roundRatios describes the ratios of the rounds to their own floors.
func roundRatios(r []float64) string {
	s := slices.Sorted(slices.Values(r))
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("median of rounds %.2fx (%s)", s[len(s)/2], strings.Join(parts, ", "))
}

// tinyJobs posts the one-row jobs from several clients. Either each client
// posts its share at once, and the ends are taken from the ledger, so that
// no polling loads the server (the queue is backed up: the server's
// throughput); or each client waits for its job to finish (GET ?wait=)
// before it posts the next (a job's latency, as a user waiting for it sees
// it, at a load the server keeps up with).
func tinyJobs(ctx context.Context, srv *server, d *dbs, o options, prefix string, waiting bool) (Result, error) {
	posted := make([]time.Time, o.tiny)
	finished := make([]time.Time, o.tiny)
	var wg sync.WaitGroup
	errs := make(chan error, o.clients)
	begin := time.Now()
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < o.tiny; i += o.clients {
				id := fmt.Sprintf("%s%d", prefix, i)
				posted[i] = time.Now()
				if err := srv.post("tiny", fmt.Sprintf(`{"job_id": %q}`, id)); err != nil {
					errs <- err
					return
				}
				if !waiting {
					continue
				}
				if err := srv.waitSuccess(id); err != nil {
					errs <- err
					return
				}
				finished[i] = time.Now()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, err
	}
	if waiting {
		return tinyResult(o, begin, posted, finished), nil
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		rows, err := d.pgRes.Query(ctx, "SELECT job_id, state, finished_at FROM sqljobber_jobs WHERE job_id LIKE $1 AND finished_at IS NOT NULL", prefix+"%")
		if err != nil {
			return Result{}, err
		}
		done := 0
		for rows.Next() {
			var id, state string
			var at time.Time
			if err := rows.Scan(&id, &state, &at); err != nil {
				rows.Close()
				return Result{}, err
			}
			if state != "SUCCESS" {
				rows.Close()
				return Result{}, fmt.Errorf("job %s is %s", id, state)
			}
			var i int
			fmt.Sscanf(strings.TrimPrefix(id, prefix), "%d", &i)
			finished[i] = at
			done++
		}
		rows.Close()
		if done == o.tiny {
			break
		}
		if time.Now().After(deadline) {
			return Result{}, errors.New("the tiny jobs did not finish")
		}
		// The times come from the ledger: polling less often only
		// takes load off the database being measured.
		time.Sleep(250 * time.Millisecond)
	}
	return tinyResult(o, begin, posted, finished), nil
}

// tinyResult is the throughput and latencies of one-row jobs posted and
// finished at these times.
func tinyResult(o options, begin time.Time, posted, finished []time.Time) Result {
	var last time.Time
	lat := make([]float64, o.tiny)
	for i := range finished {
		last = maxTime(last, finished[i])
		lat[i] = float64(finished[i].Sub(posted[i]).Microseconds()) / 1000
	}
	sort.Float64s(lat)
	took := last.Sub(begin)
	return Result{Name: fmt.Sprintf("sql-jobber %d one-row jobs", o.tiny), Seconds: took.Seconds(),
		JobsPerSec: float64(o.tiny) / took.Seconds(), P50ms: lat[len(lat)/2], P99ms: lat[len(lat)*99/100],
		Comments: fmt.Sprintf("%d clients, worker concurrency %d", o.clients, o.concurrency)}
}

// settle vacuums PostgreSQL's catalogs and checkpoints, so that each tiny
// measurement starts from the same state.
func settle(ctx context.Context, d *dbs) error {
	for _, stmt := range []string{"VACUUM pg_catalog.pg_class, pg_catalog.pg_attribute, pg_catalog.pg_type, pg_catalog.pg_depend", "CHECKPOINT"} {
		if _, err := d.pgRes.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("postgres: %s: %w", stmt, err)
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

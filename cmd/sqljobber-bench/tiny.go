package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// tinyEngine is one database's side of the one-row measurements: the
// server whose source, results and ledger are there, the floor there, and
// how to read that ledger.
type tinyEngine struct {
	// label starts the names of the engine's results ("" for PostgreSQL,
	// whose names predate the MySQL ones and stay comparable).
	label    string
	ledger   string // names the POST rate's result
	idPrefix string
	srv      *server
	floor    tinyFloor
	// atomicFloor, if set, is the floor of a publication that no reader
	// sees half made, where the plain floor's table is seen empty for a
	// moment (MySQL, whose DDL commits by itself).
	atomicFloor tinyFloor
	dropFloor   func(context.Context) error
	// floorTables counts the floor's tables made so far: each floor run
	// takes the next numbers, none dropped until the rounds are over.
	floorTables int
	// finished reads from the ledger when each job whose ID starts with
	// prefix finished, and fails on one that did not succeed.
	finished func(ctx context.Context, prefix string) (map[string]time.Time, error)
	// columns describes a table's columns, to compare the floor's shape
	// with the job's.
	columns func(ctx context.Context, table string) ([]string, error)
}

// tinyEngines are the engines of the one-row measurements: PostgreSQL, then
// MySQL.
func (b *bench) tinyEngines() []*tinyEngine {
	d := b.d
	return []*tinyEngine{
		{
			label: "", ledger: "pg", idPrefix: "tiny", srv: b.srv, floor: pgTinyFloor(d),
			dropFloor: func(ctx context.Context) error { return dropPgTinyFloor(ctx, d) },
			finished: func(ctx context.Context, prefix string) (map[string]time.Time, error) {
				return pgFinished(ctx, d, prefix)
			},
			columns: func(ctx context.Context, table string) ([]string, error) { return pgColumns(ctx, d, table) },
		},
		{
			label: "mysql ", ledger: "mysql", idPrefix: "mytiny", srv: b.mysrv, floor: myTinyFloor(d), atomicFloor: myTinyAtomicFloor(d),
			dropFloor: func(ctx context.Context) error { return dropMyTinyFloor(ctx, d) },
			finished: func(ctx context.Context, prefix string) (map[string]time.Time, error) {
				return myFinished(ctx, d, prefix)
			},
			columns: func(ctx context.Context, table string) ([]string, error) { return myColumns(ctx, d, table) },
		},
	}
}

// singleFloorJobs is how many tables the floor makes one at a time for its
// single-job latency: enough for a steady median, few enough to take a
// second.
const singleFloorJobs = 200

// measureTiny measures one-row jobs against creating and filling a one-row
// table of the same shape by hand, on PostgreSQL and on MySQL, in rounds
// in which every series takes a turn.
func (b *bench) measureTiny(ctx context.Context) error {
	o := b.o
	if !o.want("tiny") {
		return nil
	}
	fmt.Fprintln(b.stderr, "tiny jobs...")
	engines := b.tinyEngines()
	shapes := make([]string, len(engines))
	for i, e := range engines {
		var err error
		if shapes[i], err = b.checkTinyShape(ctx, e); err != nil {
			return err
		}
	}
	var all []*tinySeries
	for i, e := range engines {
		all = append(all, b.tinySeriesOf(ctx, e, shapes[i])...)
	}
	// What the large jobs left the databases to do (vacuuming their
	// tables) is done before the first round, not during it.
	if err := b.quiesce(ctx); err != nil {
		return err
	}
	for round := range o.repeat {
		if err := b.tinyRound(ctx, round, all); err != nil {
			return err
		}
	}
	for _, e := range engines {
		if err := e.dropFloor(ctx); err != nil {
			return err
		}
	}
	for _, s := range all {
		if s.floor != nil {
			s.best.Floor, s.best.Ratio = s.floor.best.Name, s.best.JobsPerSec/s.floor.best.JobsPerSec
			s.best.Comments += "; " + roundRatios("median of rounds", "x", s.ratios)
			if len(s.dbRatios) > 0 {
				s.best.DBCPURatio = median(s.dbRatios)
				s.best.Comments += "; database CPU a job over the floor's a table: " + roundRatios("median of rounds", "x", s.dbRatios)
			}
		}
		if s.latencyFloor != nil {
			s.best.P50Ratio = median(s.p50Ratios)
			s.best.Comments += "; p50 over the floor's single-table p50: " + roundRatios("median of rounds", "x", s.p50Ratios)
		}
		if s.atomic != nil {
			s.best.Comments += "; against the atomic floor (" + s.atomic.name + "): " + s.atomic.describe()
		}
		b.add(s.best)
	}
	return nil
}

// takeFloorTables reserves the numbers of count new floor tables and
// returns the first.
func (e *tinyEngine) takeFloorTables(count int) int {
	first := e.floorTables
	e.floorTables += count
	return first
}

// tinySeriesOf are engine e's series, the floors first. Neither the floors'
// tables nor the jobs' are dropped until every round is over: on a file
// system without a journal (this one's), ext4 will not reuse an inode
// freed within the last minute or more, and makes each new file scan past
// them; the tables made just after thousands were dropped paid for it (up
// to a sixth of MariaDB's CPU in ext4's recently_deleted), and those were
// the jobs', which ran right after the floors' tables were dropped.
func (b *bench) tinySeriesOf(ctx context.Context, e *tinyEngine, shape string) []*tinySeries {
	o := b.o
	single := min(o.tiny, singleFloorJobs)
	floorRound := tinyFloorRound(ctx, e, e.floor)
	jobsRound := func(kind, tag string, clients, count int, mode tinyMode) func(int) (Result, error) {
		oo := *o
		oo.clients, oo.tiny = clients, count
		return func(round int) (Result, error) {
			t, err := tinyJobs(ctx, e, oo, fmt.Sprintf("%s%d%s-", e.idPrefix, round, tag), mode)
			if err != nil {
				return Result{}, err
			}
			r := t.result(&oo)
			r.Name = fmt.Sprintf("sql-jobber %s%d one-row jobs, %s", e.label, count, kind)
			if mode != tinyWaiting {
				r.PostsPerSec = t.postsPerSec()
			}
			return r, nil
		}
	}
	pid := e.srv.cmd.Process.Pid
	floor := &tinySeries{name: e.label + "floor", jobs: o.tiny, run: floorRound(o.tiny, o.concurrency,
		e.label+"floor CREATE + INSERT 1 + COMMIT", fmt.Sprintf("%d at a time; p50/p99 of one table; %s", o.concurrency, shape))}
	singleFloor := &tinySeries{name: e.label + "floor, one at a time", jobs: single, run: floorRound(single, 1,
		e.label+"floor, one at a time", fmt.Sprintf("%d tables, the single-job latency", single))}
	series := []*tinySeries{floor, singleFloor}
	var atomic, singleAtomic *tinySeries
	if e.atomicFloor != nil {
		af := tinyFloorRound(ctx, e, e.atomicFloor)
		atomic = &tinySeries{name: e.label + "floor, atomic", jobs: o.tiny, floor: floor, run: af(o.tiny, o.concurrency,
			e.label+"floor CREATE ... SELECT 1", fmt.Sprintf("%d at a time; one statement, no table seen empty; %s", o.concurrency, shape))}
		singleAtomic = &tinySeries{name: e.label + "floor, atomic, one at a time", jobs: single, floor: singleFloor, latencyFloor: singleFloor, run: af(single, 1,
			e.label+"floor, atomic, one at a time", fmt.Sprintf("%d tables, the single-job latency", single))}
		series = append(series, atomic, singleAtomic)
	}
	// against links a series of jobs to the atomic floors too.
	against := func(s *tinySeries, throughput, latency *tinySeries) *tinySeries {
		if atomic != nil {
			s.atomic = &tinyAgainst{name: atomic.name, floor: throughput, latencyFloor: latency}
		}
		return s
	}
	if e.label == "" {
		series = append(series, &tinySeries{name: "floor over HTTP", jobs: o.tiny, floor: floor,
			run: func(int) (Result, error) {
				took, err := tinyFloorHTTP(ctx, e.floor, e.takeFloorTables(o.tiny), o.tiny, o.concurrency)
				return Result{Name: "floor over HTTP, a POST each", Seconds: took.Seconds(), JobsPerSec: float64(o.tiny) / took.Seconds(),
					Comments: fmt.Sprintf("%d clients; the harness serves the requests", o.concurrency)}, err
			}})
	}
	return append(series,
		against(&tinySeries{name: "sql-jobber " + e.label + "posted at once", jobs: o.tiny, floor: floor, pid: pid,
			run: jobsRound("posted at once", "a", o.clients, o.tiny, tinyPosted)}, atomic, nil),
		against(&tinySeries{name: "sql-jobber " + e.label + "each client waiting for its job", jobs: o.tiny, floor: floor,
			latencyFloor: singleFloor, pid: pid, run: jobsRound("each client waiting for its job", "w", o.clients, o.tiny, tinyWaiting)}, atomic, singleAtomic),
		// A job's own latency, nothing queued before it: the figure the
		// floor's one-at-a-time p50 is for. With several clients
		// waiting, a p50 is mostly the other clients' jobs (Little's
		// law: clients / throughput).
		against(&tinySeries{name: "sql-jobber " + e.label + "one client waiting for its job", jobs: single, floor: singleFloor,
			latencyFloor: singleFloor, pid: pid, run: jobsRound("one client waiting for its job", "s", 1, single, tinyWaiting)}, singleAtomic, singleAtomic),
	)
}

// tinyFloorRound is a round of floor on count new tables of e, concurrency
// at a time.
func tinyFloorRound(ctx context.Context, e *tinyEngine, floor tinyFloor) func(count, concurrency int, name, comments string) func(int) (Result, error) {
	return func(count, concurrency int, name, comments string) func(int) (Result, error) {
		return func(int) (Result, error) {
			took, lat, err := runTinyFloor(ctx, floor, e.takeFloorTables(count), count, concurrency)
			return Result{Name: name, Seconds: took.Seconds(), JobsPerSec: float64(count) / took.Seconds(),
				P50ms: pct(lat, 50), P99ms: pct(lat, 99), Comments: comments}, err
		}
	}
}

// checkTinyShape runs one job of e's tiny task and makes one table of each
// of its floors, and compares their columns: a floor is only a floor for
// tables of the job's shape. A difference (the sink's mapping changed) is
// reported, not fatal: the figures are still made, and say so.
func (b *bench) checkTinyShape(ctx context.Context, e *tinyEngine) (string, error) {
	id := e.idPrefix + "-shape"
	if err := e.srv.post("tiny", fmt.Sprintf(`{"job_id": %q}`, id)); err != nil {
		return "", err
	}
	if err := e.srv.waitSuccess(ctx, id); err != nil {
		return "", err
	}
	job, err := e.columns(ctx, "results_"+id)
	if err != nil {
		return "", err
	}
	shape := "the job's shape: " + strings.Join(job, ", ")
	floors := []struct {
		name  string
		floor tinyFloor
	}{{"floor", e.floor}, {"atomic floor", e.atomicFloor}}
	for _, f := range floors {
		if f.floor == nil {
			continue
		}
		n := e.takeFloorTables(1)
		if err := f.floor(ctx, n); err != nil {
			return "", fmt.Errorf("%s%s: %w", e.label, f.name, err)
		}
		cols, err := e.columns(ctx, fmt.Sprintf("floor_tiny_%d", n))
		if err != nil {
			return "", err
		}
		if len(job) == 0 || !slices.Equal(job, cols) {
			fmt.Fprintf(b.stderr, "  WARNING: the %s%s's table (%s) is not of the job's shape (%s)\n", e.label, f.name,
				strings.Join(cols, ", "), strings.Join(job, ", "))
			shape = "NOT the job's shape: " + strings.Join(job, ", ")
		}
	}
	if err := e.dropFloor(ctx); err != nil {
		return "", err
	}
	return shape, nil
}

// measurePosts measures how fast each server accepts POSTs: clients post
// their share of jobs at once, and the time runs until the last POST is
// answered, not until the jobs finish. The jobs are then waited for, so
// that the next round starts idle.
func (b *bench) measurePosts(ctx context.Context) error {
	o := b.o
	if !o.want("posts") {
		return nil
	}
	fmt.Fprintln(b.stderr, "POSTs accepted...")
	// Each ledger's POSTs while the jobs they admit run beside them on
	// the same machine, and (held) its admissions alone.
	type series struct {
		e     *tinyEngine
		mode  tinyMode
		name  string
		best  Result
		rates []float64
	}
	var all []*series
	for _, e := range b.tinyEngines() {
		all = append(all, &series{e: e, mode: tinyPosted, name: "POSTs accepted, " + e.ledger + " ledger"},
			&series{e: e, mode: tinyHeld, name: "POSTs accepted, " + e.ledger + " ledger, jobs held (ETA far off)"})
	}
	for round := range o.repeat {
		for i, s := range all {
			if err := settle(ctx, b.d); err != nil {
				return err
			}
			t, err := tinyJobs(ctx, s.e, *o, fmt.Sprintf("%sposts%d-%d-", s.e.idPrefix, round, i), s.mode)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			r := t.postResult(o)
			r.Name = s.name
			fmt.Fprintf(b.stderr, "  round %d: %s %.1f POSTs/s, POST p50 %.1f ms\n", round+1, r.Name, r.PostsPerSec, r.P50ms)
			s.rates = append(s.rates, r.PostsPerSec)
			if s.best.Seconds == 0 || r.Seconds < s.best.Seconds {
				s.best = r
			}
		}
	}
	for _, s := range all {
		if s.mode == tinyHeld {
			s.best.Comments += "; admissions alone: no job runs beside them"
		}
		s.best.Comments += "; " + roundRatios("median of rounds", "/s", s.rates)
		b.add(s.best)
	}
	return nil
}

// tinyRound runs one round of each series, in order, and keeps each
// series' best round and its ratios to the round's floors.
func (b *bench) tinyRound(ctx context.Context, round int, series []*tinySeries) error {
	for _, s := range series {
		if err := settle(ctx, b.d); err != nil {
			return err
		}
		meter := startCPUMeter(s.pid)
		r, err := s.run(round)
		cpu := meter.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		r.Comments = strings.TrimPrefix(r.Comments+"; "+cpu.perJob(s.jobs), "; ")
		s.last, s.lastCPU = r, cpu
		note := ""
		if s.floor != nil {
			ratio := r.JobsPerSec / s.floor.last.JobsPerSec
			s.ratios = append(s.ratios, ratio)
			note = fmt.Sprintf(" (%.2fx)", ratio)
			if db := dbOverFloor(cpu, s.jobs, s.floor); db > 0 {
				s.dbRatios = append(s.dbRatios, db)
				note += fmt.Sprintf(", database CPU a job %.2fx the floor's a table", db)
			}
		}
		if s.latencyFloor != nil {
			ratio := r.P50ms / s.latencyFloor.last.P50ms
			s.p50Ratios = append(s.p50Ratios, ratio)
			note += fmt.Sprintf(", p50 %.1f ms (%.2fx the floor's single-table p50)", r.P50ms, ratio)
		}
		if a := s.atomic; a != nil {
			note += a.add(r, cpu, s.jobs)
		}
		if r.PostsPerSec > 0 {
			note += fmt.Sprintf(", POSTs answered at %.0f/s", r.PostsPerSec)
		}
		fmt.Fprintf(b.stderr, "  round %d: %s %.1f jobs/s%s, %s\n", round+1, s.name, r.JobsPerSec, note, cpu.perJob(s.jobs))
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
// round, and each round's ratio to the floor measured in the same round,
// just before it. The machine's speed drifts between rounds, and the best
// rounds alone may pair a fast floor with a slow round, or the other way
// round.
type tinySeries struct {
	name string
	run  func(round int) (Result, error)
	pid  int // the process whose CPU is the server's; 0: none
	jobs int // jobs (or tables) a round, for the CPU per job
	// floor is the series this one's throughput is compared with, and
	// latencyFloor the one its p50 is compared with; nil: none.
	floor, latencyFloor *tinySeries
	last, best          Result
	lastCPU             cpuUse
	ratios, p50Ratios   []float64
	// dbRatios are the rounds' database CPU per job over their floor's
	// per table.
	dbRatios []float64
	// atomic compares the series with the engine's atomic floors too.
	atomic *tinyAgainst
}

// dbOverFloor is the databases' CPU per job of a round of jobs jobs (cpu)
// over floor's per table in its last round; 0 when floor's is not known.
func dbOverFloor(cpu cpuUse, jobs int, floor *tinySeries) float64 {
	per := floor.lastCPU.db.Seconds() / float64(floor.jobs)
	if per <= 0 {
		return 0
	}
	return cpu.db.Seconds() / float64(jobs) / per
}

// tinyAgainst is a series of jobs against a second pair of floors: its
// rounds' ratios to them.
type tinyAgainst struct {
	name                        string
	floor, latencyFloor         *tinySeries // nil: not compared
	ratios, dbRatios, p50Ratios []float64
}

// add records a round of the series (r, with its CPU over jobs jobs)
// against the floors' last rounds, and describes it.
func (a *tinyAgainst) add(r Result, cpu cpuUse, jobs int) string {
	var parts []string
	if f := a.floor; f != nil {
		ratio := r.JobsPerSec / f.last.JobsPerSec
		a.ratios = append(a.ratios, ratio)
		parts = append(parts, fmt.Sprintf("%.2fx", ratio))
		if db := dbOverFloor(cpu, jobs, f); db > 0 {
			a.dbRatios = append(a.dbRatios, db)
			parts = append(parts, fmt.Sprintf("database CPU a job %.2fx its a table", db))
		}
	}
	if f := a.latencyFloor; f != nil {
		ratio := r.P50ms / f.last.P50ms
		a.p50Ratios = append(a.p50Ratios, ratio)
		parts = append(parts, fmt.Sprintf("p50 %.2fx its single-table p50", ratio))
	}
	return fmt.Sprintf(" [against the atomic floor: %s]", strings.Join(parts, ", "))
}

// describe sums up the rounds against the floors.
func (a *tinyAgainst) describe() string {
	var parts []string
	if len(a.ratios) > 0 {
		parts = append(parts, roundRatios("median of rounds", "x", a.ratios))
	}
	if len(a.dbRatios) > 0 {
		parts = append(parts, "database CPU a job over its a table: "+roundRatios("median of rounds", "x", a.dbRatios))
	}
	if len(a.p50Ratios) > 0 {
		parts = append(parts, "p50 over its single-table p50: "+roundRatios("median of rounds", "x", a.p50Ratios))
	}
	return strings.Join(parts, "; ")
}

// roundRatios describes the rounds' figures.
func roundRatios(what, unit string, r []float64) string {
	s := slices.Sorted(slices.Values(r))
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%s %.2f%s (%s)", what, median(s), unit, strings.Join(parts, ", "))
}

// median is the upper median, as the rounds have always been reported.
func median(r []float64) float64 {
	s := slices.Sorted(slices.Values(r))
	return s[len(s)/2]
}

// pct is the p-th percentile of sorted values.
func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)*p/100, len(sorted)-1)]
}

// tinyTimes are the times of one round of one-row jobs.
type tinyTimes struct {
	begin                      time.Time
	posted, answered, finished []time.Time
}

// tinyMode is how tinyJobs posts its jobs and what it waits for.
type tinyMode int

const (
	// tinyPosted: each client posts its share at once, and the ends are
	// taken from the ledger, so that no polling loads the server (the
	// queue is backed up: the server's throughput).
	tinyPosted tinyMode = iota
	// tinyWaiting: each client waits for its job to finish (GET ?wait=)
	// before it posts the next (a job's latency, as a user waiting for it
	// sees it, at a load the server keeps up with).
	tinyWaiting
	// tinyHeld: each client posts its share at once, of jobs whose ETA is
	// far off, and nothing waits for them to run: the rate of durable
	// admissions alone, with no job running beside them. They are
	// cancelled afterwards, outside the time.
	tinyHeld
)

// heldETA is the ETA of tinyHeld's jobs.
const heldETA = "2100-01-01T00:00:00Z"

// tinyJobs posts the one-row jobs from several clients, as mode says.
func tinyJobs(ctx context.Context, e *tinyEngine, o options, prefix string, mode tinyMode) (tinyTimes, error) {
	t := tinyTimes{posted: make([]time.Time, o.tiny), answered: make([]time.Time, o.tiny), finished: make([]time.Time, o.tiny)}
	var wg sync.WaitGroup
	errs := make(chan error, o.clients)
	t.begin = time.Now()
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < o.tiny; i += o.clients {
				id := fmt.Sprintf("%s%d", prefix, i)
				body := fmt.Sprintf(`{"job_id": %q}`, id)
				if mode == tinyHeld {
					body = fmt.Sprintf(`{"job_id": %q, "eta": %q}`, id, heldETA)
				}
				t.posted[i] = time.Now()
				if err := e.srv.post("tiny", body); err != nil {
					errs <- err
					return
				}
				t.answered[i] = time.Now()
				if mode != tinyWaiting {
					continue
				}
				if err := e.srv.waitSuccess(ctx, id); err != nil {
					errs <- err
					return
				}
				t.finished[i] = time.Now()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return t, err
	}
	switch mode {
	case tinyWaiting:
		return t, nil
	case tinyHeld:
		return t, cancelJobs(e.srv, prefix, o.tiny, o.clients)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		at, err := e.finished(ctx, prefix)
		if err != nil {
			return t, err
		}
		if len(at) == o.tiny {
			for id, when := range at {
				var i int
				fmt.Sscanf(strings.TrimPrefix(id, prefix), "%d", &i)
				t.finished[i] = when
			}
			return t, nil
		}
		if time.Now().After(deadline) {
			return t, errors.New("the tiny jobs did not finish")
		}
		// The times come from the ledger: polling less often only
		// takes load off the database being measured.
		time.Sleep(250 * time.Millisecond)
	}
}

// cancelJobs cancels the jobs prefix0 to prefix(n-1), from clients clients
// at once.
func cancelJobs(srv *server, prefix string, n, clients int) error {
	errs := make(chan error, clients)
	for c := range clients {
		go func() {
			for i := c; i < n; i += clients {
				if err := srv.cancel(fmt.Sprintf("%s%d", prefix, i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var all []error
	for range clients {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// result is the throughput and latencies (POST to finish) of the jobs,
// from the first POST to the last finish.
func (t tinyTimes) result(o *options) Result {
	var last time.Time
	lat := make([]float64, len(t.finished))
	for i := range t.finished {
		last = maxTime(last, t.finished[i])
		lat[i] = float64(t.finished[i].Sub(t.posted[i]).Microseconds()) / 1000
	}
	slices.Sort(lat)
	took := last.Sub(t.begin)
	comments := fmt.Sprintf("%d clients, worker concurrency %d", o.clients, o.concurrency)
	if o.clients == 1 {
		// Where a job's latency goes: its POST's answer, then the wait.
		post := make([]float64, len(t.answered))
		for i := range t.answered {
			post[i] = float64(t.answered[i].Sub(t.posted[i]).Microseconds()) / 1000
		}
		slices.Sort(post)
		comments += fmt.Sprintf("; the POST's answer p50 %.1f ms", pct(post, 50))
	}
	return Result{Seconds: took.Seconds(), JobsPerSec: float64(len(lat)) / took.Seconds(), P50ms: pct(lat, 50), P99ms: pct(lat, 99),
		Comments: comments}
}

// postsPerSec is how many POSTs were answered a second, from the first POST
// to the last answer.
func (t tinyTimes) postsPerSec() float64 {
	var last time.Time
	for _, a := range t.answered {
		last = maxTime(last, a)
	}
	return float64(len(t.answered)) / last.Sub(t.begin).Seconds()
}

// postResult is the rate of POSTs and their round trips' latencies.
func (t tinyTimes) postResult(o *options) Result {
	var last time.Time
	lat := make([]float64, len(t.answered))
	for i, a := range t.answered {
		last = maxTime(last, a)
		lat[i] = float64(a.Sub(t.posted[i]).Microseconds()) / 1000
	}
	slices.Sort(lat)
	return Result{Seconds: last.Sub(t.begin).Seconds(), PostsPerSec: t.postsPerSec(), P50ms: pct(lat, 50), P99ms: pct(lat, 99),
		Comments: fmt.Sprintf("%d clients, %d jobs; until the last POST is answered; p50/p99 of a POST", o.clients, len(lat))}
}

// pgFinished reads the PostgreSQL ledger's finish times.
func pgFinished(ctx context.Context, d *dbs, prefix string) (map[string]time.Time, error) {
	rows, err := d.pgRes.Query(ctx, "SELECT job_id, state, finished_at FROM sqljobber_jobs WHERE job_id LIKE $1 AND finished_at IS NOT NULL", prefix+"%")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id, state string
		var at time.Time
		if err := rows.Scan(&id, &state, &at); err != nil {
			return nil, err
		}
		if state != "SUCCESS" {
			return nil, fmt.Errorf("job %s is %s", id, state)
		}
		out[id] = at
	}
	return out, rows.Err()
}

// myFinished reads the MySQL ledger's finish times, which it keeps in UTC.
func myFinished(ctx context.Context, d *dbs, prefix string) (map[string]time.Time, error) {
	rows, err := d.myTiny.QueryContext(ctx, "SELECT job_id, state, CAST(finished_at AS CHAR) FROM sqljobber_jobs WHERE job_id LIKE ? AND finished_at IS NOT NULL", prefix+"%")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id, state, at string
		if err := rows.Scan(&id, &state, &at); err != nil {
			return nil, err
		}
		if state != "SUCCESS" {
			return nil, fmt.Errorf("job %s is %s", id, state)
		}
		t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", at, time.UTC)
		if err != nil {
			return nil, fmt.Errorf("job %s: finished_at: %w", id, err)
		}
		out[id] = t
	}
	return out, rows.Err()
}

// pgColumns describes a table's columns in the results schema.
func pgColumns(ctx context.Context, d *dbs, table string) ([]string, error) {
	rows, err := d.pgRes.Query(ctx, `SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END
	FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// myColumns describes a table's columns in the MySQL scratch database.
func myColumns(ctx context.Context, d *dbs, table string) ([]string, error) {
	rows, err := d.myTiny.QueryContext(ctx, `SELECT CONCAT(column_name, ' ', column_type, IF(is_nullable = 'NO', ' NOT NULL', ''))
	FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
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

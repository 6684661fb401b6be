package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"
)

// Defaults of the flags.
const (
	pgDefault = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	myDefault = "root@tcp(127.0.0.1:3306)/test"
)

type options struct {
	pg, mysql   string
	rows        int64
	memRows     int64
	tiny        int
	clients     int
	concurrency int
	repeat      int
	out         string
	binary      string
	short       bool
	pprof       string
	pprofMySQL  string
	cpuProfile  string
	only        string
}

// Result is one measurement.
type Result struct {
	Name       string  `json:"name"`
	Rows       int64   `json:"rows,omitempty"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec,omitempty"`
	JobsPerSec float64 `json:"jobs_per_sec,omitempty"`
	// Floor names the raw measurement this one is compared with, and
	// Ratio is this one's rate over the floor's.
	Floor string  `json:"floor,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	P50ms float64 `json:"p50_ms,omitempty"`
	P99ms float64 `json:"p99_ms,omitempty"`
	// P50Ratio is this one's p50 over its floor's single-job p50.
	P50Ratio float64 `json:"p50_vs_floor,omitempty"`
	// DBCPURatio is the databases' CPU time per job over the floor's per
	// table, the median of the rounds' (each against the floor of its
	// round): what a job costs the database beyond what its table must,
	// whatever else shares the machine's cores.
	DBCPURatio float64 `json:"db_cpu_vs_floor,omitempty"`
	// PostsPerSec is how many POSTs the server answered a second.
	PostsPerSec float64 `json:"posts_per_sec,omitempty"`
	PeakRSS     int64   `json:"peak_rss_bytes,omitempty"`
	Comments    string  `json:"comments,omitempty"`
}

// Report is one run's measurements.
type Report struct {
	Time    time.Time `json:"time"`
	Commit  string    `json:"commit,omitempty"`
	CPUs    int       `json:"cpus"`
	Short   bool      `json:"short"`
	Results []Result  `json:"results"`
}

// parseOptions reads the flags.
func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sqljobber-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pg, "pg", pgDefault, "PostgreSQL DSN (a database the bench may create schemas in)")
	fs.StringVar(&o.mysql, "mysql", myDefault, "MySQL/MariaDB DSN (a user that may create databases)")
	fs.Int64Var(&o.rows, "rows", 1_000_000, "rows of the large job")
	fs.Int64Var(&o.memRows, "mem-rows", 100_000, "rows of the job whose memory is compared with the large one's")
	fs.IntVar(&o.tiny, "tiny", 2000, "number of one-row jobs")
	fs.IntVar(&o.clients, "clients", 8, "concurrent clients posting the one-row jobs")
	fs.IntVar(&o.concurrency, "concurrency", 10, "worker concurrency of the server (and of the tiny floor)")
	fs.IntVar(&o.repeat, "repeat", 2, "runs of each measurement (floors, jobs, tiny rounds); the best counts")
	// Outside the repository: a run's report is not part of the
	// checkout, and BENCHMARKS.md quotes the figures it keeps.
	fs.StringVar(&o.out, "out", filepath.Join(os.TempDir(), "sqljobber-bench", "latest.json"), "where to write the JSON report (\"\": nowhere)")
	fs.StringVar(&o.binary, "binary", "", "sql-jobber binary to run (default: build it)")
	fs.BoolVar(&o.short, "short", false, "a quick smoke run on small data")
	fs.StringVar(&o.pprof, "pprof", "", "have the server serve Go's profiler on this address (e.g. 127.0.0.1:6065)")
	fs.StringVar(&o.pprofMySQL, "pprof-mysql", "", "have the MySQL-ledger server (tiny, posts) serve Go's profiler on this address")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the harness's own CPU profile to this file (what the harness costs on the cores it shares)")
	fs.StringVar(&o.only, "only", "", "run only these sections, comma-separated: floors, jobs, tiny, posts, tinyparts (only when named)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.short {
		o.rows, o.memRows, o.tiny, o.repeat = 20_000, 5_000, 100, 1
	}
	if o.repeat < 1 || o.tiny < 1 || o.rows < 1 || o.clients < 1 || o.concurrency < 1 {
		return nil, errors.New("--repeat, --tiny, --rows, --clients and --concurrency must be at least 1")
	}
	return o, nil
}

// want reports whether section is to be measured.
func (o *options) want(section string) bool {
	return o.only == "" || strings.Contains(","+o.only+",", ","+section+",")
}

// bench is one run of the measurements.
type bench struct {
	o      *options
	d      *dbs
	big    string  // the source table of the large jobs
	srv    *server // PostgreSQL ledger: every engine pair, the PostgreSQL one-row jobs
	mysrv  *server // MySQL ledger, source and results: the MySQL one-row jobs
	rep    *Report
	floors map[string]Result
	stderr io.Writer
}

func (b *bench) add(r Result) {
	b.rep.Results = append(b.rep.Results, r)
	fmt.Fprintf(b.stderr, "  %-34s %s\n", r.Name, summary(r))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	d, err := connect(ctx, o.pg, o.mysql)
	if err != nil {
		return err
	}
	defer d.close()
	fmt.Fprintln(stderr, "preparing source data...")
	big, err := d.ensureEntries(ctx, o.rows)
	if err != nil {
		return err
	}
	small, err := d.ensureEntries(ctx, o.memRows)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sqljobber-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := o.binary
	if bin == "" {
		if bin, err = build(ctx, dir); err != nil {
			return err
		}
	}
	if err := writeServerFiles(dir, d, big, small); err != nil {
		return err
	}
	b := &bench{o: o, d: d, big: big, floors: map[string]Result{}, stderr: stderr,
		rep: &Report{Time: time.Now().UTC(), CPUs: runtime.NumCPU(), Short: o.short, Commit: os.Getenv("BENCH_COMMIT")}}
	if b.srv, err = startServer(ctx, bin, filepath.Join(dir, pgServerDir), o.concurrency, o.pprof); err != nil {
		return err
	}
	defer b.srv.stop()
	if o.want("tiny") || o.want("posts") {
		// Dropped once the server has stopped (deferred calls run last
		// first).
		defer d.dropScratch(context.WithoutCancel(ctx))
		if b.mysrv, err = startServer(ctx, bin, filepath.Join(dir, myServerDir), o.concurrency, o.pprofMySQL); err != nil {
			return err
		}
		defer b.mysrv.stop()
	}
	for _, measure := range []func(context.Context) error{b.measureLarge, b.measureTiny, b.measurePosts, b.measureTinyParts} {
		if err := measure(ctx); err != nil {
			return err
		}
	}
	printTable(stdout, b.rep)
	return b.write()
}

// The large floors and jobs. A cross-engine job is compared with the
// slower of its two engines' floors.
const (
	pgCopyFloorName      = "floor pg read + CopyFrom"
	myLoadFloorName      = "floor mysql read + LOAD DATA"
	myLoadKeyedFloorName = "floor mysql read + LOAD DATA, keyed by _row"
)

var (
	largeFloors = []struct {
		name string
		fn   func(context.Context, *dbs, string) (time.Duration, int64, error)
	}{
		{pgCopyFloorName, pgCopyFloor},
		{"floor pg binary COPY pipe", pgPipeFloor},
		{myLoadFloorName, myLoadFloor},
		{myLoadKeyedFloorName, myLoadKeyedFloor},
		{"floor mysql read + INSERT x1000", myInsertFloor},
	}
	// A job's ratio is against the slowest of its floors; shaped, if set,
	// is a floor that writes a table of the job's shape (its key too),
	// which the comments compare it with as well.
	largeJobs = []struct {
		name, task string
		floors     []string
		shaped     string
	}{
		{"sql-jobber pg -> pg", "pg_to_pg", []string{pgCopyFloorName}, ""},
		{"sql-jobber mysql -> mysql", "my_to_my", []string{myLoadFloorName}, myLoadKeyedFloorName},
		{"sql-jobber pg -> mysql", "pg_to_my", []string{pgCopyFloorName, myLoadFloorName}, ""},
		{"sql-jobber mysql -> pg", "my_to_pg", []string{pgCopyFloorName, myLoadFloorName}, ""},
	}
)

// measureLarge measures the drivers alone copying the large table (the
// floors) and the large jobs, in rounds in which every floor and then
// every job takes a turn: the machine's pace drifts over minutes, so a job
// is compared with the floors of its own round too (the median of the
// rounds' ratios), not only with the best floor of the run. Then the
// memory of a smaller job, and downloading a large job's results as CSV.
func (b *bench) measureLarge(ctx context.Context) error {
	jobs := b.o.want("jobs")
	if !b.o.want("floors") && !jobs {
		return nil
	}
	fmt.Fprintln(b.stderr, "large jobs and their floors (drivers alone)...")
	best := map[string]Result{}
	ratios := map[string][]float64{}
	// keep keeps each measurement's fastest round, with the highest peak
	// RSS of all its rounds.
	keep := func(name string, r Result) {
		cur, ok := best[name]
		peak := max(r.PeakRSS, cur.PeakRSS)
		if ok && cur.Seconds <= r.Seconds {
			r = cur
		}
		r.PeakRSS = peak
		best[name] = r
	}
	for round := 1; round <= b.o.repeat; round++ {
		rates := map[string]float64{}
		for _, f := range largeFloors {
			r, err := b.measureOnce(ctx, 0, func() (time.Duration, int64, int64, error) {
				took, n, err := f.fn(ctx, b.d, b.big)
				return took, n, 0, err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			rates[f.name] = r.RowsPerSec
			keep(f.name, r)
			fmt.Fprintf(b.stderr, "  round %d: %s %.0f rows/s, %s\n", round, f.name, r.RowsPerSec, r.Comments)
		}
		if !jobs {
			continue
		}
		for _, j := range largeJobs {
			r, err := b.measureOnce(ctx, b.srv.cmd.Process.Pid, func() (time.Duration, int64, int64, error) {
				return b.srv.runJob(ctx, j.task, fmt.Sprintf("%s-%d", j.task, round))
			})
			if err != nil {
				return fmt.Errorf("%s: %w", j.name, err)
			}
			floor := rates[j.floors[0]]
			for _, f := range j.floors[1:] {
				floor = min(floor, rates[f])
			}
			ratios[j.name] = append(ratios[j.name], r.RowsPerSec/floor)
			if j.shaped != "" {
				ratios[j.shaped+" "+j.name] = append(ratios[j.shaped+" "+j.name], r.RowsPerSec/rates[j.shaped])
			}
			keep(j.name, r)
			fmt.Fprintf(b.stderr, "  round %d: %s %.0f rows/s (%.2fx its round's floor), %s\n", round, j.name, r.RowsPerSec, r.RowsPerSec/floor, r.Comments)
		}
	}
	for _, f := range largeFloors {
		r := best[f.name]
		r.Name = f.name
		b.floors[f.name] = r
		b.add(r)
	}
	if !jobs {
		return nil
	}
	for _, j := range largeJobs {
		r := best[j.name]
		r.Name, r.Floor = j.name, j.floors[0]
		for _, f := range j.floors[1:] {
			if b.floors[f].RowsPerSec < b.floors[r.Floor].RowsPerSec {
				r.Floor = f
			}
		}
		r.Ratio = r.RowsPerSec / b.floors[r.Floor].RowsPerSec
		r.Comments += "; against the floor of each round: " + roundRatios("median of rounds", "x", ratios[j.name])
		if j.shaped != "" {
			r.Comments += fmt.Sprintf("; against %q (its table's shape): %.2fx, and of each round: %s", j.shaped,
				r.RowsPerSec/b.floors[j.shaped].RowsPerSec, roundRatios("median of rounds", "x", ratios[j.shaped+" "+j.name]))
		}
		b.add(r)
	}

	// Memory: the same PG -> PG job on the small table.
	took, n, peak, err := b.srv.runJob(ctx, "pg_to_pg_small", "pg_to_pg_small")
	if err != nil {
		return err
	}
	b.add(Result{Name: fmt.Sprintf("sql-jobber pg -> pg, %d rows", n), Rows: n, Seconds: took.Seconds(),
		RowsPerSec: float64(n) / took.Seconds(), PeakRSS: peak})
	return b.measureDownload(ctx, "pg_to_pg-1")
}

// measureDownload measures downloading job id's table as CSV, against COPY
// TO.
func (b *bench) measureDownload(ctx context.Context, id string) error {
	rows := b.o.rows
	if err := b.quiesce(ctx); err != nil {
		return err
	}
	floorTook, floorSize, err := pgCSVFloor(ctx, b.d, "results_"+id)
	if err != nil {
		return fmt.Errorf("CSV floor: %w", err)
	}
	floor := Result{Name: "floor pg COPY TO csv", Rows: rows, Seconds: floorTook.Seconds(),
		RowsPerSec: float64(rows) / floorTook.Seconds(), Comments: fmt.Sprintf("%.1f MB", float64(floorSize)/(1<<20))}
	b.add(floor)
	if err := b.quiesce(ctx); err != nil {
		return err
	}
	took, size, before, peak, err := b.srv.download(ctx, id, rows)
	if err != nil {
		return fmt.Errorf("CSV download: %w", err)
	}
	r := Result{Name: "sql-jobber CSV download", Rows: rows, Seconds: took.Seconds(), RowsPerSec: float64(rows) / took.Seconds(),
		PeakRSS: peak, Floor: floor.Name,
		Comments: fmt.Sprintf("%.1f MB; RSS grew %.1f MB from %.1f MB", float64(size)/(1<<20), float64(peak-before)/(1<<20), float64(before)/(1<<20))}
	r.Ratio = r.RowsPerSec / floor.RowsPerSec
	b.add(r)
	return nil
}

// write writes the report as JSON to --out.
func (b *bench) write() error {
	if b.o.out == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(b.o.out), 0o755); err != nil {
		return err
	}
	out, _ := json.MarshalIndent(b.rep, "", "  ")
	if err := os.WriteFile(b.o.out, append(out, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(b.stderr, "wrote %s\n", b.o.out)
	return nil
}

// measureOnce runs fn, which returns how long it took, its rows and the
// server's peak RSS, once the databases are quiet, and measures the
// processes' CPU meanwhile.
func (b *bench) measureOnce(ctx context.Context, serverPID int, fn func() (time.Duration, int64, int64, error)) (Result, error) {
	if err := b.quiesce(ctx); err != nil {
		return Result{}, err
	}
	m := startCPUMeter(serverPID)
	took, n, peak, err := fn()
	cpu := m.Stop()
	if err != nil {
		return Result{}, err
	}
	return Result{Seconds: took.Seconds(), Rows: n, RowsPerSec: float64(n) / took.Seconds(), PeakRSS: peak, Comments: cpu.total()}, nil
}

// How quiesce waits for the databases to go quiet: windows of
// quiesceWindow in which their processes use less than a twentieth of a
// core, quiesceQuiet of them in a row, for at most quiesceMax.
const (
	quiesceWindow = 250 * time.Millisecond
	quiesceQuiet  = 2
	quiesceMax    = time.Minute
)

// quiesce makes the databases finish, before a large measurement, what the
// ones before it left them to do, so that no measurement pays for
// another's: PostgreSQL vacuums and analyzes the results schema's tables
// (autovacuum would, at some moment within its naptime, a whole 1M-row
// table at a time) and checkpoints; then the databases' processes must
// stay nearly idle (InnoDB flushing the pages of the last load) for a
// while. Without it, the measurements after PostgreSQL's 1M-row tables
// paid for their vacuum and checkpoint: mysql -> mysql, which followed
// three pg -> pg jobs, took 3.5-3.9 s in make bench with 4.2-4.4 s of
// database CPU, and 3.2 s with 3.6 s once each measurement began quiet.
func (b *bench) quiesce(ctx context.Context) error {
	var tables *string
	if err := b.d.pgRes.QueryRow(ctx, `SELECT string_agg(format('%I.%I', schemaname, tablename), ', ')
	FROM pg_tables WHERE schemaname = $1`, resultsName).Scan(&tables); err != nil {
		return fmt.Errorf("postgres: list the tables of %s: %w", resultsName, err)
	}
	stmts := []string{"CHECKPOINT"}
	if tables != nil {
		stmts = append([]string{"VACUUM (ANALYZE) " + *tables}, stmts...)
	}
	for _, stmt := range stmts {
		if _, err := b.d.pgRes.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("postgres: %s: %w", stmt, err)
		}
	}
	if b.o.short {
		// A smoke run's figures are not read, and its databases may be
		// busy with other tests.
		return nil
	}
	deadline := time.Now().Add(quiesceMax)
	for quiet := 0; quiet < quiesceQuiet; {
		if time.Now().After(deadline) {
			fmt.Fprintf(b.stderr, "  note: the databases did not go quiet within %s; measuring anyway\n", quiesceMax)
			return nil
		}
		m := startCPUMeter(0)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quiesceWindow):
		}
		if m.Stop().db < quiesceWindow/20 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return nil
}

// Directories of the servers' configurations and tasks, under the run's
// temporary directory.
const (
	pgServerDir = "pg"
	myServerDir = "mysql"
)

// writeServerFiles writes the configurations and tasks of the two servers:
// the PostgreSQL-ledger one that runs every pair of engines and the
// PostgreSQL one-row jobs, and the one whose source, results and ledger
// are all MySQL, for the MySQL one-row jobs.
func writeServerFiles(dir string, d *dbs, big, small string) error {
	pgConfig := fmt.Sprintf(`[app]
log_level = "warn"
drain_timeout = "5s"

[db.pg]
type = "postgres"
dsn = %q
max_active = 20

[db.my]
type = "mysql"
dsn = %q
max_active = 20

[results.pgres]
type = "postgres"
dsn = %q
max_active = 20

[results.myres]
type = "mysql"
dsn = %q
max_active = 20
`, d.pgSource, d.mySource, d.pgResult, d.myResult)
	// The one-row jobs read one entries row by its key, as a small
	// report would: their results have the entries' shape, which the
	// tiny floors' tables copy (see tinyRowID).
	pgTasks := fmt.Sprintf(`-- name: pg_to_pg
-- db: pg
-- results: pgres
SELECT %[3]s FROM %[1]s;

-- name: pg_to_pg_small
-- db: pg
-- results: pgres
SELECT %[3]s FROM %[2]s;

-- name: my_to_my
-- db: my
-- results: myres
SELECT %[3]s FROM %[1]s;

-- name: pg_to_my
-- db: pg
-- results: myres
SELECT %[3]s FROM %[1]s;

-- name: my_to_pg
-- db: my
-- results: pgres
SELECT %[3]s FROM %[1]s;

-- name: tiny
-- db: pg
-- results: pgres
SELECT %[3]s FROM %[2]s WHERE id = %[4]d;
`, big, small, entryColumns, tinyRowID)
	// The MySQL server's own scratch database holds its ledger and its
	// results: MySQL all the way, nothing of PostgreSQL on a job's path.
	myConfig := fmt.Sprintf(`[app]
log_level = "warn"
drain_timeout = "5s"
ledger = "myres"

[db.my]
type = "mysql"
dsn = %q
max_active = 20

[results.myres]
type = "mysql"
dsn = %q
max_active = 20
`, d.mySource, d.myTinyDSN)
	myTasks := fmt.Sprintf(`-- name: tiny
-- db: my
-- results: myres
SELECT %[2]s FROM %[1]s WHERE id = %[3]d;
`, small, entryColumns, tinyRowID)
	for _, f := range []struct{ sub, config, tasks string }{
		{pgServerDir, pgConfig, pgTasks},
		{myServerDir, myConfig, myTasks},
	} {
		if err := os.MkdirAll(filepath.Join(dir, f.sub, "sql"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.sub, "config.toml"), []byte(f.config), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.sub, "sql", "bench.sql"), []byte(f.tasks), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func summary(r Result) string {
	var parts []string
	if r.RowsPerSec > 0 {
		parts = append(parts, fmt.Sprintf("%.2fs %9.0f rows/s", r.Seconds, r.RowsPerSec))
	}
	if r.JobsPerSec > 0 {
		parts = append(parts, fmt.Sprintf("%.2fs %7.1f jobs/s", r.Seconds, r.JobsPerSec))
	}
	if r.PostsPerSec > 0 {
		parts = append(parts, fmt.Sprintf("%7.1f POSTs/s", r.PostsPerSec))
	}
	if r.P50ms > 0 {
		parts = append(parts, fmt.Sprintf("p50 %.1fms p99 %.1fms", r.P50ms, r.P99ms))
	}
	if r.Ratio > 0 {
		parts = append(parts, fmt.Sprintf("%.2fx floor", r.Ratio))
	}
	if r.P50Ratio > 0 {
		parts = append(parts, fmt.Sprintf("p50 %.2fx floor's single-table p50", r.P50Ratio))
	}
	if r.DBCPURatio > 0 {
		parts = append(parts, fmt.Sprintf("database CPU %.2fx floor's", r.DBCPURatio))
	}
	if r.PeakRSS > 0 {
		parts = append(parts, fmt.Sprintf("peak RSS %.1f MB", float64(r.PeakRSS)/(1<<20)))
	}
	if r.Comments != "" {
		parts = append(parts, r.Comments)
	}
	return strings.Join(parts, ", ")
}

func printTable(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\trows\tseconds\trows/s\tjobs/s\tPOSTs/s\tp50 ms\tp99 ms\tvs floor\tp50 vs floor\tpeak RSS MB\tnotes")
	for _, r := range rep.Results {
		cell := func(v float64, format string) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf(format, v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, cell(float64(r.Rows), "%.0f"), r.Seconds,
			cell(r.RowsPerSec, "%.0f"), cell(r.JobsPerSec, "%.1f"), cell(r.PostsPerSec, "%.0f"), cell(r.P50ms, "%.1f"), cell(r.P99ms, "%.1f"),
			cell(r.Ratio, "%.2f"), cell(r.P50Ratio, "%.2f"), cell(float64(r.PeakRSS)/(1<<20), "%.1f"), r.Comments)
	}
	tw.Flush()
}

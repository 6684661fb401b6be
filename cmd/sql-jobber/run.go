package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"strings"
	"time"

	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/cluster"
	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Defaults for flags.
const (
	configDefault            = "config.toml"
	sqlDirectoryDefault      = "sql"
	serverDefault            = "127.0.0.1:6060"
	workerConcurrencyDefault = 10
	shutdownTimeout          = 30 * time.Second
)

// options are the command-line flags.
type options struct {
	config            string
	sqlDirectories    []string
	server            string
	queues            []string
	workerConcurrency int
	workerName        string
	workerOnly        bool
	version           bool
	// pollInterval is how often queues look for work they were not told
	// of; tests shorten it.
	pollInterval time.Duration
}

// listFlag is a flag that may be given more than once.
type listFlag struct {
	values *[]string
	set    bool
}

func (l *listFlag) String() string {
	if l.values == nil {
		return ""
	}
	return strings.Join(*l.values, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.values, l.set = nil, true // the first use replaces the default
	}
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l.values = append(*l.values, part)
		}
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{sqlDirectories: []string{sqlDirectoryDefault}}
	fs := flag.NewFlagSet("sql-jobber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", configDefault, "path to the TOML configuration file")
	fs.Var(&listFlag{values: &o.sqlDirectories}, "sql-directory", "directory of .sql task files (repeatable)")
	fs.StringVar(&o.server, "server", serverDefault, "address of the HTTP API")
	fs.Var(&listFlag{values: &o.queues}, "queue", "queue this node works (repeatable; default: the configured default queue)")
	fs.IntVar(&o.workerConcurrency, "worker-concurrency", workerConcurrencyDefault, "jobs of each queue that run at once on this node")
	fs.StringVar(&o.workerName, "worker-name", "", "unique name of this node in logs and job records (default: host name and process ID)")
	fs.BoolVar(&o.workerOnly, "worker-only", false, "run jobs without serving the HTTP API")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sql-jobber [flags]\n\nsql-jobber runs named SQL tasks as queued jobs and writes each job's results to a table of its own.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if o.workerConcurrency < 1 {
		return nil, fmt.Errorf("--worker-concurrency must be at least 1, got %d", o.workerConcurrency)
	}
	if o.workerName == "" {
		// Unique among running nodes even on one host. A fixed name lets
		// a restarted node take back its lost runs at once.
		host, _ := os.Hostname()
		o.workerName = fmt.Sprintf("%s-%d", cmp.Or(host, "node"), os.Getpid())
	}
	return o, nil
}

// exitCode reports err and returns the process exit code.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "sql-jobber: %v\n", err)
	return 1
}

// Run is the program: it starts the server described by args and serves
// until ctx ends, then shuts down.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintf(stdout, "sql-jobber %s\n", version)
		return nil
	}
	a, err := start(ctx, o, stdout, stderr)
	if err != nil {
		return err
	}
	<-ctx.Done()
	a.logger.Info("shutting down")
	return a.stop()
}

// app is a running sql-jobber node.
type app struct {
	logger  *slog.Logger
	dbs     []*sqlexec.DB
	results []*resultsink.Backend
	engine  *actors.Engine
	server  *nethttp.Server
	addr    string // the HTTP API's address, "" with --worker-only
	served  chan error
}

func start(ctx context.Context, o *options, stdout, stderr io.Writer) (_ *app, err error) {
	cfg, err := loadConfig(o.config)
	if err != nil {
		return nil, err
	}
	level, _ := parseLevel(cfg.app.LogLevel)
	logger := newLogger(stderr, level, cfg.app.LogFormat)
	if cfg.ignoredQueue {
		logger.Warn("the [job_queue] section is ignored: nodes share work through their own cluster, not a broker")
	}

	a := &app{logger: logger}
	defer func() {
		if err != nil {
			a.close()
		}
	}()

	for _, dc := range cfg.dbs {
		db, err := sqlexec.Open(ctx, dc, sqlexec.OpenOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: db.%s: %w", cfg.file, dc.Name, err)
		}
		a.dbs = append(a.dbs, db)
		if cfg.demoDBs[dc.Name] {
			if err := seedDemo(ctx, db, logger); err != nil {
				return nil, fmt.Errorf("db.%s: demo data: %w", dc.Name, err)
			}
		}
	}
	results := map[string]actors.Results{}
	var resultsNames []string
	var ledgerBackend *resultsink.Backend
	for _, rc := range cfg.results {
		b, err := resultsink.Open(ctx, rc)
		if err != nil {
			return nil, fmt.Errorf("%s: results.%s: %w", cfg.file, rc.Name, err)
		}
		a.results = append(a.results, b)
		results[rc.Name] = b
		resultsNames = append(resultsNames, rc.Name)
		if rc.Name == cfg.ledger {
			ledgerBackend = b
		}
	}

	tasks, warnings, err := sqlexec.LoadTasks(o.sqlDirectories)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		logger.Warn(w)
	}
	defaultQueue := cmp.Or(cfg.app.DefaultQueue, actors.DefaultQueueDefault)
	for _, t := range tasks {
		t.Queue = cmp.Or(t.Queue, defaultQueue)
	}
	reg, err := sqlexec.NewRegistry(tasks, a.dbs, resultsNames)
	if err != nil {
		return nil, err
	}
	if err := reg.Prepare(ctx); err != nil {
		return nil, err
	}

	ledger := resultsink.NewLedger(ledgerBackend, cfg.app.LedgerTable)
	ledgerBackend.Reserve(ledger.Tables()...)
	if err := ledger.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("results.%s: %w", cfg.ledger, err)
	}
	queues := map[string]int{}
	for _, q := range o.queues {
		queues[q] = o.workerConcurrency
	}
	if len(queues) == 0 {
		queues[defaultQueue] = o.workerConcurrency
	}
	a.engine, err = actors.NewEngine(ledger, reg, results, actors.Config{
		NodeName:         o.workerName,
		Queues:           queues,
		DefaultQueue:     defaultQueue,
		DefaultTTL:       time.Duration(cfg.app.DefaultJobTTL),
		GroupConcurrency: cfg.app.DefaultGroupConcurrency,
		RetryBackoff:     time.Duration(cfg.app.RetryBackoff),
		PollInterval:     o.pollInterval,
		Cluster:          cluster.Config{Logger: logger},
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	if err := a.engine.Start(ctx); err != nil {
		return nil, err
	}
	// Staging tables of runs that are not live were left by a crash.
	for _, b := range a.results {
		n, err := b.DropStaging(ctx, ledger.LiveRuns)
		if err != nil {
			return nil, fmt.Errorf("results.%s: drop leftover staging tables: %w", b.Name, err)
		}
		if n > 0 {
			logger.Info("dropped leftover staging tables", slog.String("results_backend", b.Name), slog.Int("tables", n))
		}
	}

	if !o.workerOnly {
		l, err := net.Listen("tcp", o.server)
		if err != nil {
			return nil, fmt.Errorf("--server: %w", err)
		}
		a.addr = l.Addr().String()
		api := sjhttp.NewServer(a.engine, sjhttp.Config{ETALocation: cfg.etaLocation, Logger: logger})
		a.server = &nethttp.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second,
			// Bodies are at most 1 MiB; responses may stream for long.
			ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		a.served = make(chan error, 1)
		go func() { a.served <- a.server.Serve(l) }()
		printWelcome(stdout, a.addr, reg.Tasks())
	}
	logger.Info("sql-jobber started", slog.String("version", version), slog.String("node", o.workerName),
		slog.Any("queues", queues), slog.Int("tasks", len(reg.Tasks())), slog.String("http", a.addr))
	return a, nil
}

// stop shuts the node down: the API first, so no job is accepted that
// could not start, then the engine, then the pools.
func (a *app) stop() error {
	var errs []error
	if a.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if err := <-a.served; err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	a.close()
	return errors.Join(errs...)
}

func (a *app) close() {
	if a.engine != nil {
		a.engine.Stop()
	}
	for _, b := range a.results {
		b.Close()
	}
	for _, db := range a.dbs {
		db.Close()
	}
}

func printWelcome(w io.Writer, addr string, tasks []*sqlexec.Task) {
	base := "http://" + addr
	fmt.Fprintf(w, "sql-jobber is listening on %s\n", base)
	if len(tasks) == 0 {
		return
	}
	t := tasks[0]
	for _, c := range tasks {
		if c.NumArgs == 0 {
			t = c
			break
		}
	}
	args := "[]"
	if t.NumArgs > 0 {
		args = "[" + strings.TrimSuffix(strings.Repeat(`"value", `, t.NumArgs), ", ") + "]"
	}
	fmt.Fprintf(w, "Try:\n  curl -s %s/tasks/%s/jobs -d '{\"job_id\": \"hello\", \"args\": %s}'\n  curl -s %s/jobs/hello\n",
		base, t.Name, args, base)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("unknown level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

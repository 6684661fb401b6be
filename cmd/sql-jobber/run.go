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
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/cluster"
	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/ledger"
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
	metrics           string // address of /metrics, /healthz, /readyz on their own
	clusterBind       string
	clusterAdvertise  string
	join              []string
	logLevel          string
	logFormat         string
	pprof             string
	// pollInterval is how often queues look for work they were not told
	// of; tests shorten it, and tighten gossip timings with tuneGossip.
	pollInterval time.Duration
	tuneGossip   func(*memberlist.Config)
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
	fs.StringVar(&o.metrics, "metrics", "", "address serving /metrics, /healthz and /readyz on their own (default: on --server; needed with --worker-only)")
	fs.StringVar(&o.clusterBind, "cluster-bind", "", "host:port of cluster gossip (UDP and TCP; actor messages use port+1): makes this node a cluster member")
	fs.StringVar(&o.clusterAdvertise, "cluster-advertise", "", "host:port the other members reach this node's gossip at (default: --cluster-bind)")
	fs.Var(&listFlag{values: &o.join}, "join", "host:port of a cluster member to join (repeatable)")
	fs.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error (default: app.log_level)")
	fs.StringVar(&o.logFormat, "log-format", "", "text or json (default: app.log_format)")
	fs.StringVar(&o.pprof, "pprof", "", "serve Go's profiler (net/http/pprof) on this address, for measurements")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sql-jobber [flags]\n       sql-jobber job|jobs|queues|tasks|members ... (the client: see sql-jobber job --help)\n\nsql-jobber runs named SQL tasks as queued jobs and writes each job's results to a table of its own.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if o.logLevel != "" {
		if _, err := parseLevel(o.logLevel); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
	}
	switch strings.ToLower(o.logFormat) {
	case "", "text", "json":
	default:
		return nil, fmt.Errorf("--log-format: unknown format %q: use text or json", o.logFormat)
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
	var cliExit exitStatus
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &cliExit):
		return int(cliExit) // the client command said why
	}
	fmt.Fprintf(stderr, "sql-jobber: %v\n", err)
	return 1
}

// Run is the program: it starts the server described by args and serves
// until ctx ends, then shuts down; or, when the first argument is one of
// the client's commands (job, jobs, queues, databases, tasks, members), runs it.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isCLICommand(args[0]) {
		return runCLI(ctx, args, os.Getenv, stdout, stderr)
	}
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
	a.logger.Info("shutting down: no new jobs; running jobs may finish", slog.Duration("drain_timeout", a.drain))
	err = a.stop()
	a.logger.Info("sql-jobber stopped")
	return err
}

// app is a running sql-jobber node.
type app struct {
	logger  *slog.Logger
	ctx     context.Context // for shutting down after Run's context ended
	drain   time.Duration
	metrics *prometheus.Registry
	pools   *poolCollector
	dbs     []*sqlexec.DB
	results []*resultsink.Backend
	ledger  *ledger.Ledger
	engine  *actors.Engine
	node    *cluster.Node
	servers []*server
	addr    string // the HTTP API's address, "" with --worker-only
	opsAddr string // the address of /metrics etc., if on their own
}

// server is one HTTP listener of the node.
type server struct {
	srv    *nethttp.Server
	served chan error
}

func serve(addr string, h nethttp.Handler, maxConns int) (*server, string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	return serveOn(l, h, maxConns), l.Addr().String(), nil
}

// serveOn serves h on l, with at most maxConns connections open at once.
func serveOn(l net.Listener, h nethttp.Handler, maxConns int) *server {
	l = sjhttp.LimitListener(l, maxConns)
	s := &server{srv: &nethttp.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		// Bodies are at most 1 MiB; responses may stream for long.
		ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}, served: make(chan error, 1)}
	go func() { s.served <- s.srv.Serve(l) }()
	return s
}

// DrainTimeoutDefault is how long a stopping node lets running jobs finish.
const drainTimeoutDefault = 30 * time.Second

// start opens the databases, loads the tasks, joins the cluster, starts the
// engine and serves the API, in that order; on error it undoes what it did.
func start(ctx context.Context, o *options, stdout, stderr io.Writer) (_ *app, err error) {
	cfg, err := loadConfig(o.config)
	if err != nil {
		return nil, err
	}
	level, _ := parseLevel(cmp.Or(o.logLevel, cfg.app.LogLevel))
	logger := newLogger(stderr, level, cmp.Or(o.logFormat, cfg.app.LogFormat))
	for _, w := range cfg.migrationWarnings() {
		logger.Warn(w, slog.String("config", cfg.file))
	}

	a := &app{logger: logger, ctx: context.WithoutCancel(ctx), drain: cmp.Or(time.Duration(cfg.app.DrainTimeout), drainTimeoutDefault),
		metrics: prometheus.NewRegistry(), pools: &poolCollector{}}
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), a.pools)
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if err := a.openDatabases(ctx, cfg); err != nil {
		return nil, err
	}
	defaultQueue := cmp.Or(cfg.app.DefaultQueue, actors.DefaultQueueDefault)
	reg, err := a.loadTasks(ctx, o.sqlDirectories, defaultQueue)
	if err != nil {
		return nil, err
	}
	// The API listens before the node joins, so that the other members
	// learn its real address; it serves once the engine runs.
	var apiListener net.Listener
	if !o.workerOnly {
		if apiListener, err = net.Listen("tcp", o.server); err != nil {
			return nil, fmt.Errorf("--server: %w", err)
		}
		a.addr = apiListener.Addr().String()
		defer func() {
			if err != nil {
				apiListener.Close()
			}
		}()
	}
	queues := map[string]int{}
	for _, q := range o.queues {
		queues[q] = o.workerConcurrency
	}
	if len(queues) == 0 {
		queues[defaultQueue] = o.workerConcurrency
	}
	if err := a.startEngine(ctx, cfg, o, reg, queues, defaultQueue); err != nil {
		return nil, err
	}
	if err := a.serveHTTP(cfg, o, reg, apiListener, stdout); err != nil {
		return nil, err
	}
	// A job of a queue that no member works waits, silently, until one
	// that does joins.
	for _, t := range reg.Tasks() {
		if a.engine.Workers(t.Queue) == 0 {
			logger.Warn("no member of the cluster works the queue of a task: its jobs wait until a node started with --queue "+cmp.Or(t.Queue, defaultQueue)+" joins",
				slog.String("task", t.Name), slog.String("queue", cmp.Or(t.Queue, defaultQueue)))
		}
	}
	logger.Info("sql-jobber started", slog.String("version", version), slog.String("node", o.workerName),
		slog.Any("queues", queues), slog.Int("tasks", len(reg.Tasks())), slog.String("http", a.addr), slog.String("metrics", a.opsAddr))
	return a, nil
}

// openDatabases opens the source databases (seeding the demo ones), the
// results backends and, on its backend, the job ledger.
func (a *app) openDatabases(ctx context.Context, cfg *config) error {
	for _, dc := range cfg.dbs {
		db, err := sqlexec.Open(ctx, dc, sqlexec.OpenOptions{})
		if err != nil {
			return fmt.Errorf("%s: db.%s: %w", cfg.file, dc.Name, err)
		}
		a.dbs = append(a.dbs, db)
		a.pools.pools = append(a.pools.pools, pool{role: "source", db: db})
		if cfg.demoDBs[dc.Name] {
			if err := seedDemo(ctx, db, a.logger); err != nil {
				return fmt.Errorf("db.%s: demo data: %w", dc.Name, err)
			}
		}
	}
	var ledgerBackend *resultsink.Backend
	for _, rc := range cfg.results {
		rc.Logger = a.logger
		b, err := resultsink.Open(ctx, rc)
		if err != nil {
			return fmt.Errorf("%s: results.%s: %w", cfg.file, rc.Name, err)
		}
		a.results = append(a.results, b)
		a.pools.pools = append(a.pools.pools, pool{role: "results", db: b.DB()})
		if rc.Name == cfg.ledger {
			ledgerBackend = b
		}
	}
	l, err := ledger.New(ledgerBackend.DB(), ledgerBackend.Durable(), cfg.ledgerCfg)
	if err != nil {
		return err
	}
	a.ledger = l
	ledgerBackend.Reserve(l.Tables()...)
	if err := l.Migrate(ctx); err != nil {
		return fmt.Errorf("results.%s: %w", cfg.ledger, err)
	}
	return nil
}

// loadTasks loads and prepares the tasks of dirs.
func (a *app) loadTasks(ctx context.Context, dirs []string, defaultQueue string) (*sqlexec.Registry, error) {
	tasks, warnings, err := sqlexec.LoadTasks(dirs)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		a.logger.Warn(w)
	}
	for _, t := range tasks {
		t.Queue = cmp.Or(t.Queue, defaultQueue)
	}
	names := make([]string, len(a.results))
	for i, b := range a.results {
		names[i] = b.Name
	}
	reg, err := sqlexec.NewRegistry(tasks, a.dbs, names)
	if err != nil {
		return nil, err
	}
	return reg, reg.Prepare(ctx)
}

// startEngine joins the cluster and starts the engine on it, then drops
// the staging tables that runs lost in a crash left behind.
func (a *app) startEngine(ctx context.Context, cfg *config, o *options, reg *sqlexec.Registry, queues map[string]int, defaultQueue string) error {
	reader, err := resultsink.NewReader(a.results, cfg.readerCfg)
	if err != nil {
		return err
	}
	results := map[string]actors.Results{}
	for _, b := range a.results {
		results[b.Name] = b
	}
	a.engine, err = actors.NewEngine(a.ledger, reg, results, reader, actors.Config{
		NodeName:         o.workerName,
		Queues:           queues,
		DefaultQueue:     defaultQueue,
		DefaultTTL:       time.Duration(cfg.app.DefaultJobTTL),
		GroupConcurrency: cfg.app.DefaultGroupConcurrency,
		RetryBackoff:     time.Duration(cfg.app.RetryBackoff),
		PollInterval:     o.pollInterval,
		Lease:            time.Duration(cfg.app.RunLease),
		LostRunsMax:      cfg.app.LostRunsMax,
		Logger:           a.logger,
		Metrics:          a.metrics,
	})
	if err != nil {
		return err
	}
	clusterCfg, err := clusterConfigOf(cfg, o)
	if err != nil {
		return err
	}
	clusterCfg.Logger, clusterCfg.Kinds, clusterCfg.MemberDown = a.logger, a.engine.Kinds(), a.engine.MemberDown
	clusterCfg.Info = cluster.NodeInfo{Name: o.workerName, Queues: queues, API: a.addr, Ledger: a.ledger.Identity()}
	if a.node, err = cluster.NewNode(clusterCfg); err != nil {
		return err
	}
	if err := a.node.Start(ctx); err != nil {
		return err
	}
	if err := a.engine.Start(ctx, a.node); err != nil {
		return err
	}
	// Staging tables of runs that are not live were left by a crash.
	for _, b := range a.results {
		n, err := b.DropStaging(ctx, a.ledger.LiveRuns)
		if err != nil {
			return fmt.Errorf("results.%s: drop leftover staging tables: %w", b.Name, err)
		}
		if n > 0 {
			a.logger.Info("dropped leftover staging tables", slog.String("results_backend", b.Name), slog.Int("tables", n))
		}
	}
	return nil
}

// serveHTTP serves the profiler, the operations endpoints and the API, on
// the addresses the flags and the configuration give.
func (a *app) serveHTTP(cfg *config, o *options, reg *sqlexec.Registry, apiListener net.Listener, stdout io.Writer) error {
	if o.pprof != "" {
		mux := nethttp.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		s, _, err := serve(o.pprof, mux, cfg.maxConns)
		if err != nil {
			return fmt.Errorf("--pprof: %w", err)
		}
		a.servers = append(a.servers, s)
	}
	ops := sjhttp.NewOps(a.metrics, a.readiness(reg))
	httpCfg := sjhttp.Config{ETALocation: cfg.etaLocation, Logger: a.logger, Metrics: a.metrics, MaxWait: time.Duration(cfg.app.MaxWait),
		CSVSafe: cfg.app.CSVSafe}
	opsAddr := cmp.Or(o.metrics, cfg.app.MetricsAddress)
	if opsAddr != "" {
		s, addr, err := serve(opsAddr, ops.Handler(httpCfg), cfg.maxConns)
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		a.servers, a.opsAddr = append(a.servers, s), addr
	}
	switch {
	case !o.workerOnly:
		// The operations endpoints on an address of their own stay open
		// to whoever reaches it; on the API's, they need admin.
		auth, err := sjhttp.NewAuth(cfg.tokens, cfg.limits)
		if err != nil {
			return fmt.Errorf("auth: %w", err)
		}
		httpCfg.Auth = auth
		if opsAddr == "" {
			httpCfg.Ops = ops
		}
		if w := openAPIWarning(cfg.tokens, a.addr); w != "" {
			a.logger.Warn(w)
		}
		a.servers = append(a.servers, serveOn(apiListener, sjhttp.NewServer(a.engine, httpCfg).Handler(), cfg.maxConns))
		printWelcome(stdout, a.addr, reg.Tasks(), a.engine.Workers, len(cfg.tokens) > 0)
	case opsAddr == "":
		a.logger.Warn("--worker-only without --metrics: this node serves no /metrics, /healthz or /readyz")
	}
	return nil
}

// clusterConfigOf derives the cluster settings from [cluster] and the flags
// (which win). Without a bind address the node runs alone.
func clusterConfigOf(cfg *config, o *options) (cluster.Config, error) {
	cc := cluster.Config{Name: cfg.cluster.Name}
	bind := cmp.Or(o.clusterBind, cfg.cluster.Bind)
	advertise := cmp.Or(o.clusterAdvertise, cfg.cluster.Advertise)
	join := o.join
	if len(join) == 0 {
		join = cfg.cluster.Join
	}
	if bind == "" {
		if advertise != "" || len(join) > 0 {
			return cc, errors.New("--cluster-advertise and --join need --cluster-bind (or [cluster] bind)")
		}
		return cc, nil
	}
	host, portText, err := net.SplitHostPort(bind)
	if err != nil {
		return cc, fmt.Errorf("--cluster-bind: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return cc, fmt.Errorf("--cluster-bind: invalid port %q", portText)
	}
	// Actor messages between nodes: their own port, by default the next.
	actorPort := cfg.cluster.ActorPort
	if actorPort == 0 && port != 0 {
		actorPort = port + 1
	}
	cc.Host, cc.Port = host, actorPort
	advHost := host
	if advertise != "" {
		if advHost, _, err = net.SplitHostPort(advertise); err != nil {
			return cc, fmt.Errorf("--cluster-advertise: %w", err)
		}
	}
	if ip := net.ParseIP(advHost); advHost == "" || ip != nil && ip.IsUnspecified() {
		return cc, errors.New("--cluster-bind listens on every interface: give --cluster-advertise, the address the other members reach this node at")
	}
	if advHost != host {
		if actorPort == 0 {
			return cc, errors.New("[cluster] actor_port is needed with --cluster-advertise and a gossip port of 0")
		}
		cc.Advertise = net.JoinHostPort(advHost, strconv.Itoa(actorPort))
	}
	if cfg.cluster.TLSCert != "" {
		cc.TLS = &cluster.TLSConfig{CertFile: cfg.cluster.TLSCert, KeyFile: cfg.cluster.TLSKey, CAFile: cfg.cluster.TLSCA}
	}
	cc.Membership = &cluster.MembershipConfig{Bind: bind, Advertise: advertise, Join: join, Secrets: cfg.secrets,
		RemovalGrace: time.Duration(cfg.cluster.RemovalGrace), Tune: o.tuneGossip}
	return cc, nil
}

// readiness checks that every configured database answers, that the node
// is a member of its cluster and takes jobs, and that tasks are loaded.
func (a *app) readiness(reg *sqlexec.Registry) sjhttp.ReadyFunc {
	return func(ctx context.Context) []sjhttp.Check {
		var checks []sjhttp.Check
		add := func(name string, err error) {
			c := sjhttp.Check{Name: name, OK: err == nil}
			if err != nil {
				c.Error = err.Error()
			}
			checks = append(checks, c)
		}
		for _, db := range a.dbs {
			add("db."+db.Name, db.Ping(ctx))
		}
		for _, b := range a.results {
			add("results."+b.Name, b.Check(ctx))
		}
		add("cluster", a.engine.Joined())
		var err error
		if len(reg.Tasks()) == 0 {
			err = errors.New("no tasks are loaded")
		}
		add("tasks", err)
		return checks
	}
}

// stop shuts the node down: it takes no new jobs (submissions are refused,
// /readyz says so) while running jobs finish, up to the drain timeout; then
// the HTTP servers stop, the engine hands back what still runs, the node
// leaves the cluster, and the pools close.
func (a *app) stop() error {
	ctx, cancel := context.WithTimeout(a.ctx, a.drain)
	defer cancel()
	if a.node != nil {
		// The others show this node leaving from the drain's first
		// moment.
		a.node.SetDraining()
	}
	if a.engine != nil && !a.engine.Drain(ctx) {
		a.logger.Warn("drain timeout: jobs still running are handed back to run again")
	}
	var errs []error
	for _, s := range a.servers {
		ctx, cancel := context.WithTimeout(a.ctx, shutdownTimeout)
		if err := s.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		if err := <-s.served; err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
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
	if a.node != nil {
		a.node.Stop()
	}
	if a.ledger != nil {
		a.ledger.Close()
	}
	for _, b := range a.results {
		b.Close()
	}
	for _, db := range a.dbs {
		db.Close()
	}
}

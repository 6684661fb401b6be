package main

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	sjhttp "github.com/sql-jobber/sql-jobber/http"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// fileConfig is the TOML configuration file. Only this package knows TOML;
// it maps the file onto each package's plain config structs.
type fileConfig struct {
	App     appConfig                `toml:"app"`
	Cluster clusterConfig            `toml:"cluster"`
	DB      map[string]dbConfig      `toml:"db"`
	Results map[string]resultsConfig `toml:"results"`
	Auth    authConfig               `toml:"auth"`
	// JobQueue and Machinery are the predecessor's broker sections (of
	// dungbeetle, and of its Machinery-era versions), accepted so that an
	// old configuration still starts, and otherwise ignored.
	JobQueue  map[string]any `toml:"job_queue"`
	Machinery map[string]any `toml:"machinery"`
}

type appConfig struct {
	LogLevel      string   `toml:"log_level"`
	LogFormat     string   `toml:"log_format"`
	DefaultQueue  string   `toml:"default_queue"`
	DefaultJobTTL duration `toml:"default_job_ttl"`
	// Ledger names the results backend that holds the job ledger; default:
	// the first [results.*] in the file.
	Ledger      string `toml:"ledger"`
	LedgerTable string `toml:"ledger_table"`
	// ETATimezone is the zone of ETAs given without one (default UTC).
	ETATimezone string `toml:"eta_timezone"`
	// DefaultGroupConcurrency is how many jobs of a group run at once
	// when the request does not say.
	DefaultGroupConcurrency int `toml:"default_group_concurrency"`
	// RetryBackoff is the wait before a failed job's first retry; it
	// doubles for each further one.
	RetryBackoff duration `toml:"retry_backoff"`
	// RunLease is how long a run's claim on its job lasts without renewal:
	// how soon the jobs of a node that died run elsewhere.
	RunLease duration `toml:"run_lease"`
	// LostRunsMax is how many runs of one job may be lost with their
	// nodes before the job fails.
	LostRunsMax int `toml:"lost_runs_max"`
	// DrainTimeout is how long a stopping node lets running jobs finish
	// before it hands them back to the ledger.
	DrainTimeout duration `toml:"drain_timeout"`
	// MaxWait caps ?wait= on GET /jobs/{id} and /groups/{id} (default 1m).
	MaxWait duration `toml:"max_wait"`
	// MetricsAddress serves /metrics, /healthz and /readyz on an address
	// of their own (--metrics).
	MetricsAddress string `toml:"metrics_address"`
	// GoneRetention is how long the IDs of purged and expired jobs are
	// remembered, so that their results answer "gone".
	GoneRetention duration `toml:"gone_retention"`
	// ResultsPageSize and ResultsMaxPageSize are the default and the
	// largest number of rows in a page of GET /jobs/{id}/results.
	ResultsPageSize    int `toml:"results_page_size"`
	ResultsMaxPageSize int `toml:"results_max_page_size"`
	// CSVSafe neutralises CSV cells that spreadsheets would run as
	// formulas, unless a request says ?csv_safe=false.
	CSVSafe bool `toml:"csv_safe"`
	// MaxConnections caps the HTTP connections open at once on each of
	// the node's listeners (default 1000); nil when not set.
	MaxConnections *int `toml:"max_connections"`
}

// clusterConfig is the [cluster] section: how this node finds the others.
type clusterConfig struct {
	// Name is the cluster's name.
	Name string `toml:"name"`
	// Bind is the host:port gossip listens on (UDP and TCP); set, it makes
	// the node a cluster member (--cluster-bind).
	Bind string `toml:"bind"`
	// Advertise is the host:port the others reach this node's gossip at
	// (--cluster-advertise).
	Advertise string `toml:"advertise"`
	// Join lists members to join (--join).
	Join []string `toml:"join"`
	// ActorPort is the TCP port of actor messages between nodes; default
	// the gossip port + 1.
	ActorPort int `toml:"actor_port"`
	// RemovalGrace is how long an unresponsive member stays before it is
	// dropped.
	RemovalGrace duration `toml:"removal_grace"`
	// Secret (base64 of 16, 24 or 32 bytes) encrypts and authenticates
	// gossip; SQLJOBBER_CLUSTER_SECRET overrides it. SecondarySecrets are
	// accepted too, for rotating the secret.
	Secret           string   `toml:"secret"`
	SecondarySecrets []string `toml:"secondary_secrets"`
	// TLSCert and TLSKey make the actor port speak TLS; with TLSCA, mutual
	// TLS.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	TLSCA   string `toml:"tls_ca"`
}

// connConfig are the keys [db.*] and [results.*] share: how to reach a
// database.
type connConfig struct {
	Type           string   `toml:"type"`
	DSN            string   `toml:"dsn"`
	MaxIdle        int      `toml:"max_idle"`
	MaxActive      int      `toml:"max_active"`
	ConnectTimeout duration `toml:"connect_timeout"`
}

func (c connConfig) dbConfig(name string) sqlexec.DBConfig {
	return sqlexec.DBConfig{Name: name, Type: sqlexec.Dialect(c.Type), DSN: c.DSN, MaxIdle: c.MaxIdle,
		MaxActive: c.MaxActive, ConnectTimeout: time.Duration(c.ConnectTimeout)}
}

type dbConfig struct {
	connConfig
	// DemoData fills a SQLite database with an entries table of demo
	// rows when it has none.
	DemoData bool `toml:"demo_data"`
	// MaxRunning caps the jobs running against the database at once,
	// across the cluster (ledger.Config.MaxRunning); nil: no cap.
	MaxRunning *int `toml:"max_running"`
	// Unlogged is accepted, and ignored with a warning, because
	// dungbeetle's sample configuration set it on source databases,
	// where it never did anything.
	Unlogged *bool `toml:"unlogged" predecessor:"ignored"`
}

type resultsConfig struct {
	connConfig
	ResultsTable string `toml:"results_table"`
	Unlogged     bool   `toml:"unlogged"`
	// AsyncCommit (PostgreSQL): see resultsink.Config. Default: on for
	// the ledger's database.
	AsyncCommit *bool `toml:"async_commit"`
}

// duration is a Go duration string ("10s") or a number of seconds.
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: use e.g. \"30s\" or \"10m\"", b)
	}
	*d = duration(v)
	return nil
}

// config is the loaded, validated configuration.
type config struct {
	file        string
	app         appConfig
	cluster     clusterConfig
	etaLocation *time.Location
	dbs         []sqlexec.DBConfig
	demoDBs     map[string]bool
	results     []resultsink.Config
	ledger      string
	ledgerCfg   ledger.Config
	// maxRunning are the [db.*] sections' max_running, by name.
	maxRunning map[string]int
	readerCfg  resultsink.ReaderConfig
	// ignored are the predecessor's sections that the file has, which
	// sql-jobber ignores; ignoredKeys its keys.
	ignored     []string
	ignoredKeys []string
	// secrets are the gossip secrets, decoded: the first encrypts.
	secrets [][]byte
	// tokens are the API's tokens ([auth.tokens.*]), limits its caps.
	tokens []sjhttp.Token
	limits sjhttp.Limits
	// maxConns caps each HTTP listener's open connections.
	maxConns int
}

// configError locates a configuration problem: file, line and key.
type configError struct {
	file string
	line int
	key  string
	err  error
}

func (e *configError) Error() string {
	loc := e.file
	if e.line > 0 {
		loc = fmt.Sprintf("%s:%d", e.file, e.line)
	}
	if e.key == "" {
		return fmt.Sprintf("%s: %v", loc, e.err)
	}
	return fmt.Sprintf("%s: %s: %v", loc, e.key, e.err)
}

func (e *configError) Unwrap() error { return e.err }

// secretEnv, when set, is the cluster's gossip secret, in place of [cluster]
// secret: a secret is better kept out of files.
const secretEnv = "SQLJOBBER_CLUSTER_SECRET"

func loadConfig(path string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := parseConfig(path, data)
	if err != nil {
		return nil, err
	}
	if v := os.Getenv(secretEnv); v != "" {
		secret, err := decodeSecret(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", secretEnv, err)
		}
		if len(c.secrets) == 0 {
			c.secrets = [][]byte{secret}
		} else {
			c.secrets[0] = secret
		}
	}
	return c, nil
}

// decodeSecret decodes a gossip secret: base64 of 16, 24 or 32 bytes (an
// AES-128, -192 or -256 key).
func decodeSecret(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("must be base64 (e.g. the output of: openssl rand -base64 32)")
	}
	if n := len(b); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("must be base64 of 16, 24 or 32 bytes, not %d", n)
	}
	return b, nil
}

func parseConfig(path string, data []byte) (*config, error) {
	lines, perr := keyLines(data)
	if perr != nil {
		return nil, &configError{file: path, line: perr.line, err: perr.err}
	}
	fail := func(key string, err error) error {
		return &configError{file: path, line: lineOf(lines, key), key: key, err: err}
	}
	fc, err := decodeConfig(path, data)
	if err != nil {
		return nil, err
	}
	c := &config{file: path, app: fc.App, cluster: fc.Cluster, demoDBs: map[string]bool{}, maxRunning: map[string]int{}}
	for name, section := range map[string]map[string]any{"job_queue": fc.JobQueue, "machinery": fc.Machinery} {
		if section != nil {
			c.ignored = append(c.ignored, name)
		}
	}
	slices.Sort(c.ignored)
	for _, check := range []func(fail func(string, error) error) error{c.checkCluster, c.checkApp} {
		if err := check(fail); err != nil {
			return nil, err
		}
	}
	if err := c.sourceSections(fc, lines, fail); err != nil {
		return nil, err
	}
	if err := c.resultsSections(fc, lines, fail); err != nil {
		return nil, err
	}
	if err := c.checkAuth(fc.Auth, lines, fail); err != nil {
		return nil, err
	}
	c.ledgerCfg = ledger.Config{Table: c.app.LedgerTable, GoneRetention: time.Duration(c.app.GoneRetention), MaxRunning: c.maxRunning}.WithDefaults()
	if err := c.ledgerCfg.Validate(); err != nil {
		return nil, keyFail(fail, "app", err)
	}
	c.readerCfg = resultsink.ReaderConfig{PageSize: c.app.ResultsPageSize, MaxPageSize: c.app.ResultsMaxPageSize}.WithDefaults()
	if err := c.readerCfg.Validate(); err != nil {
		return nil, keyFail(fail, "app", err)
	}
	return c, nil
}

// decodeConfig decodes the file strictly: an unknown key or a value of the
// wrong type is an error that names its line and key.
func decodeConfig(path string, data []byte) (*fileConfig, error) {
	var fc fileConfig
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &strict) && len(strict.Errors) > 0:
			e := strict.Errors[0]
			row, _ := e.Position()
			return nil, &configError{file: path, line: row, key: strings.Join(e.Key(), "."), err: errors.New("unknown key")}
		case errors.As(err, &de):
			row, _ := de.Position()
			return nil, &configError{file: path, line: row, key: strings.Join(de.Key(), "."), err: errors.New(strings.TrimPrefix(de.Error(), "toml: "))}
		}
		return nil, &configError{file: path, err: err}
	}
	return &fc, nil
}

// checkCluster checks the [cluster] section.
func (c *config) checkCluster(fail func(string, error) error) error {
	for _, kv := range []struct{ key, addr string }{{"cluster.bind", c.cluster.Bind}, {"cluster.advertise", c.cluster.Advertise}} {
		if kv.addr != "" {
			if _, _, err := net.SplitHostPort(kv.addr); err != nil {
				return fail(kv.key, fmt.Errorf("must be host:port: %w", err))
			}
		}
	}
	for i, j := range c.cluster.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fail("cluster.join", fmt.Errorf("entry %d must be host:port: %w", i+1, err))
		}
	}
	if c.cluster.ActorPort < 0 || c.cluster.ActorPort > 65535 {
		return fail("cluster.actor_port", errors.New("must be a port number"))
	}
	if c.cluster.RemovalGrace < 0 {
		return fail("cluster.removal_grace", errors.New("must not be negative"))
	}
	if c.cluster.Secret == "" && len(c.cluster.SecondarySecrets) > 0 {
		return fail("cluster.secondary_secrets", errors.New("needs cluster.secret, the secret that encrypts"))
	}
	for i, v := range append([]string{c.cluster.Secret}, c.cluster.SecondarySecrets...) {
		if v == "" && i == 0 {
			continue
		}
		secret, err := decodeSecret(v)
		switch {
		case err != nil && i == 0:
			return fail("cluster.secret", err)
		case err != nil:
			return fail("cluster.secondary_secrets", fmt.Errorf("entry %d: %w", i, err))
		}
		c.secrets = append(c.secrets, secret)
	}
	return c.checkTLS(fail)
}

// checkTLS checks that the TLS files come together and can be read.
func (c *config) checkTLS(fail func(string, error) error) error {
	cc := c.cluster
	switch {
	case (cc.TLSCert == "") != (cc.TLSKey == ""):
		return fail("cluster.tls_cert", errors.New("tls_cert and tls_key go together"))
	case cc.TLSCA != "" && cc.TLSCert == "":
		return fail("cluster.tls_ca", errors.New("needs tls_cert and tls_key, this node's certificate"))
	}
	for _, f := range []struct{ key, path string }{{"cluster.tls_cert", cc.TLSCert}, {"cluster.tls_key", cc.TLSKey}, {"cluster.tls_ca", cc.TLSCA}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fail(f.key, err)
		}
	}
	return nil
}

// checkApp checks the [app] section and fills in its defaults.
func (c *config) checkApp(fail func(string, error) error) error {
	c.app.LogLevel = cmp.Or(c.app.LogLevel, "info")
	if _, err := parseLevel(c.app.LogLevel); err != nil {
		return fail("app.log_level", err)
	}
	switch strings.ToLower(c.app.LogFormat) {
	case "", "text", "json":
	default:
		return fail("app.log_format", fmt.Errorf(`unknown format %q: use "text" or "json"`, c.app.LogFormat))
	}
	if c.app.DefaultQueue != "" && !sqlexec.ValidName(c.app.DefaultQueue) {
		return fail("app.default_queue", errors.New("use 1-128 letters, digits, '_', '-' or '.'"))
	}
	for _, d := range []struct {
		key string
		d   duration
	}{{"app.default_job_ttl", c.app.DefaultJobTTL}, {"app.retry_backoff", c.app.RetryBackoff}, {"app.max_wait", c.app.MaxWait},
		{"app.drain_timeout", c.app.DrainTimeout}} {
		if d.d < 0 {
			return fail(d.key, errors.New("must not be negative"))
		}
	}
	if c.app.DefaultGroupConcurrency < 0 {
		return fail("app.default_group_concurrency", errors.New("must be at least 1"))
	}
	if c.app.RunLease < 0 || c.app.RunLease > 0 && time.Duration(c.app.RunLease) < time.Second {
		return fail("app.run_lease", errors.New("must be at least 1s"))
	}
	if c.app.LostRunsMax < 0 {
		return fail("app.lost_runs_max", errors.New("must be at least 1"))
	}
	if c.app.MaxConnections != nil && *c.app.MaxConnections < 1 {
		return fail("app.max_connections", errors.New("must be at least 1"))
	}
	c.maxConns = sjhttp.MaxConnectionsDefault
	if c.app.MaxConnections != nil {
		c.maxConns = *c.app.MaxConnections
	}
	c.etaLocation = time.UTC
	if c.app.ETATimezone != "" {
		loc, err := time.LoadLocation(c.app.ETATimezone)
		if err != nil {
			return fail("app.eta_timezone", err)
		}
		c.etaLocation = loc
	}
	return nil
}

// sourceSections checks the [db.*] sections, in the order of the file.
func (c *config) sourceSections(fc *fileConfig, lines map[string]int, fail func(string, error) error) error {
	if len(fc.DB) == 0 {
		return fail("db", errors.New(`no source database: add a [db.<name>] section`))
	}
	for _, name := range sortedByLine(fc.DB, "db", lines) {
		d := fc.DB[name]
		key := "db." + name
		if !sqlexec.ValidName(name) {
			return fail(key, errors.New("invalid name: use 1-128 letters, digits, '_', '-' or '.'"))
		}
		cfg := d.dbConfig(name).WithDefaults()
		if err := cfg.Validate(); err != nil {
			return keyFail(fail, key, err)
		}
		if d.DemoData && cfg.Type != sqlexec.SQLite {
			return fail(key+".demo_data", errors.New("only applies to sqlite"))
		}
		c.demoDBs[name] = d.DemoData
		if d.MaxRunning != nil {
			if n := *d.MaxRunning; n < 1 || n > ledger.MaxRunningMax {
				return fail(key+".max_running", fmt.Errorf("must be a whole number from 1 to %d (omit it for no cap), got %d", ledger.MaxRunningMax, n))
			}
			c.maxRunning[name] = *d.MaxRunning
		}
		if d.Unlogged != nil {
			c.ignoredKeys = append(c.ignoredKeys, key+".unlogged")
		}
		c.dbs = append(c.dbs, cfg)
	}
	return nil
}

// resultsSections checks the [results.*] sections, in the order of the
// file, and which of them keeps the ledger (app.ledger, by default the
// first); its database commits asynchronously by default.
func (c *config) resultsSections(fc *fileConfig, lines map[string]int, fail func(string, error) error) error {
	if len(fc.Results) == 0 {
		return fail("results", errors.New(`no results backend: add a [results.<name>] section`))
	}
	for _, name := range sortedByLine(fc.Results, "results", lines) {
		r := fc.Results[name]
		key := "results." + name
		if !sqlexec.ValidName(name) {
			return fail(key, errors.New("invalid name: use 1-128 letters, digits, '_', '-' or '.'"))
		}
		cfg := resultsink.Config{DBConfig: r.dbConfig(name), ResultsTable: r.ResultsTable, Unlogged: r.Unlogged}.WithDefaults()
		if err := cfg.Validate(); err != nil {
			return keyFail(fail, key, err)
		}
		c.results = append(c.results, cfg)
	}
	c.ledger = c.app.Ledger
	if c.ledger == "" {
		c.ledger = c.results[0].Name
	} else if _, ok := fc.Results[c.ledger]; !ok {
		return fail("app.ledger", fmt.Errorf("no results backend %q is configured", c.ledger))
	}
	for i := range c.results {
		r := &c.results[i]
		set := fc.Results[r.Name].AsyncCommit
		switch {
		case set == nil:
			r.AsyncCommit = r.Name == c.ledger && r.Type == sqlexec.Postgres
		case *set && r.Name != c.ledger:
			return fail("results."+r.Name+".async_commit", errors.New("only for the ledger's database: elsewhere a job could be recorded SUCCESS while a crash lost its table"))
		default:
			r.AsyncCommit = *set
		}
		if err := r.Validate(); err != nil {
			return keyFail(fail, "results."+r.Name, err)
		}
	}
	return nil
}

func keyFail(fail func(string, error) error, prefix string, err error) error {
	var ke *sqlexec.KeyError
	if errors.As(err, &ke) {
		return fail(prefix+"."+ke.Key, ke.Err)
	}
	return fail(prefix, err)
}

// sortedByLine returns m's keys in the order their sections appear in the
// file, so that "the first results backend" means the first one written.
func sortedByLine[V any](m map[string]V, section string, order map[string]int) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		li, lj := order[section+"."+names[i]], order[section+"."+names[j]]
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	return names
}

// migrationWarnings are what a configuration copied from dungbeetle (it has
// the predecessor's broker sections) does differently here: one warning per
// section ignored, and one when results would now expire, since
// dungbeetle's SQL results backends never dropped a table.
func (c *config) migrationWarnings() []string {
	var out []string
	for _, section := range c.ignored {
		out = append(out, "the ["+section+"] section is ignored: nodes share work through their own cluster, not a broker")
	}
	for _, key := range c.ignoredKeys {
		out = append(out, key+" is ignored: unlogged applies to results databases ([results.*]), where sql-jobber writes tables")
	}
	if ttl := time.Duration(c.app.DefaultJobTTL); len(c.ignored) > 0 && ttl > 0 {
		out = append(out, fmt.Sprintf("app.default_job_ttl = %q drops each job's results table %s after the job finishes, where dungbeetle kept it: "+
			`set default_job_ttl = "0s" to keep results until their job ID runs again or is purged`, ttl, ttl))
	}
	return out
}

package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSampleConfigParses(t *testing.T) {
	c, err := loadConfig("../../config.toml.sample")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.dbs) != 1 || c.dbs[0].Name != "demo" || !c.demoDBs["demo"] {
		t.Errorf("dbs: %+v", c.dbs)
	}
	if len(c.results) != 1 || c.results[0].Name != "demo_results" || c.results[0].ResultsTable != "results_%s" {
		t.Errorf("results: %+v", c.results)
	}
	if c.ledger != "demo_results" || c.app.DefaultQueue != "default" {
		t.Errorf("app: %+v, ledger %q", c.app, c.ledger)
	}
	if c.maxConns != 1000 || c.app.CSVSafe {
		t.Errorf("max_connections %d, csv_safe %v", c.maxConns, c.app.CSVSafe)
	}
	if c.readerCfg.PageSize != 1000 || c.readerCfg.MaxPageSize != 1_000_000 || c.ledgerCfg.GoneRetention != 7*24*time.Hour {
		t.Errorf("results: %+v, ledger: %+v", c.readerCfg, c.ledgerCfg)
	}
}

// TestSampleConfigShowsEveryKey: config.toml.sample documents every key
// the configuration file takes, set or commented out, in its section.
func TestSampleConfigShowsEveryKey(t *testing.T) {
	sample, err := os.ReadFile("../../config.toml.sample")
	if err != nil {
		t.Fatal(err)
	}
	// The keys shown, as "section.key" ([db.demo] and [results.cache]
	// are sections db and results), from lines set or commented out.
	header := regexp.MustCompile(`^#? ?\[(\w+)[.\]]`)
	key := regexp.MustCompile(`^#? ?(?:# )?(\w+) = `)
	shown := map[string]bool{}
	section := ""
	for _, line := range strings.Split(string(sample), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			section = m[1]
		} else if m := key.FindStringSubmatch(line); m != nil {
			shown[section+"."+m[1]] = true
		}
	}
	var keys func(section string, typ reflect.Type)
	keys = func(section string, typ reflect.Type) {
		for f := range typ.Fields() {
			tag := f.Tag.Get("toml")
			switch {
			case f.Anonymous && tag == "":
				keys(section, f.Type)
			case tag == "" || f.Tag.Get("predecessor") == "ignored" || tag == "job_queue" || tag == "machinery":
				// Not a key, or the predecessor's, ignored.
			case section != "" && f.Type.Kind() == reflect.Map:
				// [auth.tokens.<name>]: its keys are shown in
				// section auth.
				keys(section, f.Type.Elem())
			case section == "":
				typ := f.Type
				if typ.Kind() == reflect.Map {
					typ = typ.Elem()
				}
				keys(tag, typ)
			case !shown[section+"."+tag]:
				t.Errorf("config.toml.sample does not show [%s] %s", section, tag)
			}
		}
	}
	keys("", reflect.TypeFor[fileConfig]())
}

const validConfig = `[app]
log_level = "DEBUG"

[db.main]
type = "postgres"
dsn = "postgres://u@localhost/db"

[results.first]
type = "mysql"
dsn = "u@tcp(localhost:3306)/r"

[results.second]
type = "sqlite"
dsn = "r.db"
`

func TestConfigFirstResultsBackendHoldsTheLedger(t *testing.T) {
	c, err := parseConfig("c.toml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.ledger != "first" || c.results[0].Name != "first" || c.results[1].Name != "second" {
		t.Fatalf("ledger %q, results %v %v", c.ledger, c.results[0].Name, c.results[1].Name)
	}
}

func TestConfigErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"missing dsn", `s/dsn = "postgres:\/\/u@localhost\/db"//`, "c.toml:4: db.main.dsn: required"},
		{"unknown type", `s/type = "postgres"/type = "oracle"/`, `c.toml:5: db.main.type: unknown type "oracle": use "postgres", "mysql" or "sqlite"`},
		{"unknown key", `s/log_level = "DEBUG"/log_levl = "DEBUG"/`, "c.toml:2: app.log_levl: unknown key"},
		{"unknown db key", `s/type = "postgres"/type = "postgres"\nmax_conns = 3/`, "c.toml:6: db.main.max_conns: unknown key"},
		{"bad level", `s/"DEBUG"/"LOUD"/`, `c.toml:2: app.log_level: unknown level "LOUD"`},
		{"bad duration", `s/log_level = "DEBUG"/default_job_ttl = "soon"/`, `c.toml:2: app.default_job_ttl: invalid duration "soon"`},
		{"wrong value type", `s/log_level = "DEBUG"/default_queue = 3/`, "c.toml:2: app.default_queue:"},
		{"max_idle over max_active", `s/type = "postgres"/type = "postgres"\nmax_active = 2\nmax_idle = 5/`, "c.toml:7: db.main.max_idle: must be between 0 and max_active (2)"},
		{"results table pattern", `s/type = "sqlite"/type = "sqlite"\nresults_table = "results"/`, `c.toml:14: results.second.results_table: must contain "%s" exactly once`},
		{"unlogged on mysql", `s/type = "mysql"/type = "mysql"\nunlogged = true/`, "c.toml:10: results.first.unlogged: only applies to postgres"},
		{"unknown ledger", `s/log_level = "DEBUG"/ledger = "third"/`, `c.toml:2: app.ledger: no results backend "third" is configured`},
		{"negative gone retention", `s/log_level = "DEBUG"/gone_retention = "-1h"/`, "c.toml:2: app.gone_retention: must not be negative"},
		{"page size", `s/log_level = "DEBUG"/results_page_size = -5/`, "c.toml:2: app.results_page_size: must be at least 1"},
		{"lost runs", `s/log_level = "DEBUG"/lost_runs_max = -1/`, "c.toml:2: app.lost_runs_max: must be at least 1"},
		{"no connections", `s/log_level = "DEBUG"/max_connections = 0/`, "c.toml:2: app.max_connections: must be at least 1"},
		{"negative connections", `s/log_level = "DEBUG"/max_connections = -5/`, "c.toml:2: app.max_connections: must be at least 1"},
		{"page size over the maximum", `s/log_level = "DEBUG"/results_page_size = 50\nresults_max_page_size = 10/`,
			"c.toml:3: app.results_max_page_size: must be at least results_page_size (50)"},
		{"no results", `s/\[results\.\(.*\)\]/[other.\1]/`, "c.toml:8: other.first: unknown key"},
		{"invalid toml", `s/type = "mysql"/type = "mysql/`, "c.toml:9: invalid TOML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(sed(t, validConfig, tc.edit)))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant prefix %s", err, tc.want)
			}
		})
	}
}

func TestOldBrokerSectionsAreAccepted(t *testing.T) {
	c, err := parseConfig("c.toml", []byte(validConfig+`
[job_queue.broker]
type = "redis"
address = "localhost:6379"

[machinery]
broker_address = "redis://127.0.0.1:6379/1"
state_address = "redis://127.0.0.1:6379/1"
`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ignored, []string{"job_queue", "machinery"}) {
		t.Fatalf("sections noted as ignored: %v", c.ignored)
	}
	warnings := c.migrationWarnings()
	if len(warnings) != 2 || !strings.Contains(warnings[0], "[job_queue] section is ignored") || !strings.Contains(warnings[1], "[machinery] section is ignored") {
		t.Fatalf("warnings: %q", warnings)
	}

	// dungbeetle's sample sets default_job_ttl = "60s", and its SQL
	// results backends kept every table.
	c, err = parseConfig("c.toml", []byte(sed(t, validConfig, `s/log_level = "DEBUG"/default_job_ttl = "60s"/`)+"\n[job_queue.broker]\ntype = \"redis\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	warnings = c.migrationWarnings()
	if len(warnings) != 2 || !strings.Contains(warnings[1], `app.default_job_ttl = "1m0s" drops each job's results table 1m0s after the job finishes`) ||
		!strings.Contains(warnings[1], `set default_job_ttl = "0s" to keep results`) {
		t.Fatalf("warnings: %q", warnings)
	}

	// dungbeetle's sample sets unlogged on its source databases too.
	c, err = parseConfig("c.toml", []byte(sed(t, validConfig, `s/\[db\.\(.*\)\]/[db.\1]\nunlogged = true/`)))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.migrationWarnings(); len(w) != 1 || !strings.HasPrefix(w[0], "db.") || !strings.Contains(w[0], ".unlogged is ignored: unlogged applies to results databases") {
		t.Fatalf("warnings: %q", w)
	}

	// Without the old sections, a TTL is this configuration's own choice.
	c, err = parseConfig("c.toml", []byte(sed(t, validConfig, `s/log_level = "DEBUG"/default_job_ttl = "60s"/`)))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.migrationWarnings(); len(w) != 0 {
		t.Fatalf("warnings: %q", w)
	}
}

func TestMissingConfigFile(t *testing.T) {
	_, err := loadConfig("does-not-exist.toml")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.toml") {
		t.Fatalf("error %v", err)
	}
	if _, statErr := os.Stat("does-not-exist.toml"); statErr == nil {
		t.Fatal("the test file exists")
	}
}

// sed applies one "s/old/new/" edit (old a regular expression as sed has
// it: \( \) groups, \. \[ escapes) to s.
func sed(t *testing.T, s, edit string) string {
	t.Helper()
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(edit, "s/"), "/"), "/")
	if len(parts) < 2 {
		t.Fatalf("bad edit %q", edit)
	}
	old, repl := strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1]
	old = strings.ReplaceAll(old, `\/`, "/")
	re := sedRegexp(t, old)
	repl = strings.ReplaceAll(strings.ReplaceAll(repl, `\1`, "${1}"), `\n`, "\n")
	out := re.ReplaceAllString(s, repl)
	if out == s {
		t.Fatalf("edit %q changed nothing", edit)
	}
	return out
}

// TestConfigOfClusterSecretsAndTLS: a secret must be an AES key in base64,
// the TLS files come together and exist; errors name the line and key and
// never quote the secret.
func TestConfigOfClusterSecretsAndTLS(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	cert := filepath.Join(t.TempDir(), "node.crt")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cluster, want string
	}{
		{"not base64", `secret = "not base64 at all!"`, "c.toml:17: cluster.secret: must be base64"},
		{"short", `secret = "c2hvcnQ="`, "c.toml:17: cluster.secret: must be base64 of 16, 24 or 32 bytes, not 5"},
		{"secondary alone", `secondary_secrets = ["` + key + `"]`, "c.toml:17: cluster.secondary_secrets: needs cluster.secret"},
		{"bad secondary", `secret = "` + key + `"` + "\n" + `secondary_secrets = ["` + key + `", "c2hvcnQ="]`,
			"c.toml:18: cluster.secondary_secrets: entry 2: must be base64 of 16, 24 or 32 bytes"},
		{"cert without key", `tls_cert = "` + cert + `"`, "c.toml:17: cluster.tls_cert: tls_cert and tls_key go together"},
		{"ca alone", `tls_ca = "` + cert + `"`, "c.toml:17: cluster.tls_ca: needs tls_cert and tls_key"},
		{"missing file", `tls_cert = "` + cert + `"` + "\n" + `tls_key = "/nonexistent/node.key"`, "c.toml:18: cluster.tls_key: stat /nonexistent/node.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(validConfig+"\n[cluster]\n"+tc.cluster+"\n"))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant prefix %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "c2hvcnQ") || strings.Contains(err.Error(), key) {
				t.Fatalf("the error quotes the secret: %v", err)
			}
		})
	}
	c, err := parseConfig("c.toml", []byte(validConfig+"\n[cluster]\nsecret = \""+key+"\"\nsecondary_secrets = [\"MDEyMzQ1Njc4OWFiY2RlZg==\"]\n"))
	if err != nil || len(c.secrets) != 2 || string(c.secrets[0]) != "0123456789abcdef0123456789abcdef" || len(c.secrets[1]) != 16 {
		t.Fatalf("secrets %q, %v", c.secrets, err)
	}
}

// TestConfigOfTokens: [auth.tokens.*] give the API's tokens; a mistake in
// one names its file, line and key, and never quotes a secret.
func TestConfigOfTokens(t *testing.T) {
	const tokens = `
[auth]
max_waits_per_client = 3

[auth.tokens.app]
secret = "0123456789abcdef-app"
secrets = ["0123456789abcdef-next"]
scopes = ["jobs:submit", "jobs:read"]

[auth.tokens.ops]
secret_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
scopes = ["admin"]
`
	c, err := parseConfig("c.toml", []byte(validConfig+tokens))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.tokens) != 2 || c.tokens[0].Name != "app" || len(c.tokens[0].Secrets) != 2 || c.tokens[1].Name != "ops" ||
		len(c.tokens[1].Secrets) != 1 || c.limits.WaitsPerClient != 3 {
		t.Fatalf("tokens %+v, limits %+v", c.tokens, c.limits)
	}
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"short secret", `s/secret = "0123456789abcdef-app"/secret = "hunter2"/`, "c.toml:20: auth.tokens.app.secret: must be at least 16 characters"},
		{"short rotated secret", `s/"0123456789abcdef-next"/"hunter2"/`, "c.toml:21: auth.tokens.app.secrets: entry 1: must be at least 16 characters"},
		{"bad hash", `s/secret_sha256 = "5e88/secret_sha256 = "zz88/`, "c.toml:25: auth.tokens.ops.secret_sha256: must be 64 hex digits"},
		{"no secret", `s/secret_sha256 = .*//`, "c.toml:24: auth.tokens.ops: no secret: set secret or secret_sha256"},
		{"unknown scope", `s/"jobs:read"/"jobs:write"/`, `c.toml:22: auth.tokens.app.scopes: unknown scope "jobs:write": use jobs:submit, jobs:read, jobs:cancel, results:read, admin`},
		{"no scopes", `s/scopes = \["admin"\]/scopes = []/`, `c.toml:26: auth.tokens.ops.scopes: none: list what the token may do`},
		{"shared secret", `s/secret_sha256 = .*/secret = "0123456789abcdef-app"/`, `c.toml:25: auth.tokens.ops.secret: is a secret of token "app" too; give each token its own`},
		{"bad name", `s/auth.tokens.ops/auth.tokens."o p s"/`, `c.toml:24: auth.tokens.o p s: invalid name`},
		{"negative cap", `s/max_waits_per_client = 3/max_waits_per_client = -3/`, "c.toml:17: auth.max_waits_per_client: must be at least 1"},
		{"unknown key", `s/scopes = \["admin"\]/scope = ["admin"]/`, "c.toml:26: auth.tokens.ops.scope: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(sed(t, validConfig+tokens, tc.edit)))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant prefix %s", err, tc.want)
			}
			for _, secret := range []string{"hunter2", "0123456789abcdef"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error quotes a secret: %v", err)
				}
			}
		})
	}
}

// TestMaxRunningConfig: [db.<name>] max_running caps that database in the
// ledger's configuration; anything but a whole number from 1 up is refused
// naming the file, line and key, and a section that only caps a database
// no other section configures is refused naming it.
func TestMaxRunningConfig(t *testing.T) {
	c, err := parseConfig("c.toml", []byte(sed(t, validConfig, `s/type = "postgres"/type = "postgres"\nmax_running = 3/`)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.ledgerCfg.MaxRunning, map[string]int{"main": 3}) {
		t.Fatalf("caps: %v", c.ledgerCfg.MaxRunning)
	}
	if c, err := parseConfig("c.toml", []byte(validConfig)); err != nil || len(c.ledgerCfg.MaxRunning) != 0 {
		t.Fatalf("no cap: %v, %v", c.ledgerCfg.MaxRunning, err)
	}
	for _, tc := range []struct{ value, want string }{
		{"0", "c.toml:6: db.main.max_running: must be a whole number from 1 to 1000000 (omit it for no cap), got 0"},
		{"-2", "c.toml:6: db.main.max_running: must be a whole number from 1 to 1000000 (omit it for no cap), got -2"},
		{"1000001", "c.toml:6: db.main.max_running: must be a whole number from 1 to 1000000 (omit it for no cap), got 1000001"},
		{"9223372036854775807", "c.toml:6: db.main.max_running: must be a whole number from 1 to 1000000"},
		{"99999999999999999999", "c.toml:6: db.main.max_running:"},
		{"2.5", "c.toml:6: db.main.max_running:"},
		{`"2"`, "c.toml:6: db.main.max_running:"},
		{"true", "c.toml:6: db.main.max_running:"},
		{"[2]", "c.toml:6: db.main.max_running:"},
		{"nan", "c.toml:6: db.main.max_running:"},
	} {
		_, err := parseConfig("c.toml", []byte(sed(t, validConfig, `s/type = "postgres"/type = "postgres"\nmax_running = `+tc.value+`/`)))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("max_running = %s: %v\nwant prefix %s", tc.value, err, tc.want)
		}
	}
	// A cap for a database that nothing else configures.
	_, err = parseConfig("c.toml", []byte(validConfig+"\n[db.reports]\nmax_running = 2\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "c.toml:16: db.reports") {
		t.Fatalf("a cap alone: %v", err)
	}
	// A typo of the key is not a silent no-cap.
	_, err = parseConfig("c.toml", []byte(sed(t, validConfig, `s/type = "postgres"/type = "postgres"\nmax_runing = 3/`)))
	if err == nil || !strings.HasPrefix(err.Error(), "c.toml:6: db.main.max_runing: unknown key") {
		t.Fatalf("misspelt key: %v", err)
	}
}

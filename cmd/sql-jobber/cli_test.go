package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/http/client"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// cliRun is what a client command printed and its exit code.
type cliRun struct {
	stdout, stderr string
	code           int
}

// runClient runs a client command as the binary would, with env as its
// environment.
func runClient(env map[string]string, args ...string) cliRun {
	var out, errb bytes.Buffer
	err := runCLI(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return cliRun{out.String(), errb.String(), exitCode(err, &errb)}
}

// expect fails the test unless the run exited with code and its stdout and
// stderr match the regular expressions given ("" matches anything).
func (r cliRun) expect(t *testing.T, what string, code int, stdout, stderr string) cliRun {
	t.Helper()
	if r.code != code || !regexp.MustCompile(stdout).MatchString(r.stdout) || !regexp.MustCompile(stderr).MatchString(r.stderr) {
		t.Errorf("%s: exit %d (want %d)\nstdout: %q (want %q)\nstderr: %q (want %q)", what, r.code, code, r.stdout, stdout, r.stderr, stderr)
	}
	return r
}

// notMatch fails the test if the run's stdout matches the regular
// expression re.
func (r cliRun) notMatch(t *testing.T, what, re string) {
	t.Helper()
	if regexp.MustCompile(re).MatchString(r.stdout) {
		t.Errorf("%s: stdout matches %q: %q", what, re, r.stdout)
	}
}

// nextCursor is the cursor a command's stderr says to add.
func nextCursor(t *testing.T, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`add --cursor (\S+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no cursor in %q", stderr)
	}
	return m[1]
}

// TestCLI runs every client command against a real server with tokens, as
// a user would: what they print, on which stream, and with which exit code,
// for commands that work and for hostile ones.
func TestCLI(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	// Pages of 7 rows, so that reading all results takes many.
	s := newEnv(t, "[app]\nresults_page_size = 7\n\n"+dbs.toml+authConfigTOML(), withBroken(tasks(t, sqlexec.Postgres))).start()
	alice := map[string]string{urlEnv: s.base, tokenEnv: aliceSecret}
	as := func(env map[string]string, args ...string) cliRun { return runClient(env, args...) }

	t.Run("tasks", func(t *testing.T) {
		as(alice, "tasks").expect(t, "tasks", 0, `(?m)^TASK +QUEUE +ARGS +DBS +RESULTS +RAW +WORKERS\n(.*\n)*entries_of +default +1 +src +res +false +1 *$`, "^$")
		r := as(alice, "tasks", "--json").expect(t, "tasks --json", 0, "", "^$")
		var tasks []client.Task
		if err := json.Unmarshal([]byte(r.stdout), &tasks); err != nil || len(tasks) != 4 {
			t.Errorf("tasks --json: %v, %+v", err, tasks)
		}
	})

	t.Run("submit and wait", func(t *testing.T) {
		as(alice, "job", "submit", "entries_of", "U1", "--job-id", "cli1").expect(t, "submit", 0, "^cli1\n$", "^$")
		// Flags after the arguments; --wait prints the final status.
		as(alice, "job", "submit", "--job-id", "cli2", "entries_of", "U2", "--wait").
			expect(t, "submit --wait", 0, `(?m)^job_id +cli2\nstate +SUCCESS\n(.*\n)*count +150\n`, "^$")
		as(alice, "job", "submit", "broken", "--job-id", "cli3", "--wait").
			expect(t, "a failing job", 1, `(?m)^state +FAILURE$`, `^sql-jobber job submit: job "cli3" ended FAILURE: .*no_such_table`)
		as(alice, "job", "wait", "cli3").expect(t, "wait for a failed job", 1, `(?m)^state +FAILURE$`, "ended FAILURE")
		r := as(alice, "job", "wait", "cli1", "--json").expect(t, "wait --json", 0, "", "^$")
		var j client.Job
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.State != "SUCCESS" || j.Count != 100 || j.ResultsTable == "" {
			t.Errorf("wait --json: %v, %+v", err, j)
		}
		as(alice, "job", "status", "cli2").expect(t, "status", 0, `(?m)^state +SUCCESS\n(.*\n)*results_table +\S+\n`, "^$")
		// JSON arguments, and "--" before one that starts with "-".
		as(alice, "job", "submit", "--json-args", "entries_of", `"U1"`, "--wait").expect(t, "--json-args", 0, `(?m)^count +100$`, "^$")
		as(alice, "job", "submit", "entries_of", "--wait", "--", "-5").expect(t, "an argument after --", 0, `(?m)^state +SUCCESS\n(.*\n)*count +0$`, "^$")
		as(alice, "job", "submit", "entries_of", "-5").expect(t, "an argument like a flag", 2, "^$", "flag provided but not defined: -5")
		as(alice, "job", "submit", "--json-args", "entries_of", "U1").expect(t, "a bad JSON argument", 2, "^$", `argument 1: not a JSON value: "U1"`)
		as(alice, "job", "submit", "--json-args", "entries_of", "[1]").expect(t, "an array argument", 2, "^$", "not a string, number, boolean or null")
		as(alice, "job", "submit", "entries_of").expect(t, "too few task arguments", 4, "^$", "^sql-jobber job submit: 400 Bad Request: .*argument")
		as(alice, "job", "submit", "no_such_task").expect(t, "an unknown task", 4, "^$", "404 Not Found")
		as(alice, "job", "submit").expect(t, "no task", 2, "^$", "TASK is missing")
		as(alice, "job", "submit", "entries_of", "U1", "--job-id", "bad id!").expect(t, "a bad job ID", 4, "^$", "400 Bad Request: job_id")
		as(alice, "job", "submit", "entries_of", "U1", "--retries", "x").expect(t, "a bad --retries", 2, "^$", `invalid value "x" for flag -retries`)
		as(alice, "job", "wait", "cli1", "--timeout", "-1s").expect(t, "a negative timeout", 2, "^$", "--timeout must not be negative")
	})

	t.Run("results", func(t *testing.T) {
		// Every row, in 15 pages of 7, one header, streamed as one CSV.
		r := as(alice, "job", "results", "cli1").expect(t, "results", 0, "^id,user_id,amount\r\n1,U1,3.01\r\n", "^$")
		if lines := strings.Split(strings.TrimSuffix(r.stdout, "\r\n"), "\r\n"); len(lines) != 101 || lines[100] != "100,U1,300.00" {
			t.Errorf("results: %d lines, the last %q", len(lines), lines[len(lines)-1])
		}
		r = as(alice, "job", "results", "cli1", "--format", "ndjson").expect(t, "ndjson", 0, `^\{"id":1,"user_id":"U1","amount":"3.01"\}\n`, "^$")
		if n := strings.Count(r.stdout, "\n"); n != 100 {
			t.Errorf("ndjson: %d lines", n)
		}
		// One page, and the cursor of the next.
		r = as(alice, "job", "results", "cli1", "--order-by", "-id", "--limit", "3").
			expect(t, "a page", 0, "^id,user_id,amount\r\n100,U1,300.00\r\n99,U1,297.99\r\n98,U1,294.98\r\n$", "more rows follow")
		as(alice, "job", "results", "cli1", "--order-by", "-id", "--limit", "2", "--cursor", nextCursor(t, r.stderr)).
			expect(t, "the next page", 0, "^id,user_id,amount\r\n97,U1,291.97\r\n96,U1,288.96\r\n$", "more rows follow")
		as(alice, "job", "results", "cli1", "--filter", "id:gt:97", "--filter", "amount:lte:297.99", "--format", "json").
			expect(t, "filters, JSON", 0, `^\{"status":"success","data":\{"columns":.*"rows":\[\n\[98,"U1","294.98"\],\n\[99,"U1","297.99"\]\n\]\}\}`, "^$")
		as(alice, "job", "results", "cli1", "--format", "json").expect(t, "JSON is a page", 0, `"more":true`, "more rows follow: add --cursor")

		as(alice, "job", "results", "cli1", "--format", "xml").expect(t, "a bad format", 2, "^$", `--format: "xml" is not csv, ndjson or json`)
		as(alice, "job", "results", "cli1", "--limit", "abc").expect(t, "a limit that is not a number", 2, "^$", `invalid value "abc" for flag -limit`)
		as(alice, "job", "results", "cli1", "--limit", "0").expect(t, "a zero limit", 2, "^$", "--limit must be at least 1, got 0")
		as(alice, "job", "results", "cli1", "--limit", "-5").expect(t, "a negative limit", 2, "^$", "--limit must be at least 1, got -5")
		as(alice, "job", "results", "cli1", "--limit", "99999999999").expect(t, "a limit over the server's", 4, "^$", "400 Bad Request: limit:")
		as(alice, "job", "results", "cli1", "--limit", "999999999999999999999").expect(t, "a limit beyond int", 2, "^$", "value out of range")
		as(alice, "job", "results", "cli1", "--filter", "id").expect(t, "a bad filter", 2, "^$", `--filter: "id" is not COLUMN:OP:VALUE`)
		as(alice, "job", "results", "cli1", "--filter", "nope:eq:1").expect(t, "an unknown column", 4, "^$", "400 Bad Request: .*nope")
		as(alice, "job", "results", "cli1", "--order-by", "id\x00").expect(t, "a NUL in order_by", 4, "^$", "400 Bad Request")
		as(alice, "job", "results", "cli3").expect(t, "a failed job's results", 4, "^$", "409 Conflict: .*FAILURE")
	})

	t.Run("hostile IDs and commands", func(t *testing.T) {
		as(alice, "job", "status", "nope").expect(t, "an unknown job", 4, "^$", `^sql-jobber job status: 404 Not Found: .*"nope"\n$`)
		as(alice, "job", "status").expect(t, "no ID", 2, "^$", "^sql-jobber job status: ID is missing\nRun 'sql-jobber job status --help' for usage.\n$")
		as(alice, "job", "status", "").expect(t, "an empty ID", 2, "^$", "ID is empty")
		as(alice, "job", "status", "a", "b").expect(t, "two IDs", 2, "^$", `unexpected argument "b"`)
		as(alice, "job", "status", "a\x00b").expect(t, "an ID with NUL", 4, "^$", `400 Bad Request: jobID`)
		long := strings.Repeat("x", 10<<10)
		r := as(alice, "job", "status", long).expect(t, "a 10 KB ID", 4, "^$", "400 Bad Request: jobID")
		as(alice, "job", "cancel", long+"\x1b[31m").expect(t, "a 10 KB ID with an escape", 4, "^$", "400 Bad Request: jobID")
		if len(r.stderr) > 1024 {
			t.Errorf("the error of a 10 KB ID is %d bytes", len(r.stderr))
		}
		as(alice, "job", "status", long, "extra").expect(t, "a long extra argument", 2, "^$", `unexpected argument "extra"`)
		as(alice, "job", "submit", "entries_of", "U1", "--job-id", "\x1b[2J"+long).expect(t, "a hostile job ID", 4, "^$", "400 Bad Request: job_id")
		as(alice, "job", "frobnicate").expect(t, "an unknown command", 2, "^$", `^sql-jobber job: unknown command "frobnicate"\n\nUsage: sql-jobber job COMMAND`)
		as(alice, "job", long).expect(t, "a long unknown command", 2, "^$", `unknown command "xxxx.*\.\.\. \(10240 bytes\)`)
		as(alice, "job").expect(t, "job alone", 2, "^$", "a command is missing")
		as(alice, "jobs", "--bogus").expect(t, "an unknown flag", 2, "^$", "^sql-jobber jobs: flag provided but not defined: -bogus\nRun 'sql-jobber jobs --help' for usage.\n$")
		as(alice, "queues", "extra").expect(t, "an extra argument", 2, "^$", `unexpected argument "extra"`)
		as(alice, "job", "status", "cli1", "--url").expect(t, "a flag without its value", 2, "^$", "flag needs an argument: -url")
	})

	t.Run("cancel", func(t *testing.T) {
		as(alice, "job", "submit", "slow", "--job-id", "cli-slow").expect(t, "submit slow", 0, "^cli-slow\n$", "^$")
		s.as(aliceSecret).waitState("cli-slow", "STARTED")
		as(alice, "job", "wait", "cli-slow", "--timeout", "300ms").
			expect(t, "a wait that times out", 1, `(?m)^state +STARTED\n(.*\n)*rows_per_second +\d+\n`, `^sql-jobber job wait: job "cli-slow" is still STARTED after 300ms\n$`)
		// Ctrl-C ends Run's context.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errb bytes.Buffer
		if code := exitCode(Run(ctx, []string{"job", "wait", "cli-slow", "--url", s.base, "--token", aliceSecret}, &out, &errb), &errb); code != 130 ||
			errb.String() != "sql-jobber job wait: interrupted\n" {
			t.Errorf("an interrupted wait: exit %d, %q", code, errb.String())
		}
		as(alice, "job", "cancel", "cli-slow").expect(t, "cancel", 0, "^cancelled cli-slow\n$", "^$")
		as(alice, "job", "wait", "cli-slow").expect(t, "wait for a cancelled job", 1, `(?m)^state +CANCELLED$`, "ended CANCELLED")
		as(alice, "job", "cancel", "cli-slow").expect(t, "cancel a finished job", 4, "^$", `409 Conflict: .*\nAdd --purge to delete the job and its results.\n$`)
		as(alice, "job", "cancel", "cli-slow", "--purge", "--json").expect(t, "purge", 0, `"purged": true`, "^$")
		as(alice, "job", "status", "cli-slow").expect(t, "a purged job", 4, "^$", "404 Not Found")
	})

	t.Run("jobs", func(t *testing.T) {
		as(alice, "jobs").expect(t, "jobs", 0, `(?m)^JOB ID +TASK +QUEUE +STATE +ROWS +CREATED \(UTC\) +DURATION +NODE +ERROR\n(.*\n)*cli3 +broken +default +FAILURE +0 .*no_such_table`, "^$")
		r := as(alice, "jobs", "--state", "success", "--task", "entries_of", "--limit", "1").expect(t, "a page of jobs", 0, `(?m)^JOB ID.*\n\S+ +entries_of +default +SUCCESS +0 +.*\n$`, "more jobs follow")
		as(alice, "jobs", "--state", "SUCCESS", "--task", "entries_of", "--limit", "1", "--cursor", nextCursor(t, r.stderr)).
			expect(t, "the next page", 0, `(?m)^\S+ +entries_of +default +SUCCESS +100 `, "more jobs follow")
		r = as(alice, "jobs", "--json", "--state", "FAILURE,CANCELLED").expect(t, "jobs --json", 0, "", "^$")
		var page client.JobPage
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != "cli3" {
			t.Errorf("jobs --json: %v, %+v", err, page)
		}
		as(map[string]string{urlEnv: s.base, tokenEnv: bobSecret}, "jobs").expect(t, "bob's jobs", 0, "^$", "^sql-jobber jobs: no jobs\n$")
		as(alice, "jobs", "--created-after", "yesterday").expect(t, "a bad time", 2, "^$", `--created-after: "yesterday" is not an RFC 3339 time`)
		as(alice, "jobs", "--state", "DONE").expect(t, "an unknown state", 4, "^$", "400 Bad Request: state")
		as(alice, "jobs", "--limit", "0").expect(t, "a zero limit", 2, "^$", "--limit must be at least 1")
		as(alice, "jobs", "--limit", "5000").expect(t, "a limit over 1000", 4, "^$", "400 Bad Request: limit")
		as(alice, "jobs", "--cursor", "garbage").expect(t, "a bad cursor", 4, "^$", "400 Bad Request: cursor")
	})

	t.Run("queues and members", func(t *testing.T) {
		as(alice, "queues").expect(t, "queues", 0, `(?m)^QUEUE +PENDING +RUNNING +SUCCESS 1H +FAILURE 1H +CANCELLED 1H +OLDEST WAIT +WORKERS\ndefault +0 +0 +\d+ +1 +0 +- +1 *\n$`, "^$")
		r := as(alice, "queues", "--json").expect(t, "queues --json", 0, "", "^$")
		var qs []client.Queue
		if err := json.Unmarshal([]byte(r.stdout), &qs); err != nil || len(qs) != 1 || qs[0].FinishedLastHour["FAILURE"] != 1 {
			t.Errorf("queues --json: %v, %+v", err, qs)
		}
		root := map[string]string{urlEnv: s.base, tokenEnv: rootSecret}
		as(root, "members").expect(t, "members", 0, fmt.Sprintf(`(?m)^NAME +STATE +API +ADDRESS +QUEUES +ID\n%s \(this node\) +alive +%s +\S+ +default=10 +\S+\n$`,
			"TestCLI", regexp.QuoteMeta(s.app.addr)), "^$")
		r = as(root, "members", "--json").expect(t, "members --json", 0, "", "^$")
		var ms []client.Member
		if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil || len(ms) != 1 || !ms[0].Self {
			t.Errorf("members --json: %v, %+v", err, ms)
		}
		as(alice, "members").expect(t, "members without admin", 4, "^$", "403 Forbidden: .*admin")
		as(alice, "databases").expect(t, "databases", 0, `(?m)^DB +MAX RUNNING +RUNNING +READY +HELD BACK\nsrc +- +0 +0 +0 *\n$`, "^$")
		r = as(alice, "databases", "--json").expect(t, "databases --json", 0, "", "^$")
		var dbs []client.Database
		if err := json.Unmarshal([]byte(r.stdout), &dbs); err != nil || len(dbs) != 1 || dbs[0].DB != "src" || dbs[0].MaxRunning != nil {
			t.Errorf("databases --json: %v, %+v", err, dbs)
		}
		as(alice, "databases", "src").expect(t, "databases with an argument", 2, "^$", "")
	})

	t.Run("tokens", func(t *testing.T) {
		r := as(map[string]string{urlEnv: s.base}, "tasks", "--token", "wrong-token-0123456789").
			expect(t, "a wrong token", 4, "^$", "^sql-jobber tasks: 401 Unauthorized: .*\nThe server at "+regexp.QuoteMeta(s.base)+" wants a valid API token: --token or \\$SQLJOBBER_TOKEN.\n$")
		if strings.Contains(r.stderr, "wrong-token") {
			t.Errorf("the token is printed: %q", r.stderr)
		}
		as(map[string]string{urlEnv: s.base}, "jobs").expect(t, "no token", 4, "^$", "401 Unauthorized")
		as(map[string]string{urlEnv: s.base, tokenEnv: readerSecret}, "job", "submit", "entries_of", "U1").expect(t, "a token without the scope", 4, "^$", "403 Forbidden: .*jobs:submit")
		// --token wins over the environment's.
		as(map[string]string{urlEnv: s.base, tokenEnv: "wrong-token-0123456789"}, "job", "status", "cli1", "--token", aliceSecret).expect(t, "--token", 0, "SUCCESS", "^$")
		as(alice, "jobs", "--token", "two words").expect(t, "a token with a space", 2, "^$", "^sql-jobber jobs: --token: the token holds a space or control character\n")
		as(map[string]string{urlEnv: s.base, tokenEnv: "a\nb"}, "jobs").expect(t, "a token with a newline", 2, "^$", `\$SQLJOBBER_TOKEN: the token holds`)
		r = as(alice, "jobs", "--help").expect(t, "--help", 0, "Usage: sql-jobber jobs", "^$")
		if strings.Contains(r.stdout, aliceSecret) {
			t.Errorf("--help prints the token of the environment")
		}
	})
	// Last: the jobs these make would change the listings above.
	t.Run("submit's job options", func(t *testing.T) {
		// A job due in the future waits, showing when it is due.
		as(alice, "job", "submit", "entries_of", "U1", "--job-id", "cli-eta", "--eta", "2099-01-02T03:04:05Z").expect(t, "--eta", 0, "^cli-eta\n$", "^$")
		as(alice, "job", "status", "cli-eta").expect(t, "a job due later", 0, `(?m)^state +PENDING\n(.*\n)*eta +2099-01-02T03:04:05Z$`, "^$")
		as(alice, "job", "cancel", "cli-eta").expect(t, "cancel the job due later", 0, "", "^$")
		// --ttl sets when the results expire; --keep keeps them.
		r := as(alice, "job", "submit", "entries_of", "U1", "--ttl", "2h", "--wait", "--json").expect(t, "--ttl", 0, "", "^$")
		var j client.Job
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.ExpiresAt == nil || j.FinishedAt == nil || j.ExpiresAt.Sub(*j.FinishedAt).Round(time.Minute) != 2*time.Hour {
			t.Errorf("--ttl 2h: %v, %+v", err, j)
		}
		as(alice, "job", "submit", "entries_of", "U1", "--keep", "--wait").expect(t, "--keep", 0, `(?m)^state +SUCCESS$`, "^$").
			notMatch(t, "--keep", `(?m)^expires_at`)
		// --max-age answers from an identical job's results; --fresh runs it.
		first := as(alice, "job", "submit", "entries_of", "U2", "--job-id", "cli-src", "--wait").expect(t, "a job to reuse", 0, `(?m)^state +SUCCESS$`, "^$")
		first.notMatch(t, "a first job", `(?m)^reused_from`)
		as(alice, "job", "submit", "entries_of", "U2", "--max-age", "1h", "--wait").expect(t, "--max-age", 0, `(?m)^reused_from +cli-src$`, "^$")
		as(alice, "job", "submit", "entries_of", "U2", "--fresh", "--wait").expect(t, "--fresh", 0, `(?m)^state +SUCCESS$`, "^$").
			notMatch(t, "--fresh", `(?m)^reused_from`)
		// Hostile and contradictory values are refused before anything is sent.
		for _, tc := range []struct {
			args   []string
			stderr string
		}{
			{[]string{"--eta", "tomorrow"}, `--eta must be an RFC 3339 time such as .*: "tomorrow"`},
			{[]string{"--eta", "2099-01-02T03:04:05Z\x00"}, `--eta must be an RFC 3339 time`},
			{[]string{"--ttl", "-1s"}, "--ttl must not be negative"},
			{[]string{"--ttl", "1h", "--keep"}, "--ttl and --keep ask for opposite things"},
			{[]string{"--ttl", "forever"}, `invalid value "forever" for flag -ttl`},
			{[]string{"--max-age", "-1m"}, "--max-age must not be negative"},
			{[]string{"--max-age", "1m", "--fresh"}, "--max-age and --fresh ask for opposite things"},
		} {
			as(alice, append([]string{"job", "submit", "entries_of", "U1", "--job-id", "cli-never"}, tc.args...)...).expect(t, strings.Join(tc.args, " "), 2, "^$", tc.stderr)
		}
		as(alice, "job", "status", "cli-never").expect(t, "a refused submission", 4, "^$", "404 Not Found")
	})
}

// TestCLIWithoutServer: what the client says before it sends anything, and
// when nothing answers; Run switches to it only on its command words.
func TestCLIWithoutServer(t *testing.T) {
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"jobs", "--url", "http://127.0.0.1:1"}, &out, &errb)
	if code := exitCode(err, &errb); code != 3 || out.Len() != 0 ||
		errb.String() != "sql-jobber jobs: cannot reach the server at http://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n" {
		t.Errorf("an unreachable server: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	none := map[string]string{}
	runClient(map[string]string{urlEnv: "127.0.0.1:1"}, "job", "status", "x").
		expect(t, "$SQLJOBBER_URL", 3, "^$", "^sql-jobber job status: cannot reach the server at http://127.0.0.1:1: ")
	r := runClient(none, "tasks", "--url", "http://user:hunter2@127.0.0.1:1/").expect(t, "a URL with a password", 3, "^$", "cannot reach the server at http://user:xxxxx@127.0.0.1:1/")
	if strings.Contains(r.stderr, "hunter2") {
		t.Errorf("the URL's password is printed: %q", r.stderr)
	}
	for _, c := range []struct{ url, msg string }{
		{"ftp://127.0.0.1:1", `--url: "ftp://127.0.0.1:1" is not an http:// or https:// URL`},
		{"http://", `names no host`},
		{"http://127.0.0.1:1/?x=1", "has a query or fragment"},
		{"http://[::1", "--url: not a URL"},
		{"http://127.0.0.1:1/\x00", "--url: not a URL"},
		// A URL that does not parse still has its password masked.
		{"http://user:hunter2@127.0.0.1:port/", `--url: not a URL: "http://user:xxxxx@127.0.0.1:port/"`},
		{"http://user:p@ss:hunter2@[::1/x", `--url: not a URL: "http://user:xxxxx@[::1/x"`},
	} {
		r := runClient(none, "queues", "--url", c.url).expect(t, c.url, 2, "^$", regexp.QuoteMeta(c.msg))
		if strings.Contains(r.stderr, "hunter2") {
			t.Errorf("the URL's password is printed: %q", r.stderr)
		}
	}
	runClient(map[string]string{urlEnv: "gopher://x"}, "queues").expect(t, "a bad $SQLJOBBER_URL", 2, "^$", `\$SQLJOBBER_URL: "gopher://x" is not`)

	// Help on every command, on stdout, exit 0.
	for _, args := range [][]string{
		{"job", "--help"}, {"job", "help"}, {"job", "submit", "--help"}, {"job", "status", "-h"}, {"job", "wait", "--help"},
		{"job", "results", "--help"}, {"job", "cancel", "--help"}, {"jobs", "--help"}, {"queues", "--help"}, {"databases", "--help"}, {"tasks", "--help"}, {"members", "--help"},
	} {
		r := runClient(map[string]string{tokenEnv: "env-secret-0123456789"}, args...).expect(t, strings.Join(args, " "), 0, "^Usage: sql-jobber ", "^$")
		if strings.Contains(r.stdout, "env-secret") {
			t.Errorf("%v prints the token", args)
		}
	}
	runClient(none, "job", "submit", "--help").expect(t, "submit's help", 0, `(?s)Usage: sql-jobber job submit TASK \[ARG...\].*-json-args.*-queue.*-token.*-url.*-wait`, "")

	// The server's command line is as it was: flags first, or no command.
	out.Reset()
	if err := Run(context.Background(), []string{"--config", "/does/not/exist.toml", "jobs"}, &out, &out); err == nil ||
		!strings.Contains(err.Error(), `unexpected argument "jobs"`) && !strings.Contains(err.Error(), "exist") {
		t.Errorf("flags first: %v", err)
	}
	out.Reset()
	if err := Run(context.Background(), []string{"--help"}, &out, &out); exitCode(err, &out) != 0 || !strings.Contains(out.String(), "sql-jobber job --help") {
		t.Errorf("the server's --help does not point to the client: %q", out.String())
	}
}

// TestCLIEscapesWhatAServerSends: a server (or whatever answers at its
// address) cannot send the terminal escape sequences through the client:
// states, IDs and cursors are printed with control characters escaped.
func TestCLIEscapesWhatAServerSends(t *testing.T) {
	const state = `"\u001b[2JSTARTED"`
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/jobs":
			fmt.Fprintf(w, `{"status": "success", "data": {"jobs": [{"job_id": "j", "state": %s}], "next": "c\u001b]0;owned\u0007"}}`, state)
		case r.Method == "POST":
			fmt.Fprint(w, `{"status": "success", "data": {"job_id": "j\u001b[31m", "queue": "q", "workers": 1}}`)
		default:
			fmt.Fprintf(w, `{"status": "success", "data": {"job_id": "j", "state": %s}}`, state)
		}
	}))
	defer srv.Close()
	env := map[string]string{urlEnv: srv.URL}
	for _, args := range [][]string{{"jobs"}, {"job", "wait", "j", "--timeout", "100ms"}, {"job", "status", "j"}, {"job", "submit", "t"}} {
		r := runClient(env, args...)
		if out := r.stdout + r.stderr; strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `\u001b`) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

// TestCLIDefaultURL: without --url or $SQLJOBBER_URL the client talks to
// the server's default address; an address without a scheme is http.
func TestCLIDefaultURL(t *testing.T) {
	for env, want := range map[string]string{"": "http://127.0.0.1:6060", "localhost:7000": "http://localhost:7000", "https://h/sj/": "https://h/sj/"} {
		c := &cli{getenv: func(k string) string { return map[string]string{urlEnv: env}[k] }}
		if err := c.connect(); err != nil || c.base.String() != want {
			t.Errorf("$SQLJOBBER_URL %q: %v, %v", env, c.base, err)
		}
		c.close()
	}
}

func TestSkipFirstRecord(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a,b\r\n1,2\r\n", "1,2\r\n"},
		{"\"x\r\ny\",\"q\"\"\r\n\"\r\n1,2\r\n", "1,2\r\n"},
		{"a,b\r\n", ""},
		{"a\n\"1\n2\"\n", "\"1\n2\"\n"},
	} {
		// Byte by byte and whole: a header may span writes.
		for _, step := range []int{1, len(c.in)} {
			var b bytes.Buffer
			w := &skipFirstRecord{w: &b}
			for i := 0; i < len(c.in); i += step {
				if n, err := w.Write([]byte(c.in[i:min(i+step, len(c.in))])); err != nil || n != min(step, len(c.in)-i) {
					t.Fatalf("%q: write %d, %v", c.in, n, err)
				}
			}
			if b.String() != c.want {
				t.Errorf("%q in steps of %d: %q, want %q", c.in, step, b.String(), c.want)
			}
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, Grüße": "plain text, Grüße",
		"two\nlines\tand\r": `two\nlines\tand\r`,
		"\x1b[31mred\x00":   `\u001b[31mred\u0000`,
		"a\u202eb\u0085c":   `a\u202eb\u0085c`,
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJSONArg(t *testing.T) {
	for _, c := range []struct {
		in   string
		want any
		err  string
	}{
		{`"x"`, "x", ""}, {"12345678901234567890.5", json.Number("12345678901234567890.5"), ""}, {"true", true, ""}, {"null", nil, ""},
		{"x", nil, "not a JSON value"}, {"1 2", nil, "more than one JSON value"}, {`{"a":1}`, nil, "not a string, number"},
		{"", nil, "not a JSON value"}, {`"a`, nil, "not a JSON value"},
	} {
		v, err := jsonArg(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || v != c.want {
			t.Errorf("%q: %#v, %v", c.in, v, err)
		}
	}
}

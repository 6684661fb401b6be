package main

// The command-line client (`sql-jobber job submit ...`, `sql-jobber jobs`,
// ...): one binary both serves and talks to a server. Run switches to it
// only when the first argument is one of the command words (isCLICommand),
// so that the server's flags and behaviour are untouched. It is built on
// http/client, and knows nothing of the server's insides.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/sql-jobber/sql-jobber/http/client"
)

// Exit codes of the client, documented in the README.
const (
	exitOK = 0
	// exitFailed: the job ended other than SUCCESS (or --timeout passed
	// first), or something failed on this side (stdout, an answer that
	// could not be read).
	exitFailed = 1
	// exitUsage: the command line is wrong; nothing was sent.
	exitUsage = 2
	// exitUnreachable: no answer from the server (refused, unknown host,
	// timed out, connection lost).
	exitUnreachable = 3
	// exitRefused: the server answered with an error (400, 401, 403, 404,
	// 409, 410, 429, 503, ...), printed with its message.
	exitRefused = 4
	// exitInterrupted: Ctrl-C (SIGINT or SIGTERM), as shells report it.
	exitInterrupted = 130
)

// Defaults of the client's connection.
const (
	urlEnv     = "SQLJOBBER_URL"
	tokenEnv   = "SQLJOBBER_TOKEN"
	urlDefault = "http://" + serverDefault
)

// isCLICommand reports whether a first argument starts the client.
func isCLICommand(arg string) bool {
	switch arg {
	case "job", "jobs", "queues", "databases", "tasks", "members":
		return true
	}
	return false
}

// exitStatus is the exit code of a client command that failed; the command
// has already said why on stderr.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// runCLI runs a client command; getenv reads the environment
// (SQLJOBBER_URL, SQLJOBBER_TOKEN).
func runCLI(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	defer c.close()
	if code := c.run(ctx, args); code != exitOK {
		return exitStatus(code)
	}
	return nil
}

// cli is one run of a client command.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// name is the command, "sql-jobber job submit", for messages.
	name string
	// The flags every command takes.
	url, token string
	json       bool
	base       *url.URL
	api        *client.Client
	transport  *nethttp.Transport
}

const jobUsage = `Usage: sql-jobber job COMMAND [flags]

Commands:
  submit TASK [ARG...]   queue a job of TASK; print its ID (with --wait, its final status)
  status ID              show a job's status
  wait ID                wait until a job has finished and show its status
  results ID             stream a job's results to stdout (CSV, NDJSON or JSON)
  cancel ID              cancel an unfinished job (--purge: delete it and its results)

Run 'sql-jobber job COMMAND --help' for a command's flags.
`

func (c *cli) run(ctx context.Context, args []string) int {
	cmd, rest := args[0], args[1:]
	if cmd != "job" {
		c.name = "sql-jobber " + cmd
		switch cmd {
		case "jobs":
			return c.jobs(ctx, rest)
		case "queues":
			return c.queues(ctx, rest)
		case "databases":
			return c.databases(ctx, rest)
		case "tasks":
			return c.tasks(ctx, rest)
		default:
			return c.members(ctx, rest)
		}
	}
	if len(rest) == 0 {
		fmt.Fprint(c.stderr, "sql-jobber job: a command is missing\n\n"+jobUsage)
		return exitUsage
	}
	sub := rest[0]
	c.name = "sql-jobber job " + sub
	switch sub {
	case "submit":
		return c.submit(ctx, rest[1:])
	case "status":
		return c.status(ctx, rest[1:])
	case "wait":
		return c.wait(ctx, rest[1:])
	case "results":
		return c.results(ctx, rest[1:])
	case "cancel":
		return c.cancel(ctx, rest[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, jobUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "sql-jobber job: unknown command %s\n\n%s", quoteArg(sub), jobUsage)
	return exitUsage
}

// flags returns the flag set of a command, with the flags every command
// takes. usage is its synopsis and what it does.
func (c *cli) flags(synopsis, about string) *flagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by parse
	// The defaults are resolved after parsing, so that --help never
	// prints the token from the environment.
	fs.StringVar(&c.url, "url", "", "the server's address (default: $"+urlEnv+", else "+urlDefault+")")
	fs.StringVar(&c.token, "token", "", "API token secret (default: $"+tokenEnv+")")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts instead of a table")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s\n\n%s\n\nFlags:\n", c.name, synopsis, about)
		fs.PrintDefaults()
	}
	return &flagSet{fs}
}

// flagSet is a command's flags.
type flagSet struct{ *flag.FlagSet }

// isSet reports whether the command line gave flag name.
func (fs *flagSet) isSet(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// repeated is a flag that may be given more than once, each value whole
// (listFlag splits at commas, which a filter's value may hold).
type repeated struct{ values *[]string }

func (r *repeated) String() string {
	if r.values == nil {
		return ""
	}
	return strings.Join(*r.values, " ")
}

func (r *repeated) Set(v string) error {
	*r.values = append(*r.values, v)
	return nil
}

// parse parses args with fs, flags and arguments in any order ("--" ends
// the flags: arguments after it may start with "-"), checks that the
// arguments named by want are there, and no more unless more is true, and
// sets up the client. When it returns ok false the command ends with code.
func (c *cli) parse(fs *flagSet, args []string, want []string, more bool) (positional []string, code int, ok bool) {
	var flags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that takes a value takes the next argument, as the flag
		// package would.
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	err := fs.Parse(flags)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(c.stdout)
		fs.Usage()
		return nil, exitOK, false
	case err != nil:
		return nil, c.usageError("%v", sanitize(err.Error())), false
	case len(positional) < len(want):
		return nil, c.usageError("%s is missing", want[len(positional)]), false
	case !more && len(positional) > len(want):
		return nil, c.usageError("unexpected argument %s", quoteArg(positional[len(want)])), false
	}
	for i, name := range want {
		if positional[i] == "" {
			return nil, c.usageError("%s is empty", name), false
		}
	}
	if err := c.connect(); err != nil {
		return nil, c.usageError("%v", err), false
	}
	return positional, exitOK, true
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// usageError says what is wrong with the command line, and returns
// exitUsage.
func (c *cli) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\nRun '%s --help' for usage.\n", c.name, fmt.Sprintf(format, args...), c.name)
	return exitUsage
}

// connect makes the API client of --url and --token, or of the
// environment.
func (c *cli) connect() error {
	raw := cmp.Or(c.url, c.getenv(urlEnv), urlDefault)
	from := "--url"
	if c.url == "" {
		from = "$" + urlEnv
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw // "localhost:6060"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%s: not a URL: %s", from, quoteArg(redactRaw(raw)))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s: %s is not an http:// or https:// URL", from, quoteArg(u.Redacted()))
	case u.Host == "":
		return fmt.Errorf("%s: %s names no host", from, quoteArg(u.Redacted()))
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%s: %s has a query or fragment; give the server's address alone", from, quoteArg(u.Redacted()))
	}
	token, tokenFrom := c.token, "--token"
	if token == "" {
		token, tokenFrom = c.getenv(tokenEnv), "$"+tokenEnv
	}
	// Never quoted back: it is a secret.
	for _, r := range token {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("%s: the token holds a space or control character", tokenFrom)
		}
	}
	c.base = u
	c.transport = nethttp.DefaultTransport.(*nethttp.Transport).Clone()
	c.api = client.New(u.String(), &nethttp.Client{Transport: c.transport})
	if token != "" {
		c.api = c.api.WithToken(token)
	}
	return nil
}

// redactRaw masks the password in raw, a URL that url.Parse refused (so
// that url.URL.Redacted cannot), as Redacted would: the user info is what
// stands before the authority's last '@'.
func redactRaw(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(authority[:at], ":")
	if !hasPassword {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

func (c *cli) close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// fail says why a call to the server failed, and returns the exit code.
func (c *cli) fail(ctx context.Context, err error) int {
	var apiErr *client.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &apiErr):
		fmt.Fprintf(c.stderr, "%s: %d %s: %s\n", c.name, apiErr.StatusCode, nethttp.StatusText(apiErr.StatusCode), sanitize(apiErr.Message))
		switch apiErr.StatusCode {
		case nethttp.StatusUnauthorized:
			fmt.Fprintf(c.stderr, "The server at %s wants a valid API token: --token or $%s.\n", c.base.Redacted(), tokenEnv)
		case nethttp.StatusTooManyRequests, nethttp.StatusServiceUnavailable:
			if apiErr.RetryAfter > 0 {
				fmt.Fprintf(c.stderr, "Try again in %s.\n", apiErr.RetryAfter)
			} else {
				fmt.Fprintln(c.stderr, "Try again later.")
			}
		}
		return exitRefused
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fmt.Fprintf(c.stderr, "%s: interrupted\n", c.name)
		return exitInterrupted
	case errors.As(err, &urlErr):
		fmt.Fprintf(c.stderr, "%s: cannot reach the server at %s: %s\n", c.name, c.base.Redacted(), sanitize(urlErr.Err.Error()))
		return exitUnreachable
	}
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, sanitize(err.Error()))
	return exitFailed
}

// sanitize makes s safe to print on a terminal: control characters (a
// server's message, a job's error, a column name may hold any) are escaped,
// so that they can neither break a table's lines nor send the terminal
// escape sequences.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// quoteArg quotes a command-line argument for a message: escaped, and
// clipped to 64 bytes (an argument may be any length).
func quoteArg(s string) string {
	const most = 64
	if len(s) <= most {
		return fmt.Sprintf("%q", s)
	}
	cut := most
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// formatTime prints a time for a table: UTC, to the second.
func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// clip shortens s to n runes for a table cell.
func clip(s string, n int) string {
	s = sanitize(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

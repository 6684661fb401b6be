package main

// What the process prints: its log, and the welcome that says where its API
// is and how to try it.

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// printWelcome says where the API is and how to try it, with a task whose
// queue a member works (one that takes no arguments if there is one), so
// that the example job runs.
func printWelcome(w io.Writer, addr string, tasks []*sqlexec.Task, workers func(queue string) int, tokens bool) {
	base := "http://" + addr
	fmt.Fprintf(w, "sql-jobber is listening on %s\n", base)
	var t *sqlexec.Task
	for _, c := range tasks {
		if workers(c.Queue) == 0 {
			continue
		}
		if t == nil || t.NumArgs != 0 && c.NumArgs == 0 {
			t = c
		}
	}
	if t == nil {
		return
	}
	args := "[]"
	if t.NumArgs > 0 {
		args = "[" + strings.TrimSuffix(strings.Repeat(`"value", `, t.NumArgs), ", ") + "]"
	}
	auth := ""
	if tokens {
		auth = ` -H "Authorization: Bearer $SQLJOBBER_TOKEN"`
		fmt.Fprintln(w, "The API needs a token: export SQLJOBBER_TOKEN=<a secret of [auth.tokens.*]>")
	}
	fmt.Fprintf(w, "Try:\n  curl -s%s %s/tasks/%s/jobs -H 'Content-Type: application/json' -d '{\"job_id\": \"hello\", \"args\": %s}'\n  curl -s%s %s/jobs/hello\n",
		auth, base, t.Name, args, auth, base)
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

// Command sql-jobber is a distributed job server for heavy SQL read jobs: it
// queues named SQL tasks as jobs, runs them against source databases with
// bounded concurrency, and writes each job's results into a table of its own
// in a results database.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(Run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

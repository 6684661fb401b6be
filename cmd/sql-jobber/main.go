// Command sql-jobber is a distributed job server for heavy SQL read jobs: it
// queues named SQL tasks as jobs, runs them against source databases with
// bounded concurrency, and writes each job's results into a table of its own
// in a results database.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal drains; a second one exits at once.
		<-ctx.Done()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		fmt.Fprintln(os.Stderr, "sql-jobber: second signal: exiting without draining")
		os.Exit(1)
	}()
	os.Exit(exitCode(Run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

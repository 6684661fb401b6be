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
	// The first signal drains; a second one exits at once. signals hears
	// both from the start: a channel registered only once the drain began
	// would miss a second signal sent before that (the one registered by
	// NotifyContext takes it, and keeps the default action away).
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-signals // the first, which ends ctx too
		<-signals
		fmt.Fprintln(os.Stderr, "sql-jobber: second signal: exiting without draining")
		os.Exit(1)
	}()
	os.Exit(exitCode(Run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

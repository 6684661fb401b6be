// Command sqljobber-bench measures sql-jobber against the raw database floor,
// in one run on one machine: a large job's rows per second next to the
// fastest way to copy the same rows with the drivers alone, many tiny jobs
// next to creating and filling a one-row table by hand, and the server's
// memory while it works. It prints a table and writes the same as JSON.
//
// It needs the local PostgreSQL and MySQL/MariaDB (see --pg and --mysql) and
// creates its data once, in a schema and a database named sqljobber_bench.
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
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "sqljobber-bench: %v\n", err)
		os.Exit(1)
	}
}

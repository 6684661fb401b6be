// Package clustertest helps the tests of packages that start cluster nodes.
package clustertest

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/goleak"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// ignored are goroutines protoactor-go leaves behind by design.
var ignored = []goleak.Option{
	// protoactor starts throttle goroutines (its gossiper's, its gossip
	// actor's, its dead-letter logger's) that nothing stops: a few per
	// node started, never more.
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	// After a cluster test, protoactor keeps redialling stopped members
	// for a few seconds before it gives up.
	goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/remote.(*endpointWriter).initialize"),
	// ...and now and then one of the grpc connections or streams it
	// opened to a member that has stopped outlives its endpoint writer
	// (grpc goroutines of protoactor's, not ours: this project opens no
	// grpc connection).
	goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransport"),
	goleak.IgnoreTopFunction("google.golang.org/grpc.newClientStreamWithParams.func4"),
}

// CheckLeaks is for TestMain: given m.Run's exit code, it fails a passing
// run (code 1, the leak on stderr) if goroutines other than protoactor's
// are left. Connections to members stopped at the end of a test take up to
// a dial timeout to close, so it looks again for a while before calling a
// goroutine leaked.
func CheckLeaks(code int) int {
	if code != 0 {
		return code
	}
	err := testwait.Until(10*time.Second, "the tests' goroutines to end", func() (bool, string) {
		if err := goleak.Find(ignored...); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
		return 1
	}
	return 0
}

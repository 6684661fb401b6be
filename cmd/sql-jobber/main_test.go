package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// runMainEnv makes the test binary run sql-jobber's main instead of the
// tests: the multi-process tests start real sql-jobber processes this way,
// without building anything.
const runMainEnv = "SQLJOBBER_TEST_RUN_MAIN"

// leakOptions pass over goroutines that protoactor leaves behind by design.
var leakOptions = []goleak.Option{
	// protoactor starts throttle goroutines (its gossiper's, its gossip
	// actor's, its dead-letter logger's) that nothing stops: a few per
	// node started, never more.
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	// After a cluster test, protoactor keeps redialling stopped members
	// for a few seconds before it gives up.
	goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/remote.(*endpointWriter).initialize"),
	// ...and now and then one of the grpc connections it
	// opened to a member that has stopped outlives its
	// endpoint writer (grpc goroutines of protoactor's,
	// not ours: this project opens no grpc connection).
	goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransport"),
	goleak.IgnoreTopFunction("google.golang.org/grpc.newClientStreamWithParams.func4"),
}

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	code := m.Run()
	if code == 0 {
		// Connections to members stopped at the end of a cluster test
		// take up to a dial timeout to close: look again for a while
		// before calling a goroutine leaked.
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = goleak.Find(leakOptions...); err == nil {
				break
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

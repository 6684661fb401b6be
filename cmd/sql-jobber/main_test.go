package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// runMainEnv makes the test binary run sql-jobber's main instead of the
// tests: the multi-process tests start real sql-jobber processes this way,
// without building anything.
const runMainEnv = "SQLJOBBER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m,
		// protoactor's gossiper starts a throttle goroutine per member
		// that nothing stops; one per node started, never more.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	)
}

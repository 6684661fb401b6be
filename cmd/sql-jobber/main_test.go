package main

import (
	"os"
	"testing"

	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
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
	os.Exit(clustertest.CheckLeaks(m.Run()))
}

package compat_test

import (
	"fmt"
	"net/http"
	"time"

	// A program written for dungbeetle imported
	// github.com/zerodha/dungbeetle/v2/client and .../v2/models; those two
	// lines are all that change.
	client "github.com/sql-jobber/sql-jobber/http/client/compat"
	"github.com/sql-jobber/sql-jobber/http/client/compat/models"
)

// Example is dungbeetle client code, unchanged but for its imports: post
// a job, poll its status until it finishes.
func Example() {
	rootURL, stop := exampleNode() // e.g. "http://127.0.0.1:6060"
	defer stop()

	c := client.New(&client.Opt{RootURL: rootURL, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	resp, err := c.PostJob(models.JobReq{TaskName: "entries_of", JobID: "report-1", Args: []string{"USER1"}})
	if err != nil {
		fmt.Println("post:", err)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.GetJobStatus(resp.JobID)
		if err != nil {
			fmt.Println("status:", err)
			return
		}
		if st.State == "SUCCESS" || st.State == "FAILURE" {
			fmt.Println(st.State, st.Count, "rows")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println("timed out")
	// Output: SUCCESS 2 rows
}

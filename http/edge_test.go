package http

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// errReached is what the service answers when a request that should have
// been refused reaches it (500).
var errReached = errors.New("the service was reached")

// send makes a request to base and returns its status, headers and
// decoded error envelope (Status "" when the body is not one).
func send(t *testing.T, method, url, contentType, body string) (int, nethttp.Header, envelope) {
	t.Helper()
	req, err := nethttp.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	_ = json.Unmarshal(b, &env)
	return res.StatusCode, res.Header, env
}

// TestPathIDsAreCheckedFirst: an ID, task or queue name in a path that no
// submission could have made is 400 naming the path variable, before the
// service is asked; no error quotes more than a short prefix of what the
// client sent.
func TestPathIDsAreCheckedFirst(t *testing.T) {
	srv := httptest.NewServer(NewServer(failing{errReached}, Config{}).Handler())
	defer srv.Close()
	long := "abcdefgh" + strings.Repeat("x", 900<<10)
	for _, tc := range []struct {
		method, path string
		want         string // the start of the message
	}{
		{"DELETE", "/jobs/" + long, "jobID: must be 1 to 255 characters"},
		{"GET", "/jobs/" + long + "?wait=1s", "jobID: must be 1 to 255 characters"},
		{"GET", "/jobs/" + long + "/results", "jobID: must be 1 to 255 characters"},
		{"GET", "/jobs/a%00b", "jobID: must be"},
		{"GET", "/jobs/a%C3%28", "jobID: must be"},
		{"GET", "/groups/" + long, "groupID: must be 1 to 255 characters"},
		{"DELETE", "/groups/" + long + "?purge=true", "groupID: must be"},
		{"GET", "/jobs/queue/" + long, "queue: must be 1 to 128"},
		{"GET", "/jobs/queue/a%00", "queue: must be 1 to 128"},
		{"POST", "/tasks/" + long + "/jobs", "taskName: must be 1 to 128"},
		{"GET", "/nope/" + long, `no such endpoint: GET /nope/abcdefghxx`},
		{"GET", "/jobs/x/results?format=" + long, `format: "abcdefghxx`},
		{"GET", "/jobs/x?wait=" + long, `wait: "abcdefghxx`},
		{"DELETE", "/jobs/x?purge=" + long, `purge: "abcdefghxx`},
	} {
		status, _, env := send(t, tc.method, srv.URL+tc.path, "application/json", "")
		name := tc.method + " " + clip(tc.path)
		want := 400
		if strings.HasPrefix(tc.path, "/nope") {
			want = 404
		}
		if status != want || env.Status != "error" || !strings.HasPrefix(env.Message, tc.want) {
			t.Errorf("%s: %d %q, want %d %q", name, status, clip(env.Message), want, tc.want)
		}
		if len(env.Message) > 200 || strings.Count(env.Message, "x") > quotePrefix {
			t.Errorf("%s: the message quotes too much (%d bytes): %s", name, len(env.Message), clip(env.Message))
		}
	}

	// A task name in a group's body is held to the same rule.
	body := `{"jobs": [{"task": "` + strings.Repeat("t", 100<<10) + `"}]}`
	if status, _, env := send(t, "POST", srv.URL+"/groups", "application/json", body); status != 400 || !strings.HasPrefix(env.Message, "jobs[0].task: must be") {
		t.Errorf("long task in a group: %d %q", status, clip(env.Message))
	}
}

// TestErrorMessagesAreBounded: a message that quotes a request in full
// (some errors come from packages that do) is cut to about 1 KiB.
func TestErrorMessagesAreBounded(t *testing.T) {
	long := badRequest{msg: "no column " + strings.Repeat("é", 10_000)}
	srv := httptest.NewServer(NewServer(failing{long}, Config{}).Handler())
	defer srv.Close()
	status, _, env := send(t, "GET", srv.URL+"/jobs/x", "", "")
	if status != 400 || len(env.Message) > maxMessage || !strings.HasPrefix(env.Message, "no column éé") || !strings.HasSuffix(env.Message, "é...") {
		t.Fatalf("%d, a message of %d bytes: %s", status, len(env.Message), clip(env.Message))
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, quote, clip string }{
		{"abc", `"abc"`, "abc"},
		{"a\x00b", `"a\x00b"`, "a\x00b"},
		{strings.Repeat("a", 64), `"` + strings.Repeat("a", 64) + `"`, strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), `"` + strings.Repeat("a", 64) + `"... (65 bytes)`, strings.Repeat("a", 64) + "..."},
		// A cut falls between characters, not inside one.
		{strings.Repeat("a", 63) + "éé", `"` + strings.Repeat("a", 63) + `"... (67 bytes)`, strings.Repeat("a", 63) + "..."},
		{strings.Repeat("\xff", 70), `"` + strings.Repeat(`\xff`, 64) + `"... (70 bytes)`, strings.Repeat("\xff", 64) + "..."},
	} {
		if got := quote(tc.in); got != tc.quote {
			t.Errorf("quote(%q) = %s, want %s", tc.in, got, tc.quote)
		}
		if got := clip(tc.in); got != tc.clip {
			t.Errorf("clip(%q) = %q, want %q", tc.in, got, tc.clip)
		}
	}
}

// TestResultsRefuseNULAndInvalidUTF8: a NUL byte or invalid UTF-8 in a
// results parameter is 400 naming it; on PostgreSQL it used to reach the
// database and fail as 500.
func TestResultsRefuseNULAndInvalidUTF8(t *testing.T) {
	env := resultsinktest.NewEnv(t, sqlexec.Postgres, resultsink.ReaderConfig{})
	cols := []sqlexec.Column{{Name: "id", Type: sqlexec.TypeInt64}, {Name: "name", Type: sqlexec.TypeText}}
	env.Succeed("t", &resultsinktest.FuncRows{Cols: cols, N: 3, Row: func(i int) []any { return []any{int64(i), "n"} }})
	base := resultsServer(t, env)
	for _, tc := range []struct{ query, want string }{
		{"filter[name][eq]=a%00b", "filter[name][eq]: "},
		{"filter[name][eq]=%ff", "filter[name][eq]: "},
		{"filter[name][gt]=%c3%28", "filter[name][gt]: "},
		{"filter[na%00me][eq]=a", `parameter "filter[na\x00me][eq]": its name`},
		{"order_by=na%00me", "order_by: "},
		{"order_by=-%ff", "order_by: "},
		{"cursor=%00", "cursor: "},
		{"cursor=abc%ff", "cursor: "},
	} {
		status, _, body := get(t, base+"/jobs/t/results?"+tc.query)
		var env envelope
		if err := json.Unmarshal(body, &env); err != nil || status != 400 || !strings.HasPrefix(env.Message, tc.want) {
			t.Errorf("%s: %d %s, want 400 %q", tc.query, status, body, tc.want)
		}
	}
}

// TestIntegerFieldsAreBounded: a group's concurrency beyond a million
// (2147483648 was truncated to 32 bits) and an integer too large for its
// field are 400 naming the field.
func TestIntegerFieldsAreBounded(t *testing.T) {
	srv := httptest.NewServer(NewServer(failing{errReached}, Config{}).Handler())
	defer srv.Close()
	for _, tc := range []struct{ path, body, want string }{
		{"/groups", `{"concurrency": 2147483648, "jobs": [{"task": "t"}]}`, "concurrency: must be between 1 and 1000000"},
		{"/groups", `{"concurrency": 1000001, "jobs": [{"task": "t"}]}`, "concurrency: must be between 1 and 1000000"},
		{"/groups", `{"concurrency": 0, "jobs": [{"task": "t"}]}`, "concurrency: must be between 1 and 1000000"},
		{"/groups", `{"concurrency": 9223372036854775808, "jobs": [{"task": "t"}]}`, "concurrency: 9223372036854775808 is out of range"},
		{"/groups", `{"concurrency": -99999999999999999999}`, "concurrency: -99999999999999999999 is out of range"},
		{"/groups", `{"jobs": [{"task": "t", "retries": 18446744073709551616}]}`, "jobs.retries: 18446744073709551616 is out of range"},
		{"/tasks/t/jobs", `{"ttl": 9223372036854775808}`, "ttl: 9223372036854775808 is out of range"},
		{"/tasks/t/jobs", `{"ttl": 1` + strings.Repeat("0", 5000) + `}`, `ttl: 1000000000000000000000000000000000000000000000000000000000000000... is out of range`},
		{"/tasks/t/jobs", `{"retries": 1e3}`, "retries: must be an integer, not number 1e3"},
	} {
		status, _, env := send(t, "POST", srv.URL+tc.path, "application/json", tc.body)
		if status != 400 || env.Message != tc.want {
			t.Errorf("%s %s: %d %q, want 400 %q", tc.path, clip(tc.body), status, env.Message, tc.want)
		}
	}
}

// TestPostNeedsJSON: a POST whose body is not declared JSON (a browser's
// form post, a bodiless fetch) is 415 and submits nothing.
func TestPostNeedsJSON(t *testing.T) {
	srv := httptest.NewServer(NewServer(failing{errReached}, Config{}).Handler())
	defer srv.Close()
	for _, tc := range []struct {
		path, contentType, body string
		status                  int
	}{
		{"/tasks/t/jobs", "application/x-www-form-urlencoded", `{"job_id": "a"}`, 415},
		{"/tasks/t/jobs", "text/plain", `{"job_id": "a"}`, 415},
		{"/tasks/t/jobs", "multipart/form-data; boundary=x", `{}`, 415},
		{"/tasks/t/jobs", "", `{"job_id": "a"}`, 415},
		{"/tasks/t/jobs", "", ``, 415},
		{"/tasks/t/jobs", "application/jsonx", `{}`, 415},
		{"/tasks/t/jobs", "application/json; charset=latin1", `{}`, 415},
		{"/groups", "text/plain", `{"jobs": [{"task": "t"}]}`, 415},
		// JSON, with or without parameters, reaches the service.
		{"/tasks/t/jobs", "application/json", `{}`, 500},
		{"/tasks/t/jobs", "Application/JSON; charset=UTF-8", `{}`, 500},
		{"/groups", "application/json;charset=utf-8", `{"jobs": [{"task": "t"}]}`, 500},
	} {
		status, _, env := send(t, "POST", srv.URL+tc.path, tc.contentType, tc.body)
		if status != tc.status || tc.status == 415 && !strings.HasPrefix(env.Message, "Content-Type must be application/json") {
			t.Errorf("%s %q: %d %q, want %d", tc.path, tc.contentType, status, env.Message, tc.status)
		}
	}
}

// TestDuplicateAndCaseVariantKeys: a key given twice, keys that differ only
// in case, or a field's name in another case is 400 naming the key, at
// every level of a body; encoding/json alone let the last one win and
// read JOB_ID as job_id.
func TestDuplicateAndCaseVariantKeys(t *testing.T) {
	srv := httptest.NewServer(NewServer(failing{errReached}, Config{}).Handler())
	defer srv.Close()
	for _, tc := range []struct{ path, body, want string }{
		{"/tasks/t/jobs", `{"job_id": "a", "job_id": "b"}`, "job_id: given twice"},
		{"/tasks/t/jobs", `{"job_id": "a", "JOB_ID": "b"}`, `JOB_ID: given besides "job_id", which differs only in case`},
		{"/tasks/t/jobs", `{"JOB_ID": "b"}`, `JOB_ID: unknown field; keys are case-sensitive: write "job_id"`},
		{"/tasks/t/jobs", `{"Args": ["x"]}`, `Args: unknown field; keys are case-sensitive: write "args"`},
		// U+017F folds to s, as encoding/json matches it.
		{"/tasks/t/jobs", `{"queue": "a", "queue": "b"}`, "queue: given twice"},
		{"/tasks/t/jobs", `{"retrieſ": 1}`, `retrieſ: unknown field; keys are case-sensitive: write "retries"`},
		{"/groups", `{"group_id": "g", "Group_Id": "h", "jobs": []}`, `Group_Id: given besides "group_id"`},
		{"/groups", `{"jobs": [{"task": "t"}, {"task": "t", "TASK": "u"}]}`, `jobs[1].TASK: given besides "task"`},
		{"/groups", `{"jobs": [{"task": "t", "Job_ID": "x"}]}`, `jobs[0].Job_ID: unknown field; keys are case-sensitive: write "job_id"`},
		{"/groups", `{"jobs": [{"task": "t", "args": [{"a": 1, "a": 2}]}]}`, `jobs[0].args[0].a: given twice`},
	} {
		status, _, env := send(t, "POST", srv.URL+tc.path, "application/json", tc.body)
		if status != 400 || !strings.HasPrefix(env.Message, tc.want) {
			t.Errorf("%s %s: %d %q, want 400 %q", tc.path, tc.body, status, env.Message, tc.want)
		}
	}
	// Distinct keys, nested objects and arrays pass through to the service.
	body := `{"group_id": "g", "concurrency": 2, "jobs": [{"task": "t", "job_id": "a", "args": ["x", 1]}, {"task": "t", "job_id": "b"}]}`
	if status, _, env := send(t, "POST", srv.URL+"/groups", "application/json", body); status != 500 {
		t.Errorf("a good group: %d %q", status, env.Message)
	}
}

// TestAllowAndNosniff: a 405 says in Allow which methods the path takes;
// every answer, error or not, carries X-Content-Type-Options: nosniff.
func TestAllowAndNosniff(t *testing.T) {
	srv := httptest.NewServer(NewServer(failing{errReached}, Config{}).Handler())
	defer srv.Close()
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/jobs/x", "DELETE, GET"},
		{"POST", "/jobs/x/results", "GET"},
		{"DELETE", "/jobs/queue/q", "GET"},
		{"GET", "/tasks/t/jobs", "POST"},
		{"DELETE", "/tasks", "GET"},
		{"PATCH", "/groups", "POST"},
		{"POST", "/groups/g", "DELETE, GET"},
		{"POST", "/healthz", "GET"},
	} {
		status, h, env := send(t, tc.method, srv.URL+tc.path, "application/json", "")
		if status != 405 || h.Get("Allow") != tc.allow || !strings.HasSuffix(env.Message, "use "+tc.allow) {
			t.Errorf("%s %s: %d Allow %q %q, want 405 Allow %q", tc.method, tc.path, status, h.Get("Allow"), env.Message, tc.allow)
		}
	}
	for _, path := range []string{"/tasks", "/healthz", "/nope", "/jobs/x", "/jobs/" + strings.Repeat("x", 300)} {
		if _, h, _ := send(t, "GET", srv.URL+path, "", ""); h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", clip(path), h.Get("X-Content-Type-Options"))
		}
	}
	ops := httptest.NewServer(NewOps(nil, nil).Handler(Config{}))
	defer ops.Close()
	if status, h, _ := send(t, "GET", ops.URL+"/healthz", "", ""); status != 200 || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("ops /healthz: %d %v", status, h)
	}
}

// TestCSVSafe: with csv_safe (the server's setting or the request's), CSV
// cells that start as a formula would (=, +, -, @, tab, CR) begin with a
// "'", numbers aside; without it, values are written as they are.
func TestCSVSafe(t *testing.T) {
	env := resultsinktest.NewEnv(t, sqlexec.SQLite, resultsink.ReaderConfig{})
	cols := []sqlexec.Column{{Name: "n", Type: sqlexec.TypeInt64}, {Name: "=s", Type: sqlexec.TypeText}}
	vals := []any{"=1+1", "+x", "-y", "@z", "\tt", "\rr", "ok", "a=b"}
	env.Succeed("t", &resultsinktest.FuncRows{Cols: cols, N: len(vals), Row: func(i int) []any { return []any{int64(-i), vals[i]} }})
	const (
		plain = "n,=s\r\n0,=1+1\r\n-1,+x\r\n-2,-y\r\n-3,@z\r\n-4,\"\tt\"\r\n-5,\"\rr\"\r\n-6,ok\r\n-7,a=b\r\n"
		safe  = "n,'=s\r\n0,'=1+1\r\n-1,'+x\r\n-2,'-y\r\n-3,'@z\r\n-4,'\tt\r\n-5,\"'\rr\"\r\n-6,ok\r\n-7,a=b\r\n"
	)
	for _, tc := range []struct {
		configured bool
		query      string
		status     int
		want       string
	}{
		{false, "format=csv", 200, plain},
		{false, "format=csv&csv_safe=false", 200, plain},
		{false, "format=csv&csv_safe=true", 200, safe},
		{true, "format=csv", 200, safe},
		{true, "format=csv&csv_safe=false", 200, plain},
		{false, "format=json&csv_safe=true", 400, "csv_safe: only applies to format=csv"},
		{false, "format=csv&csv_safe=maybe", 400, `csv_safe: "maybe" is not true or false`},
	} {
		srv := httptest.NewServer(NewServer(envResults{env: env}, Config{CSVSafe: tc.configured}).Handler())
		status, _, body := get(t, srv.URL+"/jobs/t/results?order_by=-n&"+tc.query)
		srv.Close()
		if tc.status != 200 {
			var e envelope
			_ = json.Unmarshal(body, &e)
			body = []byte(e.Message)
		}
		if status != tc.status || string(body) != tc.want {
			t.Errorf("configured %v, %s: %d %q, want %d %q", tc.configured, tc.query, status, body, tc.status, tc.want)
		}
	}
}

// TestTrickledBodyIs408: a body that does not arrive within the body
// timeout (here sent a byte at a time, more slowly than it allows) is
// answered 408 with a message, not 500, and reaches no service.
func TestTrickledBodyIs408(t *testing.T) {
	srv := httptest.NewServer(NewServer(failing{errReached}, Config{BodyTimeout: 300 * time.Millisecond}).Handler())
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"job_id": "slow", "args": ["` + strings.Repeat("x", 100) + `"]}`
	head := "POST /tasks/t/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	// The trickle: a byte every 100 ms would take 10 s; it stops when the
	// answer has come (the server closes the connection).
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-trickled }()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var env envelope
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 408 || env.Message != "the request body did not arrive within 300ms" {
		t.Fatalf("%d %q", res.StatusCode, env.Message)
	}
}

// TestLimitListener: a server on a LimitListener of 2 serves a third
// connection only once one of the first two closes.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(NewServer(failing{errReached}, Config{}).Handler())
	srv.Listener = LimitListener(inner, 2)
	srv.Start()
	defer srv.Close()

	// get sends GET /healthz on conn and waits within d for the answer.
	get := func(conn net.Conn, d time.Duration) error {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(d))
		res, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	}
	var held []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := get(conn, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		held = append(held, conn) // kept alive, holding its slot
	}
	third, err := net.Dial("tcp", srv.Listener.Addr().String()) // the kernel's backlog takes it
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	// Absence can only be shown over some time: a third connection is
	// not served while two are open.
	if err := get(third, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection was served while two were open: %v", err)
	}
	held[0].Close()
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := nethttp.ReadResponse(bufio.NewReader(third), nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("once a slot was free: %v", err)
	}
	res.Body.Close()
}

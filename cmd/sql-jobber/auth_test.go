package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// The secrets of the tokens of authConfigTOML.
const (
	aliceSecret  = "alice-secret-0123456789"
	bobSecret    = "bob-secret-0123456789abc"
	readerSecret = "reader-secret-012345678"
	rootSecret   = "root-secret-0123456789ab"
)

// authConfigTOML configures tokens: alice and bob, two clients that may do
// everything to their own jobs; reader, who may only read; root, admin.
// Bob's secret is given hashed.
func authConfigTOML() string {
	bobHash := sha256.Sum256([]byte(bobSecret))
	return fmt.Sprintf(`
[auth.tokens.alice]
secret = %q
scopes = ["jobs:submit", "jobs:read", "jobs:cancel", "results:read"]

[auth.tokens.bob]
secret_sha256 = %q
scopes = ["jobs:submit", "jobs:read", "jobs:cancel", "results:read"]

[auth.tokens.reader]
secret = %q
scopes = ["jobs:read"]

[auth.tokens.root]
secret = %q
scopes = ["admin"]
`, aliceSecret, hex.EncodeToString(bobHash[:]), readerSecret, rootSecret)
}

// rawGet GETs path with secret (if any) and returns the status, the
// headers and the body.
func rawGet(t *testing.T, base, path, secret string) (int, nethttp.Header, string) {
	t.Helper()
	req, err := nethttp.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// TestTokensGuardTheAPI: without a valid token every endpoint but /healthz
// answers 401 and asks for one; a token without the route's scope gets 403
// naming it; the operations endpoints need admin.
func TestTokensGuardTheAPI(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml+authConfigTOML(), tasks(t, sqlexec.Postgres)).start()

	routes := []struct{ method, path, body, scope string }{
		{"GET", "/tasks", "", ""},
		{"POST", "/tasks/entries_of/jobs", `{"args": ["U1"]}`, "jobs:submit"},
		{"GET", "/jobs/x", "", "jobs:read"},
		{"GET", "/jobs/x/results", "", "results:read"},
		{"DELETE", "/jobs/x", "", "jobs:cancel"},
		{"GET", "/jobs/queue/default", "", "jobs:read"},
		{"POST", "/groups", `{"jobs": [{"task": "entries_of", "args": ["U1"]}]}`, "jobs:submit"},
		{"GET", "/groups/x", "", "jobs:read"},
		{"DELETE", "/groups/x", "", "jobs:cancel"},
		{"GET", "/cluster/members", "", "admin"},
		{"GET", "/readyz", "", "admin"},
		{"GET", "/queues", "", "jobs:read"},
		{"GET", "/databases", "", "jobs:read"},
	}
	for _, rt := range routes {
		for _, tc := range []struct {
			name, header, wantAuth string
		}{
			{"no token", "", `Bearer realm="sql-jobber"`},
			{"unknown token", "Bearer not-a-token-of-this-api", `Bearer realm="sql-jobber", error="invalid_token"`},
			{"other scheme", "Basic " + aliceSecret, `Bearer realm="sql-jobber", error="invalid_token"`},
			{"empty bearer", "Bearer ", `Bearer realm="sql-jobber", error="invalid_token"`},
			{"NUL in token", "Bearer " + aliceSecret + "\x00", ""},
			{"a near miss", "Bearer " + aliceSecret[:len(aliceSecret)-1] + "X", `Bearer realm="sql-jobber", error="invalid_token"`},
		} {
			req, err := nethttp.NewRequest(rt.method, s.base+rt.path, strings.NewReader(rt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header["Authorization"] = []string{tc.header}
			}
			res, err := nethttp.DefaultClient.Do(req)
			if err != nil {
				// Go refuses to send a header with a NUL: nothing
				// reached the server.
				if strings.Contains(tc.header, "\x00") {
					continue
				}
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != tc.wantAuth {
				t.Errorf("%s %s with %s: %d, WWW-Authenticate %q: %s", rt.method, rt.path, tc.name, res.StatusCode, res.Header.Get("WWW-Authenticate"), b)
			}
			if strings.Contains(string(b), aliceSecret[:10]) {
				t.Errorf("%s %s with %s: the answer quotes the secret: %s", rt.method, rt.path, tc.name, b)
			}
		}
		if rt.scope == "" || rt.scope == "jobs:read" {
			continue
		}
		// reader may only read.
		r := s.as(readerSecret).do(rt.method, rt.path, rt.body)
		if want := fmt.Sprintf(`token "reader" lacks scope %s`, rt.scope); r.code != 403 || r.Message != want {
			t.Errorf("%s %s as reader: %d %q, want 403 %q", rt.method, rt.path, r.code, r.Message, want)
		}
	}
	if code, _, body := rawGet(t, s.base, "/healthz", ""); code != 200 {
		t.Errorf("/healthz without a token: %d %s", code, body)
	}
	if code, _, body := rawGet(t, s.base, "/tasks", readerSecret); code != 200 || !strings.Contains(body, "entries_of") {
		t.Errorf("/tasks as reader: %d %s", code, body)
	}
	for _, path := range []string{"/metrics", "/readyz", "/cluster/members"} {
		if code, _, body := rawGet(t, s.base, path, aliceSecret); code != 403 || !strings.Contains(body, "lacks scope admin") {
			t.Errorf("%s as alice: %d %s", path, code, body)
		}
		if code, _, body := rawGet(t, s.base, path, rootSecret); code != 200 {
			t.Errorf("%s as root: %d %.200s", path, code, body)
		}
	}
	// A hashed secret works as one in the clear does.
	if r := s.as(bobSecret).do("GET", "/jobs/queue/default", ""); r.code != 200 {
		t.Errorf("bob's queue: %d %s", r.code, r.Message)
	}
}

// TestTokensOwnTheirJobs: a job or group is its submitter's. Another
// client, whatever its scopes short of admin, gets what it would get for
// an ID nobody used: 404 with the same message, and no effect; it cannot
// overwrite them by re-using their IDs (409). Admin sees and does all.
func TestTokensOwnTheirJobs(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	srv := newEnv(t, dbs.toml+authConfigTOML(), tasks(t, sqlexec.Postgres)).start()
	alice, bob, root := srv.as(aliceSecret), srv.as(bobSecret), srv.as(rootSecret)

	alice.post("entries_of", `{"job_id": "a1", "args": ["U1"]}`)
	if j := alice.waitState("a1", "SUCCESS"); j.Count == 0 {
		t.Fatalf("alice's job: %+v", j)
	}
	if r := alice.do("POST", "/groups", `{"group_id": "ga", "jobs": [{"task": "entries_of", "job_id": "a2", "args": ["U1"]}]}`); r.code != 200 {
		t.Fatalf("alice's group: %d %s", r.code, r.Message)
	}
	alice.waitState("a2", "SUCCESS")

	// What bob sees of alice's IDs is what he sees of IDs nobody used.
	notFound := func(method, path, id string) {
		t.Helper()
		r := bob.do(method, path, "")
		ghost := bob.do(method, strings.Replace(path, id, "ghost"+id, 1), "")
		if r.code != 404 || ghost.code != 404 || r.Message != strings.Replace(ghost.Message, "ghost"+id, id, 1) {
			t.Errorf("bob's %s: %d %q; for an unused ID: %d %q", path, r.code, r.Message, ghost.code, ghost.Message)
		}
	}
	for _, tc := range []struct{ method, path, id string }{
		{"GET", "/jobs/a1", "a1"},
		{"GET", "/jobs/a1?wait=5s", "a1"},
		{"GET", "/jobs/a1/results", "a1"},
		{"DELETE", "/jobs/a1", "a1"},
		{"DELETE", "/jobs/a1?purge=true", "a1"},
		{"GET", "/groups/ga", "ga"},
		{"GET", "/groups/ga?wait=5s", "ga"},
		{"DELETE", "/groups/ga", "ga"},
		{"DELETE", "/groups/ga?purge=true", "ga"},
	} {
		notFound(tc.method, tc.path, tc.id)
	}
	if j, code := alice.job("a1"); code != 200 || j.State != "SUCCESS" {
		t.Fatalf("alice's job after bob's tries: %d %+v", code, j)
	}
	if r := alice.do("GET", "/jobs/a1/results", ""); r.code != 200 {
		t.Fatalf("alice's results after bob's tries: %d %s", r.code, r.Message)
	}
	// Bob cannot take the IDs over.
	for _, tc := range []struct{ path, body, want string }{
		{"/tasks/entries_of/jobs", `{"job_id": "a1", "args": ["U2"]}`, `job ID "a1" is taken by another client's job; choose another ID`},
		{"/groups", `{"group_id": "ga", "jobs": [{"task": "entries_of", "args": ["U2"]}]}`, `group ID "ga" is taken by another client's group; choose another ID`},
		{"/groups", `{"group_id": "gb", "jobs": [{"task": "entries_of", "job_id": "a1", "args": ["U2"]}]}`, `job ID "a1" is taken by another client's job; choose another ID`},
	} {
		if r := bob.do("POST", tc.path, tc.body); r.code != 409 || r.Message != tc.want {
			t.Errorf("bob posts %s: %d %q, want 409 %q", tc.body, r.code, r.Message, tc.want)
		}
	}
	if r := bob.do("GET", "/groups/gb", ""); r.code != 404 {
		t.Errorf("bob's refused group gb: %d %s", r.code, r.Message)
	}
	// Alice may run her ID again.
	alice.post("entries_of", `{"job_id": "a1", "args": ["U1"]}`)
	alice.waitState("a1", "SUCCESS")

	// Queues list only the caller's jobs; admin's lists all. (No node
	// works queue q: its jobs wait.)
	alice.post("entries_of", `{"job_id": "pa", "args": ["U1"], "queue": "q"}`)
	bob.post("entries_of", `{"job_id": "pb", "args": ["U1"], "queue": "q"}`)
	for _, tc := range []struct {
		who  *testServer
		want string
	}{{alice, "pa"}, {bob, "pb"}, {root, "pa,pb"}} {
		r := tc.who.do("GET", "/jobs/queue/q", "")
		var pending []struct {
			JobID string `json:"job_id"`
		}
		_ = json.Unmarshal(r.Data, &pending)
		var got []string
		for _, p := range pending {
			got = append(got, p.JobID)
		}
		if r.code != 200 || strings.Join(got, ",") != tc.want {
			t.Errorf("queue q as %s: %d %v, want %s", tc.who.token[:4], r.code, got, tc.want)
		}
	}

	// Admin sees whose a job is, and may cancel and purge it.
	var j struct {
		Owner string `json:"owner"`
	}
	r := root.do("GET", "/jobs/a1", "")
	if _ = json.Unmarshal(r.Data, &j); r.code != 200 || j.Owner != "alice" {
		t.Fatalf("root reads alice's job: %d %s", r.code, r.Data)
	}
	if r := root.do("DELETE", "/jobs/a1?purge=true", ""); r.code != 200 {
		t.Fatalf("root purges alice's job: %d %s", r.code, r.Message)
	}
	// Gone for alice (410); for bob, as if it never was (404).
	if r := alice.do("GET", "/jobs/a1/results", ""); r.code != 410 {
		t.Errorf("alice's purged results: %d %s", r.code, r.Message)
	}
	notFound("GET", "/jobs/a1/results", "a1")
}

package http

import (
	"io"
	"io/fs"
	nethttp "net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardFiles: /ui/ serves the embedded dashboard to anyone (its
// files hold no data), tokens or not, with a strict Content-Security-Policy
// and nosniff; /ui redirects there; a file that is not there, a hostile
// path or another method gets the API's usual JSON 404 and 405.
func TestDashboardFiles(t *testing.T) {
	auth, err := NewAuth(testTokens("alice"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{"open": {}, "tokens": {Auth: auth}} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(NewServer(failing{errReached}, cfg).Handler())
			defer srv.Close()
			noRedirect := &nethttp.Client{CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }}

			for path, ctype := range map[string]string{
				"/ui/":            "text/html; charset=utf-8",
				"/ui/index.html":  "text/html; charset=utf-8",
				"/ui/app.css":     "text/css; charset=utf-8",
				"/ui/js/app.js":   "text/javascript; charset=utf-8",
				"/ui/js/api.js":   "text/javascript; charset=utf-8",
				"/ui/favicon.svg": "image/svg+xml",
			} {
				res, err := noRedirect.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				h := res.Header
				if res.StatusCode != 200 || h.Get("Content-Type") != ctype || h.Get("X-Content-Type-Options") != "nosniff" ||
					h.Get("Content-Security-Policy") != uiPolicy || h.Get("X-Frame-Options") != "DENY" || len(body) == 0 {
					t.Errorf("GET %s: %d %v", path, res.StatusCode, h)
				}
				// The ETag makes a reload cheap.
				req, _ := nethttp.NewRequest("GET", srv.URL+path, nil)
				req.Header.Set("If-None-Match", h.Get("ETag"))
				if res, err := noRedirect.Do(req); err != nil || res.StatusCode != 304 {
					t.Errorf("GET %s with its ETag: %v %v", path, res, err)
				} else {
					res.Body.Close()
				}
			}

			res, err := noRedirect.Get(srv.URL + "/ui")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 301 || res.Header.Get("Location") != "/ui/" {
				t.Errorf("GET /ui: %d Location %q", res.StatusCode, res.Header.Get("Location"))
			}

			for _, path := range []string{"/ui/nope.js", "/ui/js", "/ui/js/", "/ui/%2e%2e/http/server.go", "/ui/..%2fui.go",
				"/ui/index.html%00", "/ui/" + strings.Repeat("x", 5000), "/ui/%ff", "/uix", "/ui/./index.html/"} {
				status, h, env := send(t, "GET", srv.URL+path, "", "")
				if status != 404 || env.Status != "error" || !strings.HasPrefix(env.Message, "no such endpoint: GET /") ||
					len(env.Message) > 200 || h.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("GET %.80s: %d %q", path, status, env.Message)
				}
			}
			for _, method := range []string{"POST", "PUT", "DELETE"} {
				status, h, env := send(t, method, srv.URL+"/ui/", "application/json", "{}")
				if status != 405 || h.Get("Allow") != "GET, HEAD" || env.Status != "error" {
					t.Errorf("%s /ui/: %d Allow %q %q", method, status, h.Get("Allow"), env.Message)
				}
			}
			// The API's own 404 and 405 are as they were.
			if status, _, env := send(t, "GET", srv.URL+"/nope", "", ""); status != 404 || env.Message != "no such endpoint: GET /nope" {
				t.Errorf("GET /nope: %d %q", status, env.Message)
			}
			if status, h, _ := send(t, "PUT", srv.URL+"/jobs/x", "", ""); status != 405 || h.Get("Allow") != "DELETE, GET" {
				t.Errorf("PUT /jobs/x: %d Allow %q", status, h.Get("Allow"))
			}
		})
	}
}

// TestDashboardRunsNoInlineCode: the Content-Security-Policy forbids
// inline script and style, so the pages must have none: no <script> without
// src, no on* handler attributes, no style attributes, nothing loaded from
// another origin. And no file is stored in the browser (tokens stay in
// memory).
func TestDashboardRunsNoInlineCode(t *testing.T) {
	var (
		inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
		handler      = regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`)
		styleAttr    = regexp.MustCompile(`(?i)<[^>]+\sstyle\s*=`)
		remote       = regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`)
		storage      = regexp.MustCompile(`localStorage\.|sessionStorage\.|document\.cookie|\.innerHTML|\.outerHTML|insertAdjacentHTML|\beval\(|new Function`)
	)
	n := 0
	err := fs.WalkDir(uiFS, "ui", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := uiFS.ReadFile(name)
		if err != nil {
			return err
		}
		s := string(b)
		for what, re := range map[string]*regexp.Regexp{"inline script": inlineScript, "an on* attribute": handler,
			"a style attribute": styleAttr, "another origin's file": remote, "storage or HTML from strings": storage} {
			if strings.HasSuffix(name, ".js") && what != "storage or HTML from strings" {
				continue
			}
			if m := re.FindString(s); m != "" {
				t.Errorf("%s has %s: %q", name, what, m)
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}

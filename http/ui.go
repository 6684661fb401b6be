package http

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// uiFS is the web dashboard: hand-written HTML, CSS and JavaScript modules
// that read the API from the browser. It is built into the binary so that
// one download serves it, with nothing to build or fetch.
//
//go:embed ui
var uiFS embed.FS

// uiPolicy is the dashboard's Content-Security-Policy: it loads only its
// own files, runs no inline script or style, talks only to this origin,
// and may not be framed (clickjacking).
const uiPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiFile is one file of the dashboard, with what its answer needs.
type uiFile struct {
	body        []byte
	contentType string
	etag        string
}

// uiFiles reads the embedded dashboard once, at start-up.
func uiFiles() map[string]uiFile {
	files := map[string]uiFile{}
	_ = fs.WalkDir(uiFS, "ui", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := uiFS.ReadFile(name)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if strings.HasSuffix(name, ".js") {
			// Module scripts must be served as JavaScript, whatever
			// the host's mime.types says.
			ct = "text/javascript; charset=utf-8"
		}
		sum := sha256.Sum256(body)
		files[strings.TrimPrefix(name, "ui/")] = uiFile{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return files
}

// registerUI serves the dashboard at /ui/ (and /ui, redirected). Its files
// hold no data, so they take no token: the pages ask for one when the API
// answers 401.
func (s *Server) registerUI() {
	files := uiFiles()
	s.router.HandleFunc("/ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	}).Methods(http.MethodGet, http.MethodHead)
	s.router.PathPrefix("/ui/").Methods(http.MethodGet, http.MethodHead).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			s.writeError(w, r, errRoute{status: http.StatusNotFound, msg: "no such endpoint: " + clip(r.Method) + " " + clip(r.URL.Path)})
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Type", f.contentType)
		// Revalidated on every load (cheaply, by ETag), so that a new
		// build's pages never mix with an old build's scripts.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}

package http

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's OpenAPI 3.1 description, written by hand beside the
// handlers it describes. openapi_test.go holds it to the router (every
// route and no other) and to what the handlers really answer, so that it
// cannot drift from them unseen.
//
//go:embed openapi.json
var openAPI []byte

// handleOpenAPI serves the description. It needs no token: it holds no
// data, and a client needs it before it has one.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	if err := noParams(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}

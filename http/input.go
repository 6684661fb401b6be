package http

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// quotePrefix is how much of a request's own text an error message quotes:
// enough to recognise it, never enough to turn a refusal into an echo of a
// megabyte the client sent.
const quotePrefix = 64

// maxMessage bounds an error message, whatever it quotes (some come from
// packages that quote in full).
const maxMessage = 1024

// quote quotes at most quotePrefix bytes of s, saying how long s was when
// that is not all of it.
func quote(s string) string {
	if len(s) <= quotePrefix {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(cutUTF8(s, quotePrefix)), len(s))
}

// clip is s, or its first quotePrefix bytes and "...": for request text
// that an error names unquoted, such as a parameter's name.
func clip(s string) string {
	if len(s) <= quotePrefix {
		return s
	}
	return cutUTF8(s, quotePrefix) + "..."
}

// cutUTF8 is at most n bytes of s, not ending inside a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n // not UTF-8 anyway
	}
	return s[:i]
}

// clipMessage bounds an error message to maxMessage bytes.
func clipMessage(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	return cutUTF8(msg, maxMessage-3) + "..."
}

// errNoPathCheck is a route variable no check is written for: a bug.
var errNoPathCheck = errors.New("http: route variable without a check")

// checkPath checks r's path variables against the rules their values were
// made by (job and group IDs as submissions have them, task and queue
// names), before anything is looked up: an ID that cannot exist costs no
// grain and no database work, and is refused naming the variable.
func (s *Server) checkPath(r *http.Request) error {
	for name, v := range mux.Vars(r) {
		var err error
		switch name {
		case "jobID", "groupID":
			err = s.svc.ValidateID(name, v)
		case "taskName", "queue":
			if !sqlexec.ValidName(v) {
				err = badRequest{msg: name + ": must be 1 to 128 letters, digits, '_', '-' or '.'"}
			}
		default:
			err = fmt.Errorf("%w: %s", errNoPathCheck, name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checked is h after checkPath and, for a POST, checkJSON.
func (s *Server) checked(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := s.checkPath(r)
		if err == nil && r.Method == http.MethodPost {
			err = checkJSON(r)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	}
}

// mediaTypeError is a request body of a type the API does not read.
type mediaTypeError struct{ got string }

func (e *mediaTypeError) Error() string {
	if e.got == "" {
		return "Content-Type must be application/json; the request has none"
	}
	return fmt.Sprintf("Content-Type must be application/json, not %s", quote(e.got))
}

// checkJSON refuses a POST that does not say its body is JSON, even an
// empty one: a browser sends form posts (and bodiless fetches) across
// origins without asking, but never a JSON one.
func checkJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &mediaTypeError{got: ct}
	}
	// JSON is UTF-8 (RFC 8259); a body said to be otherwise would be misread.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &mediaTypeError{got: ct}
	}
	return nil
}

package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ParseETA reads an ETA in the seed's "2006-01-02 15:04:05" form (in loc) or
// RFC 3339.
func ParseETA(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.ParseInLocation(ETALayout, s, loc); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("eta: %s is neither %q nor RFC 3339", quote(s), ETALayout)
}

// decodeArgs keeps each argument's JSON type: strings, exact numbers,
// booleans and null.
func decodeArgs(prefix string, raw []json.RawMessage) ([]any, error) {
	args := make([]any, 0, len(raw))
	for i, r := range raw {
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, badRequest{msg: fmt.Sprintf("%sargs[%d]: %v", prefix, i, err)}
		}
		switch v.(type) {
		case string, json.Number, bool, nil:
			args = append(args, v)
		default:
			return nil, badRequest{msg: fmt.Sprintf("%sargs[%d]: must be a string, number, boolean or null", prefix, i)}
		}
	}
	return args, nil
}

// bodyError is a request body that could not be read: it did not arrive
// in time (408), or the client broke it off (400).
type bodyError struct {
	limit time.Duration
	err   error
}

func (e *bodyError) Error() string {
	if e.timeout() {
		return fmt.Sprintf("the request body did not arrive within %s", e.limit)
	}
	return "reading the request body: " + clip(e.err.Error())
}

func (e *bodyError) Unwrap() error { return e.err }

func (e *bodyError) timeout() bool { return errors.Is(e.err, os.ErrDeadlineExceeded) }

// readBody reads r's body, of at most MaxBodyBytes, within the body
// timeout: a client that trickles its body holds a connection and a
// goroutine only that long, and hears 408.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// Not every ResponseWriter can (a test's recorder cannot); the
	// server's ReadTimeout still bounds the read then.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if err != nil && !errors.As(err, &tooBig) {
		return nil, &bodyError{limit: s.cfg.BodyTimeout, err: err}
	}
	return body, err
}

// decodeBody decodes a JSON object body into v, strictly: unknown fields,
// trailing data and wrong types are errors that name the problem. An empty
// body is an empty object.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return badRequest{msg: fmt.Sprintf("the body must be a JSON object, not %s", clip(typeErr.Value))}
		case errors.As(err, &typeErr):
			// The Go name of an embedded struct is no part of the API.
			field := strings.ReplaceAll(typeErr.Field, ".jobRequest", "")
			if num, ok := strings.CutPrefix(typeErr.Value, "number "); ok && isInteger(num) && jsonKind(typeErr.Type.String()) == "an integer" {
				return badRequest{msg: fmt.Sprintf("%s: %s is out of range", field, clip(num))}
			}
			return badRequest{msg: fmt.Sprintf("%s: must be %s, not %s", field, jsonKind(typeErr.Type.String()), clip(typeErr.Value))}
		case errors.As(err, &syntaxErr):
			return badRequest{msg: fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
			return badRequest{msg: "unknown field " + quote(name)}
		}
		return badRequest{msg: "malformed JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest{msg: "malformed JSON: data after the object"}
	}
	// encoding/json lets the last of duplicate keys win and matches keys
	// to fields ignoring case: "JOB_ID" would silently be job_id.
	return checkKeys(json.NewDecoder(bytes.NewReader(body)), reflect.TypeOf(v), "")
}

// checkKeys walks the next JSON value of dec, which has decoded into a
// value of type t (nil where that is not known), and refuses an object
// that gives a key twice, keys that differ only in case, or a key that
// names a field of t only when case is ignored. path locates the value in
// errors ("jobs[2].").
func checkKeys(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return badRequest{msg: "malformed JSON: " + err.Error()}
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkKeys(dec, elem, fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i)); err != nil {
				return err
			}
		}
	case '{':
		fields := jsonFields(t)
		seen := map[string]string{} // by folded key, the key as given
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return badRequest{msg: "malformed JSON: " + err.Error()}
			}
			key := tok.(string)
			switch prev, dup := seen[foldKey(key)]; {
			case dup && prev == key:
				return badRequest{msg: fmt.Sprintf("%s%s: given twice; give each key once", path, clip(key))}
			case dup:
				return badRequest{msg: fmt.Sprintf("%s%s: given besides %s, which differs only in case", path, clip(key), quote(prev))}
			}
			seen[foldKey(key)] = key
			ft, exact := fields[key]
			if !exact {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return badRequest{msg: fmt.Sprintf("%s%s: unknown field; keys are case-sensitive: write %q", path, clip(key), name)}
					}
				}
			}
			if err := checkKeys(dec, ft, path+key+"."); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// jsonFields maps the JSON names of struct type t's fields (those of
// embedded structs too) to their types; nil if t is not a struct.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			maps.Copy(fields, jsonFields(f.Type))
		case !f.IsExported():
		case tag != "":
			fields[tag] = f.Type
		default:
			fields[f.Name] = f.Type
		}
	}
	return fields
}

// foldKey maps keys that strings.EqualFold holds equal (as encoding/json
// matches them) to one string: each rune becomes the least of its case
// folding orbit.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// isInteger reports whether a JSON number is written as an integer: one
// that a Go integer refused is too large for it.
func isInteger(num string) bool {
	digits := strings.TrimPrefix(num, "-")
	return digits != "" && strings.Trim(digits, "0123456789") == ""
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return goType
}

// waitParam reads ?wait=: a Go duration ("30s", "1m30s") or whole
// seconds ("30"), capped at MaxWait; 0 when absent.
func (s *Server) waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, badRequest{msg: fmt.Sprintf(`wait: %s is not a duration such as "30s" or a number of seconds`, quote(v))}
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, badRequest{msg: fmt.Sprintf("wait: %s is negative", quote(v))}
	}
	return min(d, s.cfg.MaxWait), nil
}

// purgeParam reads ?purge=true.
func purgeParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("purge")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest{msg: fmt.Sprintf("purge: %s is not true or false", quote(v))}
	}
	return b, nil
}

package http

import (
	"bytes"
	"context"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// specURL is where the tests' schema compiler holds http/openapi.json.
const specURL = "mem://sql-jobber/openapi.json"

// updateSpec ends every failure that means the document and the code
// disagree.
const updateSpec = "update http/openapi.json"

// methods are the operations a path item may hold, in OpenAPI's spelling.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// spec is http/openapi.json, parsed, with a JSON Schema 2020-12 compiler
// (OpenAPI 3.1's dialect) that holds it.
type spec struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(openAPI))
	if err != nil {
		t.Fatalf("http/openapi.json is not JSON: %v", err)
	}
	root, ok := doc.(map[string]any)
	if !ok {
		t.Fatal("http/openapi.json is not an object")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Times must be RFC 3339, as the document says.
	c.AssertFormat()
	if err := c.AddResource(specURL, doc); err != nil {
		t.Fatal(err)
	}
	return &spec{doc: root, compiler: c, schemas: map[string]*jsonschema.Schema{}}
}

// pointer is the JSON pointer of the value at path (RFC 6901).
func pointer(path ...string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// schema compiles the schema at JSON pointer ptr of the document.
func (s *spec) schema(ptr string) (*jsonschema.Schema, error) {
	if sch, ok := s.schemas[ptr]; ok {
		return sch, nil
	}
	var frag strings.Builder
	for i, tok := range strings.Split(ptr, "/") {
		if i > 0 {
			frag.WriteByte('/')
		}
		frag.WriteString(url.PathEscape(tok))
	}
	sch, err := s.compiler.Compile(specURL + "#" + frag.String())
	if err != nil {
		return nil, err
	}
	s.schemas[ptr] = sch
	return sch, nil
}

// lookup is the value at JSON pointer ptr, or nil.
func (s *spec) lookup(ptr string) any {
	var v any = s.doc
	for _, tok := range strings.Split(ptr, "/")[1:] {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// deref follows a Reference Object at ptr (once: the document's
// references are not chained) and returns the pointer it leads to.
func (s *spec) deref(ptr string) string {
	if m, ok := s.lookup(ptr).(map[string]any); ok {
		if ref, ok := m["$ref"].(string); ok && strings.HasPrefix(ref, "#/") {
			return ref[1:]
		}
	}
	return ptr
}

// operations lists "METHOD /path" of every operation the document names.
func (s *spec) operations() []string {
	var ops []string
	paths, _ := s.doc["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if slices.Contains(methods, m) {
				ops = append(ops, strings.ToUpper(m)+" "+p)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// fullServer is the API with every route it can serve: the operations
// endpoints too.
func fullServer(svc Service, cfg Config) *Server {
	cfg.Ops = NewOps(prometheus.NewRegistry(), func(context.Context) []Check { return []Check{{Name: "tasks", OK: true}} })
	return NewServer(svc, cfg)
}

// uiExempt: the dashboard (issue 17) is a tree of pages and assets under
// /ui/, served by a PathPrefix route; it is no part of the JSON API the
// document describes.
func uiExempt(path string) bool { return path == "/ui" || strings.HasPrefix(path, "/ui/") }

// routeVarRe matches a gorilla/mux variable with its pattern, {name:re}.
var routeVarRe = regexp.MustCompile(`\{([^{}:]+):[^{}]*\}`)

// TestOpenAPIRoutesMatchRouter: every route and method the router serves
// is an operation of the document, and the document names no other.
// Routes under /ui/ (the dashboard) are exempt.
func TestOpenAPIRoutesMatchRouter(t *testing.T) {
	s := loadSpec(t)
	srv := fullServer(failing{}, Config{})
	var served []string
	err := srv.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			tpl, err = route.GetPathRegexp()
			if err != nil {
				return nil // a subrouter's own entry
			}
		}
		if uiExempt(tpl) {
			return nil
		}
		tpl = routeVarRe.ReplaceAllString(tpl, "{$1}")
		ms, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s takes any method: name them, and %s", tpl, updateSpec)
			return nil
		}
		for _, m := range ms {
			served = append(served, m+" "+tpl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(served)
	documented := s.operations()
	for _, op := range served {
		if !slices.Contains(documented, op) {
			t.Errorf("the router serves %s, which http/openapi.json does not describe: %s", op, updateSpec)
		}
	}
	for _, op := range documented {
		if !slices.Contains(served, op) {
			t.Errorf("http/openapi.json describes %s, which the router does not serve: %s", op, updateSpec)
		}
	}
	if len(served) == 0 {
		t.Fatal("the router serves nothing?")
	}
}

// TestOpenAPIServedOpen: the document is served as JSON, byte for byte, to
// clients without a token, and takes no parameters.
func TestOpenAPIServedOpen(t *testing.T) {
	auth, err := NewAuth(testTokens("reader"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(fullServer(failing{errReached}, Config{Auth: auth}).Handler())
	defer ts.Close()
	status, h, body := get(t, ts.URL+"/openapi.json")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") || !bytes.Equal(body, openAPI) {
		t.Fatalf("GET /openapi.json: %d %s (%d bytes)", status, h.Get("Content-Type"), len(body))
	}
	if status, _, env := send(t, "GET", ts.URL+"/openapi.json?format=yaml", "", ""); status != 400 || !strings.Contains(env.Message, `"format"`) {
		t.Fatalf("a parameter: %d %q", status, env.Message)
	}
	if status, h, _ := send(t, "POST", ts.URL+"/openapi.json", "application/json", "{}"); status != 405 || h.Get("Allow") != "GET" {
		t.Fatalf("POST: %d, Allow %q", status, h.Get("Allow"))
	}
}

// TestOpenAPIDocument checks the document's own structure as far as the
// OpenAPI rules that matter here go: every reference resolves, every
// schema compiles as JSON Schema 2020-12, operations have unique IDs, a
// summary, a success answer and the path parameters their template names,
// security names known scopes and the description says them, and every
// object a response holds refuses properties it does not list (so that a
// field added to the API fails the response tests until documented).
func TestOpenAPIDocument(t *testing.T) {
	s := loadSpec(t)
	if v, _ := s.doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi: %q, want 3.1.x", v)
	}
	info, _ := s.doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Fatal("info: title and version are required")
	}
	// Every reference resolves.
	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				if !strings.HasPrefix(ref, "#/") || s.lookup(ref[1:]) == nil {
					t.Errorf("%s: $ref %q does not resolve", ptr, ref)
				}
			}
			for k, e := range x {
				walk(ptr+pointer(k), e)
			}
		case []any:
			for i, e := range x {
				walk(ptr+pointer(strconv.Itoa(i)), e)
			}
		}
	}
	walk("", s.doc)

	schemas, _ := s.lookup("/components/schemas").(map[string]any)
	for name := range schemas {
		if _, err := s.schema(pointer("components", "schemas", name)); err != nil {
			t.Errorf("components/schemas/%s: %v", name, err)
		}
	}
	// Objects of answers list their properties and refuse others. The
	// document itself and the free-form ones (a result row, a filter)
	// are the exceptions; JobRequestFields is closed by its users.
	open := []string{"OpenAPIDocument", "JobRequestFields"}
	for name, sch := range schemas {
		if !slices.Contains(open, name) {
			checkClosed(t, "components/schemas/"+name, sch)
		}
	}

	scopes := []string{}
	for _, sc := range Scopes() {
		scopes = append(scopes, string(sc))
	}
	ids := map[string]string{}
	for _, op := range s.operations() {
		method, path, _ := strings.Cut(op, " ")
		opPtr := pointer("paths", path, strings.ToLower(method))
		o := s.lookup(opPtr).(map[string]any)
		id, _ := o["operationId"].(string)
		if id == "" || ids[id] != "" {
			t.Errorf("%s: operationId %q missing or used by %s too", op, id, ids[id])
		}
		ids[id] = op
		if sum, _ := o["summary"].(string); sum == "" {
			t.Errorf("%s: no summary", op)
		}
		// Security: one bearer requirement naming known scopes, or none
		// (an open route); the description says the same.
		desc, _ := o["description"].(string)
		sec, ok := o["security"].([]any)
		if !ok {
			t.Errorf("%s: say its security, [] when it is open", op)
		}
		for _, req := range sec {
			for scheme, sc := range req.(map[string]any) {
				if scheme != "bearerAuth" {
					t.Errorf("%s: unknown security scheme %q", op, scheme)
				}
				list := sc.([]any)
				switch {
				case len(list) > 1:
					t.Errorf("%s: a route takes one scope", op)
				case len(list) == 0 && !strings.Contains(desc, "Scope: any valid token."):
					t.Errorf("%s: the description must say \"Scope: any valid token.\"", op)
				case len(list) == 1 && !slices.Contains(scopes, list[0].(string)):
					t.Errorf("%s: unknown scope %v", op, list[0])
				case len(list) == 1 && !strings.Contains(desc, fmt.Sprintf("Scope: `%s`.", list[0])):
					t.Errorf("%s: the description must say \"Scope: `%s`.\"", op, list[0])
				}
			}
		}
		// Path parameters: those of the template, required, and no other.
		var params []any
		if p, ok := s.lookup(pointer("paths", path, "parameters")).([]any); ok {
			params = append(params, p...)
		}
		if p, ok := o["parameters"].([]any); ok {
			params = append(params, p...)
		}
		var inPath []string
		for i := range params {
			p, _ := params[i].(map[string]any)
			if ref, ok := p["$ref"].(string); ok {
				p, _ = s.lookup(ref[1:]).(map[string]any)
			}
			if p["in"] == "path" {
				if p["required"] != true {
					t.Errorf("%s: path parameter %v must be required", op, p["name"])
				}
				inPath = append(inPath, p["name"].(string))
			}
		}
		var want []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		slices.Sort(inPath)
		slices.Sort(want)
		if !slices.Equal(inPath, want) {
			t.Errorf("%s: path parameters %v, the template has %v", op, inPath, want)
		}
		// Answers: a success; each with a description and, for JSON,
		// a schema and examples.
		responses, _ := o["responses"].(map[string]any)
		if responses["200"] == nil {
			t.Errorf("%s: no 200 answer", op)
		}
		for code := range responses {
			if n, err := strconv.Atoi(code); err != nil || n < 200 || n > 599 {
				t.Errorf("%s: answer %q is not a status code", op, code)
			}
			rp := s.deref(opPtr + pointer("responses", code))
			r, _ := s.lookup(rp).(map[string]any)
			if d, _ := r["description"].(string); d == "" {
				t.Errorf("%s %s: no description", op, code)
			}
			content, _ := r["content"].(map[string]any)
			for ct, mt := range content {
				m := mt.(map[string]any)
				if m["schema"] == nil {
					t.Errorf("%s %s %s: no schema", op, code, ct)
				}
				if ct == "application/json" && m["example"] == nil && m["examples"] == nil && path != "/openapi.json" {
					t.Errorf("%s %s %s: give an example", op, code, ct)
				}
			}
		}
		if secured := len(sec) > 0; secured != (responses["401"] != nil) {
			t.Errorf("%s: a route that takes a token answers 401, and only such a route", op)
		}
	}
}

// checkClosed fails for each object schema within sch (at ptr) that lists
// properties but does not refuse others.
func checkClosed(t *testing.T, ptr string, sch any) {
	t.Helper()
	switch x := sch.(type) {
	case map[string]any:
		if _, ok := x["properties"]; ok && x["additionalProperties"] != false && x["unevaluatedProperties"] != false {
			t.Errorf("%s: lists properties but takes others: add \"additionalProperties\": false", ptr)
		}
		for k, v := range x {
			if k != "examples" && k != "example" {
				checkClosed(t, ptr+"/"+k, v)
			}
		}
	case []any:
		for i, v := range x {
			checkClosed(t, ptr+"/"+strconv.Itoa(i), v)
		}
	}
}

// TestOpenAPIScopes: each operation's documented scope is the one the
// server asks for: a token with every other scope (not admin) is
// refused, one with that scope alone is let through, and an open route
// needs no token.
func TestOpenAPIScopes(t *testing.T) {
	s := loadSpec(t)
	var tokens []Token
	for i, sc := range Scopes() {
		if sc == ScopeAdmin {
			continue
		}
		var others []Scope
		for _, o := range Scopes() {
			if o != sc && o != ScopeAdmin {
				others = append(others, o)
			}
		}
		tokens = append(tokens,
			Token{Name: "only-" + strconv.Itoa(i), Secrets: [][32]byte{HashSecret("only-secret-" + string(sc))}, Scopes: []Scope{sc}},
			Token{Name: "but-" + strconv.Itoa(i), Secrets: [][32]byte{HashSecret("but-secret-" + string(sc))}, Scopes: others})
	}
	tokens = append(tokens, Token{Name: "admin", Secrets: [][32]byte{HashSecret("admin-secret-0123")}, Scopes: []Scope{ScopeAdmin}})
	auth, err := NewAuth(tokens, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(fullServer(failing{errReached}, Config{Auth: auth}).Handler())
	defer ts.Close()
	call := func(method, path, secret string) int {
		t.Helper()
		path = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
		req, err := nethttp.NewRequest(method, ts.URL+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		res, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, op := range s.operations() {
		method, path, _ := strings.Cut(op, " ")
		o := s.lookup(pointer("paths", path, strings.ToLower(method))).(map[string]any)
		sec, _ := o["security"].([]any)
		switch {
		case len(sec) == 0:
			if got := call(method, path, ""); got == 401 || got == 403 {
				t.Errorf("%s is documented open, but answers %d without a token: %s", op, got, updateSpec)
			}
			continue
		case call(method, path, "") != 401:
			t.Errorf("%s is documented to need a token, but answers without one: %s", op, updateSpec)
		}
		list := sec[0].(map[string]any)["bearerAuth"].([]any)
		for _, sc := range Scopes() {
			if sc == ScopeAdmin {
				continue
			}
			only, but := call(method, path, "only-secret-"+string(sc)), call(method, path, "but-secret-"+string(sc))
			switch {
			case len(list) == 0 && (only == 403 || but == 403):
				t.Errorf("%s is documented for any token, but a token of %s or of all others is refused: %s", op, sc, updateSpec)
			case len(list) == 1 && list[0] == string(sc) && (only == 403 || but != 403):
				t.Errorf("%s is documented to need %s: a token of it alone got %d, one of every other %d: %s", op, sc, only, but, updateSpec)
			}
		}
		if len(list) == 1 && list[0] == string(ScopeAdmin) {
			for _, sc := range Scopes() {
				if sc != ScopeAdmin && call(method, path, "only-secret-"+string(sc)) != 403 {
					t.Errorf("%s is documented to need admin, but a token of %s alone may: %s", op, sc, updateSpec)
				}
			}
		}
		if got := call(method, path, "admin-secret-0123"); got == 401 || got == 403 {
			t.Errorf("%s: admin refused (%d)", op, got)
		}
	}
}

// TestOpenAPIExamples validates every example of the document against its
// schema: those of media types, parameters and headers (example and each
// of examples), and a schema's own examples.
func TestOpenAPIExamples(t *testing.T) {
	s := loadSpec(t)
	n := 0
	check := func(where, schemaPtr string, v any) {
		t.Helper()
		sch, err := s.schema(s.deref(schemaPtr))
		if err != nil {
			t.Errorf("%s: schema: %v", where, err)
			return
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s: the example does not match its schema: %v", where, err)
		}
		n++
	}
	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch x := v.(type) {
		case map[string]any:
			_, hasSchema := x["schema"]
			if ex, ok := x["example"]; ok && hasSchema {
				check(ptr+"/example", ptr+"/schema", ex)
			}
			switch exs := x["examples"].(type) {
			case map[string]any: // OpenAPI Example Objects, beside a schema
				if !hasSchema {
					t.Errorf("%s: examples without a schema", ptr)
				}
				for k, e := range exs {
					ex, ok := e.(map[string]any)["value"]
					if !ok {
						t.Errorf("%s/examples/%s: no value", ptr, k)
						continue
					}
					check(ptr+"/examples/"+k, ptr+"/schema", ex)
				}
			case []any: // JSON Schema examples, of the schema they are in
				for i, ex := range exs {
					check(ptr+"/examples/"+strconv.Itoa(i), ptr, ex)
				}
			}
			for k, e := range x {
				if k != "example" && k != "examples" {
					walk(ptr+pointer(k), e)
				}
			}
		case []any:
			for i, e := range x {
				walk(ptr+pointer(strconv.Itoa(i)), e)
			}
		}
	}
	walk("", s.doc)
	if n < 50 {
		t.Fatalf("only %d examples checked: is the walk broken?", n)
	}
	t.Logf("%d examples match their schemas", n)
}

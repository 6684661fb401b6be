package http

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestDecodeReuseFields: max_age is a Go duration or whole seconds, fresh a
// boolean; anything else is 400 naming the field.
func TestDecodeReuseFields(t *testing.T) {
	s := NewServer(failing{}, Config{})
	const bad = `max_age: must be a duration ("10m", "90s") or whole seconds`
	for _, tc := range []struct {
		body   string
		maxAge time.Duration // -1: none
		fresh  bool
		want   string // the error, or "" for none
	}{
		{`{}`, -1, false, ""},
		{`{"max_age": null}`, -1, false, ""},
		{`{"max_age": "10m"}`, 10 * time.Minute, false, ""},
		{`{"max_age": "1h30m"}`, 90 * time.Minute, false, ""},
		{`{"max_age": 600}`, 10 * time.Minute, false, ""},
		{`{"max_age": 0}`, 0, false, ""},
		{`{"max_age": "0s"}`, 0, false, ""},
		{`{"fresh": true}`, -1, true, ""},
		{`{"fresh": false, "max_age": "1s"}`, time.Second, false, ""},
		{`{"max_age": "-1m"}`, 0, false, bad},
		{`{"max_age": -1}`, 0, false, bad},
		{`{"max_age": 1.5}`, 0, false, bad},
		{`{"max_age": 1e3}`, 0, false, bad},
		{`{"max_age": 99999999999999999999999}`, 0, false, bad},
		{`{"max_age": "876600h1s"}`, 0, false, bad},
		{`{"max_age": "9999999999h"}`, 0, false, bad},
		{`{"max_age": "soon"}`, 0, false, bad},
		{`{"max_age": ""}`, 0, false, bad},
		{`{"max_age": "10m\u0000"}`, 0, false, bad},
		{`{"max_age": true}`, 0, false, bad},
		{`{"max_age": ["10m"]}`, 0, false, bad},
		{`{"max_age": {"m": 10}}`, 0, false, bad},
		{`{"fresh": "yes"}`, 0, false, "fresh: must be a boolean, not string"},
		{`{"fresh": 1}`, 0, false, "fresh: must be a boolean, not number"},
	} {
		req := httptest.NewRequest("POST", "/tasks/t/jobs", strings.NewReader(tc.body))
		var body jobRequest
		err := s.decodeBody(httptest.NewRecorder(), req, &body)
		if err == nil {
			var r struct {
				maxAge *time.Duration
				fresh  bool
			}
			got, serr := s.submitRequest("", "t", body)
			err, r.maxAge, r.fresh = serr, got.MaxAge, got.Fresh
			if err == nil {
				switch {
				case tc.maxAge < 0 && r.maxAge != nil, tc.maxAge >= 0 && (r.maxAge == nil || *r.maxAge != tc.maxAge), r.fresh != tc.fresh:
					t.Errorf("%s: max_age %v, fresh %v", tc.body, r.maxAge, r.fresh)
				}
			}
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.body, err, tc.want)
		case err != nil:
			if status, _ := statusOf(err); status != 400 {
				t.Errorf("%s: status %d", tc.body, status)
			}
		}
	}
	// A group member's errors say which member.
	if _, err := s.submitRequest("jobs[2].", "t", jobRequest{MaxAge: []byte(`"x"`)}); err == nil || !strings.HasPrefix(err.Error(), "jobs[2].max_age: ") {
		t.Fatalf("a group member's bad max_age: %v", err)
	}
}

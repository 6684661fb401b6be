package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// maxAgeOf reads a request's max_age: a Go duration ("10m") or whole
// seconds (600); nil when the request does not give one (or gives null).
// prefix names the job's place in a group in errors.
func maxAgeOf(prefix string, raw json.RawMessage) (*time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	bad := badRequest{msg: fmt.Sprintf(`%smax_age: must be a duration ("10m", "90s") or whole seconds from 0 to %d`, prefix, maxTTLSeconds)}
	var d time.Duration
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, bad
		}
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return nil, bad
		}
	default:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 || n > maxTTLSeconds {
			return nil, bad
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > maxTTLSeconds*time.Second {
		return nil, bad
	}
	return &d, nil
}

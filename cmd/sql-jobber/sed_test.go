package main

import (
	"regexp"
	"strings"
	"testing"
)

// sedRegexp turns a sed basic regular expression into a Go one.
func sedRegexp(t *testing.T, bre string) *regexp.Regexp {
	t.Helper()
	r := strings.NewReplacer(`\(`, "(", `\)`, ")", `(`, `\(`, `)`, `\)`)
	re, err := regexp.Compile(r.Replace(bre))
	if err != nil {
		t.Fatalf("regexp %q: %v", bre, err)
	}
	return re
}

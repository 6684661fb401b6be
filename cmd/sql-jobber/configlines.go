package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Where each key of a configuration file is, so that errors found after
// decoding (a value out of range, a name that does not exist) still name
// the file's line.

type parseError struct {
	line int
	err  error
}

// keyLines maps every dotted key and table in a TOML document to the line it
// is on, so that errors found after decoding can still name a line.
func keyLines(data []byte) (map[string]int, *parseError) {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	// keyOf returns a key's parts and the line it starts on (the
	// expression's own range is empty for table headers).
	keyOf := func(it unstable.Iterator) ([]string, int) {
		var parts []string
		line := 0
		for it.Next() {
			if line == 0 {
				line = p.Shape(it.Node().Raw).Start.Line
			}
			parts = append(parts, string(it.Node().Data))
		}
		return parts, line
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var line int
			table, line = keyOf(e.Key())
			// Every prefix of a table key exists from its first mention.
			for i := 1; i <= len(table); i++ {
				k := strings.Join(table[:i], ".")
				if _, ok := lines[k]; !ok || i == len(table) {
					lines[k] = line
				}
			}
		case unstable.KeyValue:
			parts, line := keyOf(e.Key())
			lines[strings.Join(append(slices.Clone(table), parts...), ".")] = line
		}
	}
	if err := p.Error(); err != nil {
		var pe *unstable.ParserError
		if errors.As(err, &pe) {
			return nil, &parseError{line: p.Shape(p.Range(pe.Highlight)).Start.Line, err: fmt.Errorf("invalid TOML: %s", pe.Message)}
		}
		return nil, &parseError{err: fmt.Errorf("invalid TOML: %w", err)}
	}
	return lines, nil
}

// lineOf finds the line of key, or of its nearest enclosing table.
func lineOf(lines map[string]int, key string) int {
	for k := key; k != ""; {
		if l, ok := lines[k]; ok {
			return l
		}
		i := strings.LastIndex(k, ".")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

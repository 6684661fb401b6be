package sqlexec

// sqliteParamCount returns what sqlite3_bind_parameter_count would for
// query: the largest parameter index it uses. database/sql does not expose
// that count for SQLite, and knowing it lets a job with the wrong number of
// arguments be refused when it is submitted rather than when it runs.
//
// It follows SQLite's tokenizer: '…' strings, "…", `…` and […] identifiers
// and both comment forms hold no parameters; "?" takes the next index,
// "?NNN" index NNN, and each distinct ":name", "@name" or "$name" the next
// index at its first use.
func sqliteParamCount(query string) int {
	var (
		largest int
		named   = map[string]bool{}
	)
	isIdent := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
	}
	skipTo := func(i int, end byte) int {
		for i++; i < len(query); i++ {
			if query[i] == end {
				if (end == '\'' || end == '"' || end == '`') && i+1 < len(query) && query[i+1] == end {
					i++ // doubled quote
					continue
				}
				return i
			}
		}
		return i
	}
	for i := 0; i < len(query); i++ {
		switch c := query[i]; {
		case c == '\'' || c == '"' || c == '`':
			i = skipTo(i, c)
		case c == '[':
			i = skipTo(i, ']')
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			for i < len(query) && query[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			i += 2
			for i+1 < len(query) && !(query[i] == '*' && query[i+1] == '/') {
				i++
			}
			i++
		case c == '?':
			j := i + 1
			n := 0
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				n = n*10 + int(query[j]-'0')
				j++
			}
			if j == i+1 {
				largest++
			} else {
				largest = max(largest, n)
			}
			i = j - 1
		case c == ':' || c == '@' || c == '$':
			j := i + 1
			for j < len(query) && isIdent(query[j]) {
				j++
			}
			if j > i+1 {
				if name := query[i:j]; !named[name] {
					named[name] = true
					largest++
				}
			}
			i = j - 1
		}
	}
	return largest
}

package sqlexec

import "strings"

// Quote quotes an identifier (a table or column name) for the dialect:
// backticks on MySQL, double quotes elsewhere, doubling any inside it, so
// that no name can end its quotes early.
func (d Dialect) Quote(ident string) string {
	q := `"`
	if d == MySQL {
		q = "`"
	}
	return q + strings.ReplaceAll(ident, q, q+q) + q
}

package sqlexec_test

import (
	"testing"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

func TestQuoteDoublesTheQuoteInsideAName(t *testing.T) {
	for _, tc := range []struct {
		d          sqlexec.Dialect
		name, want string
	}{
		{sqlexec.Postgres, "results_a", `"results_a"`},
		{sqlexec.Postgres, `a"; DROP TABLE x; --`, `"a""; DROP TABLE x; --"`},
		{sqlexec.SQLite, `"`, `""""`},
		{sqlexec.MySQL, "a`b", "`a``b`"},
		{sqlexec.MySQL, `a"b`, "`a\"b`"},
	} {
		if got := tc.d.Quote(tc.name); got != tc.want {
			t.Errorf("%s %q: %s, want %s", tc.d, tc.name, got, tc.want)
		}
	}
}

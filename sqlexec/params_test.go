package sqlexec

import "testing"

func TestSQLiteParamCount(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"SELECT 1", 0},
		{"SELECT * FROM e WHERE a = ? AND b = ?", 2},
		{"SELECT * FROM e WHERE a = ?3", 3},
		{"SELECT * FROM e WHERE a = ?3 AND b = ?", 4},
		{"SELECT * FROM e WHERE a = :x AND b = :x AND c = @y", 2},
		{"SELECT '?', \"a?\", `b?`, [c?] FROM e WHERE d = ?", 1},
		{"SELECT 'it''s ?' WHERE x = ?", 1},
		{"SELECT 1 -- what?\n WHERE a = ?", 1},
		{"SELECT 1 /* ? :x */ WHERE a = $name", 1},
		{"SELECT ':x' AS \":y\"", 0},
	} {
		if got := sqliteParamCount(tc.query); got != tc.want {
			t.Errorf("sqliteParamCount(%q) = %d, want %d", tc.query, got, tc.want)
		}
	}
}

func FuzzSQLiteParamCount(f *testing.F) {
	f.Add("SELECT * FROM e WHERE a = ? AND b = :x")
	f.Add("'unterminated ?")
	f.Add("/* unterminated")
	f.Fuzz(func(t *testing.T, q string) {
		if n := sqliteParamCount(q); n < 0 {
			t.Fatalf("negative count %d", n)
		}
	})
}

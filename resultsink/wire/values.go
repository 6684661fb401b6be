package wire

import (
	"fmt"
	"time"
)

// CheckMicroseconds refuses a time finer than PostgreSQL and MySQL keep,
// which they would round or cut without a word.
func CheckMicroseconds(t time.Time) error {
	if t.Nanosecond()%1000 != 0 {
		return fmt.Errorf("%s has sub-microsecond digits that the results database would drop", t.Format(time.RFC3339Nano))
	}
	return nil
}

func errValueType(v any, want string) error {
	return fmt.Errorf("value of Go type %T where %s is expected", v, want)
}

func allDigits[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

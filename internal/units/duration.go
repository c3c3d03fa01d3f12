package units

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Errors of ParseDuration.
var (
	ErrNotDuration = errors.New("not a duration")
	ErrTooLong     = errors.New("too long")
)

// ParseDuration reads what time.ParseDuration reads, plus days (d) and
// weeks (w), which people use for retention and expiry: "30d", "2w",
// "1.5d". Negative values are not durations; one over max is ErrTooLong,
// checked before the value is converted, since a Duration wraps past
// about 292 years.
func ParseDuration(s string, max time.Duration) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			// !(v >= 0) refuses NaN too.
			if err != nil || !(v >= 0) {
				return 0, ErrNotDuration
			}
			if v*float64(unit) > float64(max) {
				return 0, ErrTooLong
			}
			return time.Duration(v * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, ErrNotDuration
	}
	if d > max {
		return 0, ErrTooLong
	}
	return d, nil
}

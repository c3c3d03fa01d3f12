package units

import (
	"errors"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  error
	}{
		{"20s", 20 * time.Second, nil},
		{"1h30m", 90 * time.Minute, nil},
		{"0", 0, nil},
		{"30d", 30 * day, nil},
		{"1.5d", 36 * time.Hour, nil},
		{"2w", 14 * day, nil},
		{"400d", 400 * day, nil},
		{"401d", 0, ErrTooLong},
		{"9601h", 0, ErrTooLong},
		{"1e300d", 0, ErrTooLong}, // would wrap as a Duration
		{"-1d", 0, ErrNotDuration},
		{"-5s", 0, ErrNotDuration},
		{"NaNd", 0, ErrNotDuration},
		{"d", 0, ErrNotDuration},
		{"5 d", 0, ErrNotDuration},
		{"5x", 0, ErrNotDuration},
		{"", 0, ErrNotDuration},
	} {
		got, err := ParseDuration(tc.in, 400*day)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

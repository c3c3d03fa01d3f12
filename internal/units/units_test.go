package units

import "testing"

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {999, "999 B"},
		{1000, "0.98 KiB"}, // 0.9766 KiB: three integer digits at most
		{1023, "1.00 KiB"}, {1024, "1.00 KiB"}, {1536, "1.50 KiB"},
		{10000, "9.77 KiB"}, // 9.765625: rounded, not truncated to 9.76
		{10 * 1024, "10.0 KiB"},
		{10235, "10.0 KiB"}, // 9.995 KiB rounds up into the next precision
		{102348, "99.9 KiB"}, {102349, "100 KiB"},
		{1001 * 1024, "0.98 MiB"}, {999 * 1024, "999 KiB"},
		{1024*1024 - 1, "1.00 MiB"},
		{5 * 1024 * 1024 * 1024, "5.00 GiB"}, {1 << 62, "4.00 EiB"}, {1<<64 - 1, "16.0 EiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1.00K"}, {1234, "1.23K"}, {1235, "1.24K"},
		{45678, "45.7K"}, {999499, "999K"}, {999500, "1.00M"}, {999999, "1.00M"}, {7890000, "7.89M"},
	} {
		if got := Count(tc.n); got != tc.want {
			t.Errorf("Count(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

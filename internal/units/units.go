// Package units formats byte and packet counts for people, and reads the
// durations they write (with days and weeks). Counts get binary prefixes
// for bytes (KiB, MiB, ...), decimal ones for packets (K, M, ...), three
// significant digits and at most three integer digits, so columns of them
// stay narrow and comparable.
package units

import (
	"math"
	"strconv"
)

// Bytes formats n bytes: "512 B", "1.50 KiB", "9.77 KiB", "23.4 MiB",
// "117 GiB". From 1000 of a unit on, the next one is used ("0.98 MiB", not
// "1001 KiB").
func Bytes(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10) + " B"
	}
	s, u := scale(float64(n), 1024)
	return s + " " + u + "iB"
}

// Count formats a count: "999", "1.23K", "45.7K", "7.89M".
func Count(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10)
	}
	s, u := scale(float64(n), 1000)
	return s + u
}

// scale divides v (at least 1000) by base until its rounded value has at
// most three integer digits, and returns it with three significant digits
// and the prefix. Rounding is to nearest: 10000 B is 9.765625 KiB, shown
// as 9.77; truncating showed 9.76 and made 999.96 read as 999. The value
// is rounded before its precision and unit are chosen, so 9.996 is "10.0"
// and 999.6K is "1.00M", never "10.00" or "1000K".
func scale(v, base float64) (string, string) {
	const prefixes = "KMGTPE"
	for i := range len(prefixes) {
		v /= base
		for _, p := range []struct {
			digits int
			below  float64
		}{{2, 10}, {1, 100}, {0, 1000}} {
			if round(v, p.digits) < p.below {
				return strconv.FormatFloat(v, 'f', p.digits, 64), prefixes[i : i+1]
			}
		}
	}
	// Past exa: a uint64 is at most 16 EiB, so this is not reached.
	return strconv.FormatFloat(v, 'f', 0, 64), prefixes[len(prefixes)-1:]
}

// round is v to d decimals as FormatFloat rounds it.
func round(v float64, d int) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', d, 64), 64)
	if math.IsInf(r, 0) {
		return v
	}
	return r
}

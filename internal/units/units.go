// Package units formats byte and packet counts for people, and reads the
// durations they write (with days and weeks). Counts get binary prefixes
// for bytes (KiB, MiB, ...), decimal ones for packets (K, M, ...), three
// significant digits, so columns of them stay narrow and comparable.
package units

import "strconv"

// Bytes formats n bytes: "512 B", "1.5 KiB", "23.4 MiB", "117 GiB".
func Bytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return short(v) + " " + units[i:i+1] + "iB"
}

// Count formats a count: "999", "1.2K", "45.6K", "7.89M".
func Count(n uint64) string {
	const units = "KMGTPE"
	if n < 1000 {
		return strconv.FormatUint(n, 10)
	}
	v := float64(n)
	i := -1
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return short(v) + units[i:i+1]
}

// short keeps three significant digits, never rounding up into the next unit
// (999.96 stays "999", not "1000").
func short(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(float64(int(v*100))/100, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(float64(int(v*10))/10, 'f', 1, 64)
	default:
		return strconv.Itoa(int(v))
	}
}

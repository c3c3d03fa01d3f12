package daemon

import (
	"os"
	"runtime/debug"
)

// memoryLimit is the soft limit the daemon gives Go's collector for a
// bound on the open window (docs/performance.md, Memory budget): room for two windows
// full to the bound (the open one and the one being stored, about 150
// bytes per unit each, less in practice: a window's pairs are rarely all
// used), a spare row array, the writer's per-service sums, and 256 MB for
// the rest of the daemon (GeoIP files read into memory, queries), so that
// a small bound does not make the collector run all the time. Without it the collector lets the heap grow
// to twice what is live, which under a flood of spoofed sources is the
// difference between 250 MB and 500 MB. 0: no limit (no bound).
func memoryLimit(openBound int) int64 {
	if openBound <= 0 {
		return 0
	}
	return 256<<20 + int64(openBound)*384
}

// setMemoryLimit applies memoryLimit unless GOMEMLIMIT says otherwise,
// and returns what puts the previous limit back (tests run the daemon in
// their own process). It is soft: a daemon that needs more (a month-wide
// query on top of two full windows) gets it, at the cost of more frequent
// collections.
func setMemoryLimit(openBound int) (restore func()) {
	if n := memoryLimit(openBound); n > 0 && os.Getenv("GOMEMLIMIT") == "" {
		prev := debug.SetMemoryLimit(n)
		return func() { debug.SetMemoryLimit(prev) }
	}
	return func() {}
}

// Package rotate owns the open window: it tallies capture events per remote
// address and direction, decides window boundaries from packet timestamps
// (epoch-aligned, UTC), closes windows on time in live mode, and applies the
// per-window cardinality cap. It knows windows and counts, not sockets or disks.
// The counts, stats and closed windows are package window's; what it owns
// is the open window, and turning a closed one into a window.Window
// (Closed.Finish: remotes and services with their counts, geo fields left
// for the sink to fill in).
package rotate

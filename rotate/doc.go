// Package rotate owns the open window: it tallies capture events per remote
// address and direction, decides window boundaries from packet timestamps
// (epoch-aligned, UTC), closes windows on time in live mode, and applies the
// per-window cardinality cap. It knows windows and counts, not sockets or disks.
// The counts and stats it tallies are package window's; what it owns is the
// open window and the closed window it hands to the sink (Window: remotes and
// services with their counts, before geo resolution).
package rotate

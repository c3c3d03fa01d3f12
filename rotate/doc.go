// Package rotate owns the open window: it tallies capture events per remote
// address and direction, decides window boundaries from packet timestamps
// (epoch-aligned, UTC), closes windows on time in live mode, and applies the
// per-window cardinality cap. It knows windows and counts, not sockets or disks.
package rotate

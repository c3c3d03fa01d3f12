package window

import (
	"fmt"
	"slices"
	"strings"
)

// Counts are one remote's tallies, each way. Bytes are IP total length.
type Counts struct {
	TxPackets uint64 // egress: sent to the remote
	TxBytes   uint64
	RxPackets uint64 // ingress: received from the remote
	RxBytes   uint64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.TxPackets += o.TxPackets
	c.TxBytes += o.TxBytes
	c.RxPackets += o.RxPackets
	c.RxBytes += o.RxBytes
}

// Bytes is the total each way.
func (c Counts) Bytes() uint64 { return c.TxBytes + c.RxBytes }

// Packets is the total each way.
func (c Counts) Packets() uint64 { return c.TxPackets + c.RxPackets }

// IsZero reports whether nothing was counted.
func (c Counts) IsZero() bool { return c == Counts{} }

// Stats describe how a window's numbers came about. Frames = Tallied + the
// skip counters; Drops, Late, Folded and Overflow are separate. Partial is
// not a counter but a set of reasons.
type Stats struct {
	Frames    uint64 // frames seen by dstwatch in this window
	Tallied   uint64 // frames counted for a remote (egress or ingress)
	NonIP     uint64 // skipped: not IPv4/IPv6 (ARP, LLDP, ...)
	Transit   uint64 // skipped: neither address local
	Malformed uint64 // skipped: truncated before the IP length, or invalid IP header
	Excluded  uint64 // skipped: remote matched --exclude
	Local     uint64 // skipped: both addresses local
	Drops     uint64 // frames the kernel dropped before dstwatch saw them
	Late      uint64 // frames stamped for an already closed window, counted in this one
	Folded    uint64 // remotes folded into Other by the cardinality cap
	Oversize  uint64 // skipped: IP length larger than the wire carried (a forged header)
	Spoofed   uint64 // skipped: received from the wire with a local source address
	// Overflow is frames of remotes that came when the open window already
	// held Config.MaxOpenRemotes: tallied into Other (and their services'
	// totals), not into rows of their own. How many remotes they were is
	// not known: remembering them is what the bound saves.
	Overflow uint64
	// Partial is set when capture did not watch all of the window's time,
	// so that a quiet number is not read as quiet traffic.
	Partial Partial
}

// Partial is the set of reasons a window was watched for only part of its
// time. Adding windows (a merge, a rollup) joins their sets.
type Partial uint8

const (
	PartialStart  Partial = 1 << iota // the daemon started inside it
	PartialStop                       // the daemon stopped inside it
	PartialOutage                     // a capture source was down during it
)

var partialNames = [...]string{"start", "stop", "outage"}

// Names are the reasons in p, in a fixed order: start, stop, outage.
func (p Partial) Names() []string {
	var out []string
	for i, n := range partialNames {
		if p&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String is p's names joined by commas; "" when the window is whole.
func (p Partial) String() string { return strings.Join(p.Names(), ",") }

// ParsePartial is the inverse of Names.
func ParsePartial(names []string) (Partial, error) {
	var p Partial
	for _, n := range names {
		i := slices.Index(partialNames[:], n)
		if i < 0 {
			return 0, fmt.Errorf("partial %q: want start, stop or outage", n)
		}
		p |= 1 << i
	}
	return p, nil
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Frames += o.Frames
	s.Tallied += o.Tallied
	s.NonIP += o.NonIP
	s.Transit += o.Transit
	s.Malformed += o.Malformed
	s.Excluded += o.Excluded
	s.Local += o.Local
	s.Drops += o.Drops
	s.Late += o.Late
	s.Folded += o.Folded
	s.Oversize += o.Oversize
	s.Spoofed += o.Spoofed
	s.Overflow += o.Overflow
	s.Partial |= o.Partial
}

// Skipped is the number of frames seen but not tallied.
func (s Stats) Skipped() uint64 {
	return s.NonIP + s.Transit + s.Malformed + s.Excluded + s.Local + s.Oversize + s.Spoofed
}

package pcapgen

import (
	"net/netip"
	"slices"
	"time"
)

// Counts are one remote's tallies in one window.
type Counts struct{ TxPackets, TxBytes, RxPackets, RxBytes uint64 }

// WindowTruth is what dstwatch must record for one window.
type WindowTruth struct {
	Start   time.Time
	Remotes map[netip.Addr]Counts // remote addresses unmapped

	Frames, Tallied, NonIP, Transit, Malformed, Excluded, Local uint64
	Oversize, Spoofed                                           uint64
}

// Truth computes the expected tallies from the packet descriptions, never
// from bytes, following architecture.md "Counting rules": egress if Src is
// local (remote Dst), ingress if Dst is local (remote Src), both local ->
// Local, neither -> Transit, ARP -> NonIP, BadVersion/ShortIP -> Malformed,
// ForgedLen -> Oversize,
// remote inside an exclude prefix -> Excluded. Bytes are IPLen(), whatever
// the link layer or snap length. Windows are epoch-aligned,
// floor(unix_ns/window)*window in UTC. The result is sorted by Start and
// holds only windows with at least one frame.
//
// Timestamps are used at full nanosecond precision. Files with coarser
// timestamps (PcapMicro, WriteNG's interface 0) round down, which keeps every
// packet in the same window as long as the window is a whole number of
// microseconds.
//
// Truth knows no link type or format, so it takes no direction from them:
// it is the truth of a file that carries none (plain Ethernet or raw-IP
// pcap), where the addresses alone decide. TruthOn is the truth of a given
// format and link type.
func Truth(pkts []Packet, local []netip.Addr, exclude []netip.Prefix, window time.Duration) []WindowTruth {
	return TruthFunc(len(pkts), func(i int) Packet { return pkts[i] }, local, exclude, window)
}

// TruthOn is Truth for packets written with Write in the given format and
// link type, which decide whether the file carries each frame's direction:
// SLL and SLL2 always do (their packet type, from Outgoing), pcapng does for
// packets with EPBDirection. Where it does, a frame received (not Outgoing)
// whose Src is local is Spoofed, not egress.
func TruthOn(format Format, link uint16, pkts []Packet, local []netip.Addr, exclude []netip.Prefix, window time.Duration) []WindowTruth {
	visible := func(p *Packet) bool {
		return link == LinkLinuxSLL || link == LinkLinuxSLL2 || format == PcapNG && p.EPBDirection
	}
	return truth(len(pkts), func(i int) Packet { return pkts[i] }, local, exclude, window, visible)
}

// TruthFunc is Truth over next(0) .. next(n-1), called in order, so the
// truth of a multi-million-packet MixedFunc scenario needs no packet slice.
func TruthFunc(n int, next func(i int) Packet, local []netip.Addr, exclude []netip.Prefix, window time.Duration) []WindowTruth {
	return truth(n, next, local, exclude, window, func(*Packet) bool { return false })
}

// truth is TruthFunc; dirVisible says whether a packet's direction is in
// the file.
func truth(n int, next func(i int) Packet, local []netip.Addr, exclude []netip.Prefix, window time.Duration, dirVisible func(*Packet) bool) []WindowTruth {
	if window <= 0 {
		panic("pcapgen: Truth needs a positive window")
	}
	isLocal := make(map[netip.Addr]bool, len(local))
	for _, a := range local {
		isLocal[a.Unmap()] = true
	}
	byStart := map[int64]*WindowTruth{}
	for i := 0; i < n; i++ {
		p := next(i)
		start := floorDiv(p.TS.UnixNano(), int64(window)) * int64(window)
		w := byStart[start]
		if w == nil {
			w = &WindowTruth{Start: time.Unix(0, start).UTC(), Remotes: map[netip.Addr]Counts{}}
			byStart[start] = w
		}
		w.Frames++
		switch p.Shape {
		case ARP:
			w.NonIP++
			continue
		case BadVersion, ShortIP:
			w.Malformed++
			continue
		case ForgedLen:
			w.Oversize++
			continue
		}
		src, dst := p.Src.Unmap(), p.Dst.Unmap()
		sl, dl := isLocal[src], isLocal[dst]
		var remote netip.Addr
		switch {
		case sl && !p.Outgoing && dirVisible(&p):
			w.Spoofed++
			continue
		case sl && dl:
			w.Local++
			continue
		case !sl && !dl:
			w.Transit++
			continue
		case sl:
			remote = dst
		default:
			remote = src
		}
		if excluded(remote, exclude) {
			w.Excluded++
			continue
		}
		w.Tallied++
		c := w.Remotes[remote]
		n := uint64(p.IPLen())
		if sl {
			c.TxPackets++
			c.TxBytes += n
		} else {
			c.RxPackets++
			c.RxBytes += n
		}
		w.Remotes[remote] = c
	}
	out := make([]WindowTruth, 0, len(byStart))
	for _, w := range byStart {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b WindowTruth) int { return a.Start.Compare(b.Start) })
	return out
}

func excluded(a netip.Addr, exclude []netip.Prefix) bool {
	for _, p := range exclude {
		// Prefixes are written by people: accept ::ffff:a.b.c.d/n for IPv4.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

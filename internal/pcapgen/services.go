package pcapgen

import (
	"net/netip"
	"time"
)

// ServiceKey is a service as dstwatch names it: protocol (tcp, udp, icmp,
// other), port (0 when none) and side (in, out, "" when no port).
type ServiceKey struct {
	Proto string
	Port  uint16
	Side  string
}

// ServiceCounts are one service's tallies in one window.
type ServiceCounts struct {
	Counts
	Remotes map[netip.Addr]Counts
}

// ServiceRule says which local ports are services as a replay decides
// (without socket tables): those in Listen; else the remote port when it
// is below 1024 and the local one is not; else local ports below
// EphemeralStart.
type ServiceRule struct {
	Listen         map[uint16]bool
	EphemeralStart uint16
}

// ServiceTruth computes the expected per-service tallies of each window
// from the packet descriptions, for packets captured on link: the
// protocol class from Proto (1 and 58 are ICMP in either family), no port
// for non-first fragments, other protocols and transport headers that the
// snap length cut (captured bytes end before the 4 port bytes); else the
// local port (Src's for egress, Dst's for ingress) when the rule says it
// is a service (side in), the remote port otherwise (side out). Windows
// and remotes follow Truth; only tallied packets count. The result is
// keyed by window start (Unix ns).
func ServiceTruth(pkts []Packet, link uint16, local []netip.Addr, exclude []netip.Prefix, window time.Duration, rule ServiceRule) map[int64]map[ServiceKey]*ServiceCounts {
	isLocal := map[netip.Addr]bool{}
	for _, a := range local {
		isLocal[a.Unmap()] = true
	}
	out := map[int64]map[ServiceKey]*ServiceCounts{}
	for _, p := range pkts {
		if p.Shape != Normal {
			continue
		}
		src, dst := p.Src.Unmap(), p.Dst.Unmap()
		sl, dl := isLocal[src], isLocal[dst]
		if sl == dl {
			continue
		}
		remote := src
		if sl {
			remote = dst
		}
		if excluded(remote, exclude) {
			continue
		}
		k := ServiceKey{Proto: "other"}
		switch p.Proto {
		case 6:
			k.Proto = "tcp"
		case 17:
			k.Proto = "udp"
		case 1, 58:
			k.Proto = "icmp"
		}
		ipBytes := 1 << 30
		if p.Snap > 0 {
			ipBytes = p.Snap - linkHeaderLen(link, len(p.VLANs))
		}
		if p.is6() && !chainCaptured(&p, ipBytes) {
			k.Proto = "other" // the protocol is past the captured bytes
		} else if (p.Proto == 6 || p.Proto == 17) && !p.Fragment && portsCaptured(&p, link) {
			lp, rp := p.SrcPort, p.DstPort
			if !sl {
				lp, rp = rp, lp
			}
			if rule.Listen[lp] || (lp < rule.EphemeralStart && !(rp < 1024 && lp >= 1024)) {
				k.Port, k.Side = lp, "in"
			} else {
				k.Port, k.Side = rp, "out"
			}
		}
		start := floorDiv(p.TS.UnixNano(), int64(window)) * int64(window)
		w := out[start]
		if w == nil {
			w = map[ServiceKey]*ServiceCounts{}
			out[start] = w
		}
		s := w[k]
		if s == nil {
			s = &ServiceCounts{Remotes: map[netip.Addr]Counts{}}
			w[k] = s
		}
		n := uint64(p.IPLen())
		rc := s.Remotes[remote]
		if sl {
			s.TxPackets++
			s.TxBytes += n
			rc.TxPackets++
			rc.TxBytes += n
		} else {
			s.RxPackets++
			s.RxBytes += n
			rc.RxPackets++
			rc.RxBytes += n
		}
		s.Remotes[remote] = rc
	}
	return out
}

// chainCaptured reports whether the captured IPv6 bytes (ipBytes from the
// fixed header on) hold every field needed to follow the extension
// headers to the protocol: the next-header and length bytes of
// hop-by-hop (at 40) and destination options (at 48), and the offset of a
// fragment header (its first 4 bytes).
func chainCaptured(p *Packet, ipBytes int) bool {
	off := 40
	if p.IPv6ExtHdrs {
		if ipBytes < off+2 || ipBytes < off+8+2 {
			return false
		}
		off += ipv6ExtLen
	}
	if p.Fragment && ipBytes < off+4 {
		return false
	}
	return true
}

// portsCaptured reports whether the captured bytes of p hold the two port
// fields of its transport header.
func portsCaptured(p *Packet, link uint16) bool {
	if p.Snap == 0 {
		return true
	}
	n := linkHeaderLen(link, len(p.VLANs))
	if p.is6() {
		n += 40
		if p.IPv6ExtHdrs {
			n += ipv6ExtLen
		}
	} else {
		n += 20
		if p.IPv4Options {
			n += ipv4OptLen
		}
	}
	return p.Snap >= n+4
}

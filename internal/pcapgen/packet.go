package pcapgen

import (
	"net/netip"
	"time"
)

// Format is the capture file format.
type Format int

const (
	PcapMicro Format = iota // classic pcap, microsecond timestamps
	PcapNano                // classic pcap, nanosecond timestamps (magic 0xa1b23c4d)
	PcapNG                  // pcapng, one section; see Write and WriteNG for interfaces
)

func (f Format) String() string {
	switch f {
	case PcapMicro:
		return "pcap"
	case PcapNano:
		return "pcapns"
	case PcapNG:
		return "pcapng"
	}
	return "Format(?)"
}

// Link values are pcap LINKTYPE numbers.
const (
	LinkEthernet  uint16 = 1
	LinkRaw       uint16 = 101
	LinkLinuxSLL  uint16 = 113
	LinkLinuxSLL2 uint16 = 276
)

// Shape is what kind of frame a Packet becomes.
type Shape int

const (
	Normal     Shape = iota // IPv4/IPv6 UDP/TCP/ICMP
	ARP                     // non-IP frame (Ethernet/SLL only)
	BadVersion              // IP version nibble 7: malformed
	ShortIP                 // frame cut before the IP header ends: malformed
	// ForgedLen is a normal frame whose IP length field claims the
	// maximum (IPv4 total length 65535, IPv6 payload length 65535), more
	// than the wire carried: oversize.
	ForgedLen
)

func (s Shape) String() string {
	switch s {
	case Normal:
		return "normal"
	case ARP:
		return "arp"
	case BadVersion:
		return "badversion"
	case ShortIP:
		return "shortip"
	case ForgedLen:
		return "forgedlen"
	}
	return "Shape(?)"
}

// Packet describes one frame. The description, not the bytes, is the source
// of truth for Truth.
type Packet struct {
	TS       time.Time
	Src, Dst netip.Addr // both IPv4 or both IPv6 (4in6 is treated as IPv4)
	// Proto is the IP protocol: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6 get a real
	// transport header; any other value (or ICMP in the wrong family) is
	// followed directly by Payload bytes.
	Proto            uint8
	SrcPort, DstPort uint16
	Payload          int      // transport payload bytes
	VLANs            []uint16 // 0, 1 (802.1Q) or 2 (QinQ: outer 0x88a8, inner 0x8100); Ethernet only. Read-only: Mixed shares these slices.
	IPv4Options      bool     // 8 bytes of NOP/EOL options -> IHL 7
	IPv6ExtHdrs      bool     // hop-by-hop (8 bytes) + destination options (8 bytes) before the transport
	// Fragment makes a non-first fragment: IPv4 offset>0, IPv6 a fragment
	// header (8 bytes) with offset>0. Either way no transport header follows,
	// only Payload bytes, because that is what a non-first fragment carries.
	Fragment bool
	// Snap 0 captures the whole frame; otherwise the captured length is
	// min(Snap, frame length) and the record's original length is the full
	// frame length.
	Snap  int
	Shape Shape
	// Outgoing selects the Linux cooked packet type (4 "outgoing" instead of
	// 0 "to us") on SLL/SLL2. It is an addition to the agreed API: Write has
	// no local addresses to infer direction from, and dstwatch must classify
	// by IP address anyway, so this only makes the link header realistic.
	Outgoing bool
	// EPBDirection writes the direction in a pcapng enhanced packet
	// block's epb_flags (Outgoing: outbound, else inbound); Write and
	// WriteFunc only. A received frame whose Src is local is spoofed where
	// the file carries direction (see TruthOn).
	EPBDirection bool
}

const (
	ipv4OptLen   = 8
	ipv6ExtLen   = 16 // hop-by-hop 8 + destination options 8
	ipv6FragLen  = 8
	fragOffset8  = 185 // 1480 bytes: where a second fragment of a 1500-MTU packet starts
	shortIPBytes = 10  // bytes of IP header kept by ShortIP
)

// is6 reports whether p serializes as IPv6. 4in6 addresses are IPv4
// packets: an IPv4 header cannot be IPv6-mapped on the wire.
func (p *Packet) is6() bool { return p.Src.Is6() && !p.Src.Is4In6() }

// transportLen is the transport header length the generator writes for
// proto in the given family.
func transportLen(proto uint8, v6 bool) int {
	switch {
	case proto == 6:
		return 20
	case proto == 17:
		return 8
	case proto == 1 && !v6, proto == 58 && v6:
		return 8 // ICMP echo: type, code, checksum, id, seq
	}
	return 0
}

// IPLen is the exact IP total length of the packet as serialized (IPv4:
// header incl. options + transport + payload; IPv6: 40 + extension headers +
// transport + payload). It is 0 for ARP. For BadVersion and ShortIP it is the
// length the header would carry; Truth does not count those frames.
func (p Packet) IPLen() int {
	if p.Shape == ARP {
		return 0
	}
	v6 := p.is6()
	n := 20
	if v6 {
		n = 40
		if p.IPv6ExtHdrs {
			n += ipv6ExtLen
		}
	} else if p.IPv4Options {
		n += ipv4OptLen
	}
	if p.Fragment {
		if v6 {
			n += ipv6FragLen
		}
		return n + p.Payload
	}
	return n + transportLen(p.Proto, v6) + p.Payload
}

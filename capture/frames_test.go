package capture

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built frames for tests: every byte is placed here, so a test's
// expectation never comes from the decoder under test.

var (
	macA = []byte{0x02, 0, 0, 0, 0, 0xa}
	macB = []byte{0x02, 0, 0, 0, 0, 0xb}
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ethHdr is an Ethernet header, with VLAN tags (TPID, TCI pairs) between
// the MACs and the final ethertype.
func ethHdr(ethertype uint16, tags ...uint16) []byte {
	h := cat(macA, macB)
	for _, t := range tags {
		h = append(h, be16(t)...)
	}
	return append(h, be16(ethertype)...)
}

func eth(ethertype uint16, payload []byte, tags ...uint16) []byte {
	return cat(ethHdr(ethertype, tags...), payload)
}

// sll is a Linux cooked v1 header: packet type, ARPHRD, address length,
// 8 address bytes, protocol.
func sll(proto uint16, payload []byte) []byte {
	h := cat(be16(0), be16(1), be16(6), macA, []byte{0, 0}, be16(proto))
	return cat(h, payload)
}

// sll2 is a Linux cooked v2 header: protocol, reserved, ifindex, ARPHRD,
// packet type, address length, 8 address bytes.
func sll2(proto uint16, payload []byte) []byte {
	h := cat(be16(proto), be16(0), []byte{0, 0, 0, 2}, be16(1), []byte{4, 6}, macA, []byte{0, 0})
	return cat(h, payload)
}

type v4opts struct {
	options  []byte // IPv4 options, a multiple of 4 bytes
	fragOff  uint16 // in 8-byte units
	more     bool
	ihl      int // override the IHL nibble when nonzero
	version  int // override the version nibble when nonzero
	totalLen int // override the total length when nonzero
}

// ipv4 builds an IPv4 packet with payload bytes of protocol 17.
func ipv4(src, dst string, payload int, o v4opts) []byte {
	hl := 20 + len(o.options)
	h := make([]byte, 20)
	ver, ihl := 4, hl/4
	if o.version != 0 {
		ver = o.version
	}
	if o.ihl != 0 {
		ihl = o.ihl
	}
	h[0] = byte(ver<<4 | ihl)
	tl := hl + payload
	if o.totalLen != 0 {
		tl = o.totalLen
	}
	binary.BigEndian.PutUint16(h[2:], uint16(tl))
	fo := o.fragOff
	if o.more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], fo)
	h[8], h[9] = 64, 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return cat(h, o.options, make([]byte, payload))
}

// ipv6 builds an IPv6 packet: ext is the extension header chain (already
// encoded), payload the upper-layer bytes.
func ipv6(src, dst string, next byte, ext []byte, payload int) []byte {
	h := make([]byte, 40)
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+payload))
	h[6], h[7] = next, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return cat(h, ext, make([]byte, payload))
}

// hopByHop is an 8-byte hop-by-hop header (PadN) followed by next.
func hopByHop(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

// fragHdr is an IPv6 fragment header followed by next.
func fragHdr(next byte, off uint16, more bool) []byte {
	v := off << 3
	if more {
		v |= 1
	}
	return cat([]byte{next, 0}, be16(v), []byte{0, 0, 0, 42})
}

func arp() []byte {
	b := cat(be16(1), be16(0x0800), []byte{6, 4}, be16(1), macA, []byte{198, 51, 100, 1}, make([]byte, 6), []byte{198, 51, 100, 2})
	return eth(0x0806, b)
}

func mapped(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func withByte(b []byte, i int, v byte) []byte {
	b = append([]byte(nil), b...)
	b[i] = v
	return b
}

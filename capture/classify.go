package capture

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// LinkType values are pcap LINKTYPE_* numbers, so a file's link type needs no
// translation.
type LinkType uint16

const (
	LinkEthernet  LinkType = 1
	LinkRaw       LinkType = 101 // raw IPv4/IPv6, version from first nibble
	LinkLinuxSLL  LinkType = 113
	LinkIPv4      LinkType = 228
	LinkIPv6      LinkType = 229
	LinkLinuxSLL2 LinkType = 276
)

func (l LinkType) supported() bool {
	switch l {
	case LinkEthernet, LinkRaw, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2:
		return true
	}
	return false
}

const (
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	ether8021Q = 0x8100
	ether8021A = 0x88a8 // QinQ outer tag (802.1ad)
	etherQinQ  = 0x9100 // pre-standard QinQ outer tag, still seen on old switches
)

// addr128 is an IPv6 address (IPv4 as IPv4-mapped) as two big-endian halves,
// so equality and prefix masks are two integer operations and the value can
// be a map key without hashing a netip.Addr.
type addr128 struct{ hi, lo uint64 }

func addrFrom16(b [16]byte) addr128 {
	return addr128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// v4mapped builds ::ffff:a.b.c.d from the 4 bytes at b.
func v4mapped(b []byte) addr128 {
	return addr128{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b))}
}

func (a addr128) isV4Mapped() bool { return a.hi == 0 && a.lo>>32 == 0xffff }

func (a addr128) mask(m addr128) addr128 { return addr128{a.hi & m.hi, a.lo & m.lo} }

func maskOf(bits int) addr128 {
	var m addr128
	switch {
	case bits >= 128:
		m = addr128{^uint64(0), ^uint64(0)}
	case bits > 64:
		m = addr128{^uint64(0), ^uint64(0) << (128 - bits)}
	case bits == 64:
		m = addr128{^uint64(0), 0}
	case bits > 0:
		m = addr128{^uint64(0) << (64 - bits), 0}
	}
	return m
}

// smallSet is the size up to which a linear scan beats a map lookup: a scan
// of 16 two-word compares is a few ns, a map lookup with a 16-byte key ~15 ns.
const smallSet = 16

// Classifier decides, per frame, whether it is egress, ingress or skipped, and
// who the remote is. It is immutable after NewClassifier, so several sources
// may share one.
//
// Cost per frame: local matching is a linear scan of at most 16 addresses or
// one map lookup; exclusion matching is a linear scan of at most 16 prefixes,
// else one map lookup for exact addresses plus one per distinct prefix length
// of the remote's family (at most 32 or 128, in practice a handful), whatever
// the number of prefixes.
type Classifier struct {
	localAddrs []netip.Addr
	localList  []addr128            // used when len <= smallSet
	localSet   map[addr128]struct{} // used above smallSet

	// Exclusions. Small lists are scanned; large ones are split into exact
	// host addresses (/32, /128) and one set per other prefix length, so 10k
	// prefixes cost the same per frame as 20.
	exclList  []prefix128
	exclHosts map[addr128]struct{}
	exclByLen []exclBucket // longest prefix first; order does not matter for a yes/no answer
	exclAny   bool

	svc *Services // listening ports and ephemeral range; nil: defaults (ports.go)
}

// prefix128 is a prefix in the 128-bit space; v4 marks an IPv4 prefix. As in
// netip, an IPv6 prefix never matches an IPv4 remote even when its bits
// would (::/0 does not exclude 192.0.2.1).
type prefix128 struct {
	addr, mask addr128
	v4         bool
}

// exclBucket holds the prefixes of one length and family, so one masked
// lookup answers for all of them.
type exclBucket struct {
	mask addr128
	v4   bool
	set  map[addr128]struct{}
}

// NewClassifier builds a Classifier. IPv4 addresses and prefixes may be given
// plain or IPv4-mapped; zones are ignored; invalid entries are skipped.
func NewClassifier(local []netip.Addr, exclude []netip.Prefix) *Classifier {
	c := &Classifier{}
	seen := map[addr128]bool{}
	for _, a := range local {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap().WithZone("")
		k := addrFrom16(a.As16())
		if seen[k] {
			continue
		}
		seen[k] = true
		c.localAddrs = append(c.localAddrs, a)
		c.localList = append(c.localList, k)
	}
	if len(c.localList) > smallSet {
		c.localSet = make(map[addr128]struct{}, len(c.localList))
		for _, k := range c.localList {
			c.localSet[k] = struct{}{}
		}
		c.localList = nil
	}

	var prefixes []prefix128
	pseen := map[prefix128]bool{}
	for _, p := range exclude {
		if !p.IsValid() {
			continue
		}
		bits := p.Bits()
		a := p.Addr().WithZone("")
		// An IPv4-mapped prefix of at least /96 is an IPv4 prefix
		// written the IPv6 way.
		v4 := a.Is4() || a.Is4In6() && bits >= 96
		if a.Is4() {
			bits += 96
		}
		m := maskOf(bits)
		k := prefix128{addrFrom16(a.As16()).mask(m), m, v4}
		if pseen[k] {
			continue
		}
		pseen[k] = true
		prefixes = append(prefixes, k)
	}
	c.exclAny = len(prefixes) > 0
	if len(prefixes) <= smallSet {
		c.exclList = prefixes
		return c
	}
	full := maskOf(128)
	type bucketKey struct {
		mask addr128
		v4   bool
	}
	buckets := map[bucketKey]map[addr128]struct{}{}
	for _, p := range prefixes {
		if p.mask == full {
			if c.exclHosts == nil {
				c.exclHosts = map[addr128]struct{}{}
			}
			c.exclHosts[p.addr] = struct{}{}
			continue
		}
		k := bucketKey{p.mask, p.v4}
		s := buckets[k]
		if s == nil {
			s = map[addr128]struct{}{}
			buckets[k] = s
		}
		s[p.addr] = struct{}{}
	}
	for k, s := range buckets {
		c.exclByLen = append(c.exclByLen, exclBucket{mask: k.mask, v4: k.v4, set: s})
	}
	slices.SortFunc(c.exclByLen, func(a, b exclBucket) int {
		// Longer masks first: more specific prefixes tend to be the ones
		// users list in bulk (single hosts, /24s).
		if a.mask.hi != b.mask.hi {
			return cmpDesc(a.mask.hi, b.mask.hi)
		}
		return cmpDesc(a.mask.lo, b.mask.lo)
	})
	return c
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// Local returns the local addresses the Classifier matches, IPv4 unmapped.
func (c *Classifier) Local() []netip.Addr { return slices.Clone(c.localAddrs) }

func (c *Classifier) excluded(a addr128) bool {
	if !c.exclAny {
		return false
	}
	v4 := a.isV4Mapped()
	for i := range c.exclList {
		if p := &c.exclList[i]; p.v4 == v4 && a.mask(p.mask) == p.addr {
			return true
		}
	}
	if c.exclHosts != nil {
		if _, ok := c.exclHosts[a]; ok {
			return true
		}
	}
	for i := range c.exclByLen {
		b := &c.exclByLen[i]
		if b.v4 != v4 {
			continue
		}
		if _, ok := b.set[a.mask(b.mask)]; ok {
			return true
		}
	}
	return false
}

// Classify decodes frame (as captured, possibly truncated by the snap length)
// and fills ev.Kind, ev.Len and ev.Remote; ev.TS is left to the caller. It
// never allocates and never reads past frame.
//
// wire is the frame's length on the wire, link header included (live: the
// ring's frame length; files: the record's original length). An IP length
// larger than what the wire carried after the link header is a forged
// header, never a real packet (the host's stack drops it too): it is
// SkipOversize. A wire length below the captured one is impossible and is
// taken as the captured length.
//
// dir is the direction the source saw (DirUnknown when it cannot tell; on
// SLL/SLL2 the cooked header's packet type is used then). A frame received
// from the wire whose source is a local address was not sent by this host:
// it is SkipSpoofed, not egress.
//
// Len is the IP total length from the header, not the captured length, so a
// snap length that keeps the fixed IP header still counts the whole packet.
// Len is also set for transit, local, excluded and spoofed frames (the header
// was valid), and is 0 for non-IP, malformed and oversize ones; Remote is
// zero for every skipped frame.
func (c *Classifier) Classify(link LinkType, frame []byte, wire int, dir Dir, ev *Event) {
	ev.Remote = [16]byte{}
	ev.Len = 0
	ev.Port, ev.Svc = 0, 0
	var off int
	var et uint16
	switch link {
	case LinkEthernet:
		if len(frame) < 14 {
			ev.Kind = SkipMalformed
			return
		}
		et, off = binary.BigEndian.Uint16(frame[12:]), 14
	case LinkLinuxSLL:
		if len(frame) < 16 {
			ev.Kind = SkipMalformed
			return
		}
		et, off = binary.BigEndian.Uint16(frame[14:]), 16
		if dir == DirUnknown {
			dir = cookedDir(binary.BigEndian.Uint16(frame[0:]), binary.BigEndian.Uint16(frame[2:]))
		}
	case LinkLinuxSLL2:
		if len(frame) < 20 {
			ev.Kind = SkipMalformed
			return
		}
		et, off = binary.BigEndian.Uint16(frame[0:]), 20
		if dir == DirUnknown {
			dir = cookedDir(uint16(frame[10]), binary.BigEndian.Uint16(frame[8:]))
		}
	case LinkRaw:
		if len(frame) < 1 {
			ev.Kind = SkipMalformed
			return
		}
		switch frame[0] >> 4 {
		case 4:
			c.ipv4(frame, ipRoom(frame, wire, 0), dir, ev)
		case 6:
			c.ipv6(frame, ipRoom(frame, wire, 0), dir, ev)
		default:
			ev.Kind = SkipMalformed
		}
		return
	case LinkIPv4:
		c.ipv4(frame, ipRoom(frame, wire, 0), dir, ev)
		return
	case LinkIPv6:
		c.ipv6(frame, ipRoom(frame, wire, 0), dir, ev)
		return
	default:
		// Not a link type we can find IP in; OpenFile and OpenLive refuse
		// these, so only a caller passing garbage gets here.
		ev.Kind = SkipNonIP
		return
	}
	// Any number of stacked tags: QinQ is two, but nothing stops more.
	for et == ether8021Q || et == ether8021A || et == etherQinQ {
		if len(frame) < off+4 {
			ev.Kind = SkipMalformed
			return
		}
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += 4
	}
	switch et {
	case etherIPv4:
		c.ipv4(frame[off:], ipRoom(frame, wire, off), dir, ev)
	case etherIPv6:
		c.ipv6(frame[off:], ipRoom(frame, wire, off), dir, ev)
	default:
		ev.Kind = SkipNonIP
	}
}

// ipRoom is how many bytes the wire carried from the IP header on: the wire
// length less the link header and tags. Ethernet padding and a trailing FCS
// only make it larger than the IP length, which is fine.
func ipRoom(frame []byte, wire, off int) uint32 {
	return uint32(max(wire, len(frame)) - off)
}

// Linux cooked packet types (sll_pkttype) and the loopback device type.
const (
	pktHost      = 0
	pktBroadcast = 1
	pktMulticast = 2
	pktOtherHost = 3
	pktOutgoing  = 4
	hatypeLoop   = arphrdLoopback
)

// cookedDir reads the direction of a Linux cooked header. A loopback
// device shows every packet twice, once outgoing and once received, so a
// received copy with a local source is the host's own packet, not a spoofed
// one: loopback frames have no usable direction.
func cookedDir(pkttype, hatype uint16) Dir {
	if hatype == hatypeLoop {
		return DirUnknown
	}
	return pktDir(pkttype)
}

// pktDir maps a packet type to a direction. PACKET_LOOPBACK (multicast the
// host sent, looped back) and unknown values decide nothing.
func pktDir(pkttype uint16) Dir {
	switch pkttype {
	case pktHost, pktBroadcast, pktMulticast, pktOtherHost:
		return DirIn
	case pktOutgoing:
		return DirOut
	}
	return DirUnknown
}

func (c *Classifier) ipv4(ip []byte, room uint32, dir Dir, ev *Event) {
	// Only the fixed 20 bytes are needed: options and the payload may be cut
	// by the snap length without changing the count. A later fragment has the
	// same addresses and its own total length, so it needs no special case.
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[0]&0x0f < 5 {
		ev.Kind = SkipMalformed
		return
	}
	// A total length below the header length is invalid on the wire, but
	// Linux BIG TCP (>64 KiB GSO packets) leaves it 0 in what packet sockets
	// see; counting the field keeps the frame and is exact for everything
	// else.
	ev.Len = uint32(binary.BigEndian.Uint16(ip[2:]))
	if ev.Len > room {
		ev.Len = 0
		ev.Kind = SkipOversize
		return
	}
	c.decide(v4mapped(ip[12:]), v4mapped(ip[16:]), dir, ev)
	if ev.Kind <= Ingress {
		c.service4(ev, ip)
	}
}

func (c *Classifier) ipv6(ip []byte, room uint32, dir Dir, ev *Event) {
	// Extension headers (hop-by-hop, fragment, ...) sit after the fixed 40
	// bytes and are included in the payload length, so they need no parsing.
	// A jumbogram (payload length 0, real length in a hop-by-hop option)
	// counts as 40 bytes: it cannot occur on a link with a normal MTU, and
	// BIG TCP jumbograms are rare enough not to justify parsing options.
	if len(ip) < 40 || ip[0]>>4 != 6 {
		ev.Kind = SkipMalformed
		return
	}
	ev.Len = 40 + uint32(binary.BigEndian.Uint16(ip[4:]))
	if ev.Len > room {
		ev.Len = 0
		ev.Kind = SkipOversize
		return
	}
	src := addr128{binary.BigEndian.Uint64(ip[8:]), binary.BigEndian.Uint64(ip[16:])}
	dst := addr128{binary.BigEndian.Uint64(ip[24:]), binary.BigEndian.Uint64(ip[32:])}
	// IPv4-mapped addresses never appear in a valid IPv6 header (RFC 4291
	// 2.5.5.2); they would alias an IPv4 local or remote, since IPv4 is
	// kept mapped, so such a packet is malformed rather than miscounted.
	if src.isV4Mapped() || dst.isV4Mapped() {
		ev.Len = 0
		ev.Kind = SkipMalformed
		return
	}
	c.decide(src, dst, dir, ev)
	if ev.Kind <= Ingress {
		c.service6(ev, ip)
	}
}

func (c *Classifier) decide(src, dst addr128, dir Dir, ev *Event) {
	var srcLocal, dstLocal bool
	if c.localSet != nil {
		_, srcLocal = c.localSet[src]
		_, dstLocal = c.localSet[dst]
	} else {
		// One pass for both sides: the list is short and this is the
		// hottest loop.
		for _, l := range c.localList {
			srcLocal = srcLocal || l == src
			dstLocal = dstLocal || l == dst
		}
	}
	var remote addr128
	switch {
	case srcLocal && dir == DirIn:
		// The host did not send it, whatever the header says: counting it
		// as egress would let anyone on the wire forge this host's
		// uploads.
		ev.Kind = SkipSpoofed
		return
	case srcLocal && dstLocal:
		ev.Kind = SkipLocal
		return
	case srcLocal:
		ev.Kind, remote = Egress, dst
	case dstLocal:
		ev.Kind, remote = Ingress, src
	default:
		ev.Kind = SkipTransit
		return
	}
	if c.excluded(remote) {
		ev.Kind = SkipExcluded
		return
	}
	// Written in place: building a [16]byte and copying it costs a store
	// forwarding stall (two 8-byte stores read back as one 16-byte load).
	binary.BigEndian.PutUint64(ev.Remote[:8], remote.hi)
	binary.BigEndian.PutUint64(ev.Remote[8:], remote.lo)
}

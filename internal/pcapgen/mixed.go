package pcapgen

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Shared read-only VLAN tag lists: Mixed hands the same slices to many
// packets so a 2M-packet scenario does not allocate one slice per tag.
var (
	vlanSingle = [][]uint16{{10}, {20}, {4094}}
	vlanQinQ   = [][]uint16{{100, 10}, {200, 20}}
)

// Mixed returns a deterministic scenario of n packets from start over span,
// between the local addresses and `remotes` distinct remote addresses from
// 198.51.100.0/24, 203.0.113.0/24, 192.0.2.0/24 and 2001:db8::/32. It mixes
// directions, families, protocols, VLAN/QinQ (Ethernet only), IPv4 options,
// IPv6 extension headers, fragments, snap-truncated frames (Snap 64),
// transit and both-local packets, ARP (not on raw IP), BadVersion and
// ShortIP frames. Timestamps strictly increase when span >= 2n ns.
//
// Remotes only exist in families that have a local address (a remote of
// another family could never be tallied); with IPv4-only locals the pool is
// capped at the 762 usable IPv4 documentation addresses (less any that are
// local). With no locals at all every IP packet is transit.
func Mixed(seed int64, n, remotes int, local []netip.Addr, start time.Time, span time.Duration, link uint16) []Packet {
	next := MixedFunc(seed, n, remotes, local, start, span, link)
	pkts := make([]Packet, n)
	for i := range pkts {
		pkts[i] = next(i)
	}
	return pkts
}

// MixedFunc is Mixed as a generator for WriteFunc: next(i) returns the same
// packet as Mixed(...)[i], provided it is called for i = 0, 1, 2, ... in
// order (the random stream is consumed sequentially).
func MixedFunc(seed int64, n, remotes int, local []netip.Addr, start time.Time, span time.Duration, link uint16) func(i int) Packet {
	m := newMixer(seed, n, remotes, local, start, span, link)
	return m.next
}

type mixer struct {
	rng              *rand.Rand
	n                int
	start            time.Time
	step, rem, span  int64
	link             uint16
	local4, local6   []netip.Addr
	pool             []netip.Addr // interleaved v4/v6, so heavy hitters span both
	pool4, pool6     []netip.Addr
	sweep            int
	hasLocal, hasARP bool
	scatter          bool // ScanFunc: protocol, service and client port random per packet
}

func newMixer(seed int64, n, remotes int, local []netip.Addr, start time.Time, span time.Duration, link uint16) *mixer {
	m := &mixer{
		rng:    rand.New(rand.NewPCG(uint64(seed), 0x6473747761746368)), // "dstwatch"
		n:      n,
		start:  start,
		span:   int64(span),
		link:   link,
		hasARP: link != LinkRaw,
	}
	if n > 0 {
		m.step, m.rem = int64(span)/int64(n), int64(span)%int64(n)
	}
	isLocal := make(map[netip.Addr]bool, len(local))
	for _, a := range local {
		a = a.Unmap()
		isLocal[a] = true
		if a.Is4() {
			m.local4 = append(m.local4, a)
		} else if a.Is6() {
			m.local6 = append(m.local6, a)
		}
	}
	m.hasLocal = len(m.local4)+len(m.local6) > 0
	use4 := len(m.local4) > 0 || !m.hasLocal
	use6 := len(m.local6) > 0 || !m.hasLocal

	if remotes < 1 {
		remotes = 1
	}
	want4 := 0
	if use4 {
		want4 = remotes
		if use6 {
			want4 = remotes / 2
		}
	}
	// Host order first, range second, so even a small pool touches all
	// three IPv4 documentation ranges.
	bases := [][3]byte{{198, 51, 100}, {203, 0, 113}, {192, 0, 2}}
	for h := 1; h <= 254 && len(m.pool4) < want4; h++ {
		for _, b := range bases {
			a := netip.AddrFrom4([4]byte{b[0], b[1], b[2], byte(h)})
			if !isLocal[a] && len(m.pool4) < want4 {
				m.pool4 = append(m.pool4, a)
			}
		}
	}
	if use6 {
		// 2001:db8:XXXX:XXXX::1 with a non-zero index: spread across /64s
		// like real clients, and never equal to the usual 2001:db8::N local.
		for i := uint32(1); len(m.pool4)+len(m.pool6) < remotes; i++ {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			binary.BigEndian.PutUint32(b[4:], i*2654435761) // Knuth hash: bijective, scattered
			b[15] = 1
			if a := netip.AddrFrom16(b); !isLocal[a] {
				m.pool6 = append(m.pool6, a)
			}
		}
	}
	for i := 0; i < len(m.pool4) || i < len(m.pool6); i++ {
		if i < len(m.pool4) {
			m.pool = append(m.pool, m.pool4[i])
		}
		if i < len(m.pool6) {
			m.pool = append(m.pool, m.pool6[i])
		}
	}
	return m
}

// pct reports true with probability x/1000.
func (m *mixer) pct(x int) bool { return m.rng.IntN(1000) < x }

// remote picks a pool address: a third sweep the pool in order (so every
// remote appears once enough packets exist), a third are uniform, a third go
// to ten heavy hitters (real traffic is skewed).
func (m *mixer) remote() netip.Addr {
	switch m.rng.IntN(3) {
	case 0:
		a := m.pool[m.sweep%len(m.pool)]
		m.sweep++
		return a
	case 1:
		return m.pool[m.rng.IntN(len(m.pool))]
	}
	return m.pool[m.rng.IntN(min(10, len(m.pool)))]
}

func (m *mixer) pick(as []netip.Addr) netip.Addr { return as[m.rng.IntN(len(as))] }

func (m *mixer) localFor(remote netip.Addr) netip.Addr {
	if remote.Is4() {
		return m.pick(m.local4)
	}
	return m.pick(m.local6)
}

func (m *mixer) next(i int) Packet {
	ts := int64(i)*m.step + int64(i)*m.rem/int64(m.n)
	if m.step >= 2 {
		// Jitter below half a step keeps timestamps strictly increasing and
		// gives them sub-microsecond digits, so ns precision is exercised.
		ts += m.rng.Int64N(m.step / 2)
	}
	p := Packet{TS: m.start.Add(time.Duration(ts))}

	r := m.rng.IntN(1000)
	kind := "tallied"
	switch {
	case r < 30 && m.hasARP:
		kind = "arp"
	case r < 30:
	case r < 40:
		kind = "badversion"
	case r < 50:
		kind = "shortip"
	case r < 80:
		kind = "transit"
	case r < 100:
		kind = "local"
	}
	addrs := kind
	if !m.hasLocal && kind != "arp" {
		addrs = "transit"
		if kind == "tallied" || kind == "local" {
			kind = "transit"
		}
	}

	switch addrs {
	case "arp":
		p.Shape = ARP
		if len(m.local4) > 0 && len(m.pool4) > 0 {
			p.Src, p.Dst = m.pick(m.local4), m.pick(m.pool4)
		}
		p.Outgoing = m.rng.IntN(2) == 0
		if m.link == LinkEthernet && m.pct(100) {
			p.VLANs = vlanSingle[m.rng.IntN(len(vlanSingle))]
		}
		return p
	case "transit":
		fam := m.pool4
		if len(fam) == 0 || (len(m.pool6) > 0 && m.rng.IntN(2) == 0) {
			fam = m.pool6
		}
		ia, ib := m.rng.IntN(len(fam)), 0
		if len(fam) > 1 {
			ib = (ia + 1 + m.rng.IntN(len(fam)-1)) % len(fam) // distinct from ia
		}
		p.Src, p.Dst = fam[ia], fam[ib]
	case "local":
		if len(m.local4) > 0 && (len(m.local6) == 0 || m.rng.IntN(2) == 0) {
			p.Src, p.Dst = m.pick(m.local4), m.pick(m.local4)
		} else {
			p.Src, p.Dst = m.pick(m.local6), m.pick(m.local6)
		}
		p.Outgoing = true
	default: // tallied, and the malformed shapes, which look like tallied traffic
		rem := m.remote()
		loc := m.localFor(rem)
		if m.rng.IntN(2) == 0 {
			p.Src, p.Dst, p.Outgoing = loc, rem, true
		} else {
			p.Src, p.Dst = rem, loc
		}
	}
	switch kind {
	case "badversion":
		p.Shape = BadVersion
	case "shortip":
		p.Shape = ShortIP
	}
	m.fill(&p)
	return p
}

// fill chooses protocol, ports, size and the decoding hazards for an IP packet.
//
// 49 packets in 50 of a remote use that remote's own protocol and service
// (a hash of its address), the 50th a random one: real peers mostly speak
// one service with a host (a proxy's upstream on 443, a client on 22), and
// per-service tallies should be measured on that, not on every remote
// using every service.
func (m *mixer) fill(p *Packet) {
	v6 := p.Src.Is6()
	remote := p.Src
	if p.Outgoing {
		remote = p.Dst
	}
	h := fnv.New32a()
	h.Write(remote.AsSlice())
	own := h.Sum32()
	pick := func(n int) int { return int(own % uint32(n)) }
	if m.scatter || m.rng.IntN(50) == 0 {
		pick = m.rng.IntN
	}
	switch r := pick(100); {
	case r < 45:
		p.Proto = 6
	case r < 85:
		p.Proto = 17
	case v6:
		p.Proto = 58
	default:
		p.Proto = 1
	}
	own /= 100 // the service comes from other digits than the protocol
	if p.Proto != 1 && p.Proto != 58 {
		service := [...]uint16{443, 80, 53, 22, 123, 3478, 8443}[pick(7)]
		eph := uint16(32768 + m.rng.IntN(28232))
		if m.scatter {
			service = [...]uint16{443, 80, 53, 22, 123}[m.rng.IntN(5)]
			eph = uint16(1024 + m.rng.IntN(60000))
		}
		if p.Outgoing {
			p.SrcPort, p.DstPort = eph, service
		} else {
			p.SrcPort, p.DstPort = service, eph
		}
	} else {
		p.SrcPort = uint16(m.rng.IntN(65536))
	}
	// Mostly small packets (ACKs, DNS, keepalives) with a tail of full-MTU
	// ones. The mean payload (~300 bytes) is kept below real links' on purpose: the
	// benchmark's 2M-frame files are then ~0.7 GB, and file I/O, not
	// generation, is what bounds the time to write them.
	switch r := m.rng.IntN(100); {
	case r < 60:
		p.Payload = m.rng.IntN(100)
	case r < 90:
		p.Payload = 100 + m.rng.IntN(500)
	case r < 99:
		p.Payload = 1200 + m.rng.IntN(200)
	default:
		// Larger than any MTU: GRO/TSO hand the capture such packets.
		p.Payload = 1500 + m.rng.IntN(7500)
	}
	if m.link == LinkEthernet {
		switch r := m.rng.IntN(100); {
		case r < 8:
			p.VLANs = vlanSingle[m.rng.IntN(len(vlanSingle))]
		case r < 12:
			p.VLANs = vlanQinQ[m.rng.IntN(len(vlanQinQ))]
		}
	}
	if v6 {
		p.IPv6ExtHdrs = m.pct(50)
	} else {
		p.IPv4Options = m.pct(50)
	}
	p.Fragment = m.pct(40)
	if m.pct(50) {
		p.Snap = 64
	}
}

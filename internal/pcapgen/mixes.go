package pcapgen

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// ProxyFunc is a generator for WriteFunc of a proxy's day: Mixed's traffic
// with `remotes` busy remotes (each mostly one service), and one frame in
// four a DNS query or answer between a local address and one of four
// resolvers, from a random local port (1024-65535) to port 53, as a
// resolver library picks them. The resolvers are 192.0.2.53-56 when a
// local IPv4 address is given, else 2001:db8:5353::1-4. Like MixedFunc,
// next must be called for i = 0, 1, 2, ... in order.
func ProxyFunc(seed int64, n, remotes int, local []netip.Addr, start time.Time, span time.Duration, link uint16) func(i int) Packet {
	m := newMixer(seed, n, remotes, local, start, span, link)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x70726f7879)) // "proxy"
	var resolvers []netip.Addr
	for k := range 4 {
		if len(m.local4) > 0 {
			resolvers = append(resolvers, netip.AddrFrom4([4]byte{192, 0, 2, byte(53 + k)}))
		} else {
			resolvers = append(resolvers, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x53, 0x53, 15: byte(1 + k)}))
		}
	}
	return func(i int) Packet {
		p := m.next(i) // also the timestamp, and the other three in four
		if rng.IntN(4) != 0 || !m.hasLocal {
			return p
		}
		res := resolvers[rng.IntN(len(resolvers))]
		loc := m.localFor(res)
		q := Packet{TS: p.TS, Proto: 17, Payload: 20 + rng.IntN(200)}
		eph := uint16(1024 + rng.IntN(64512))
		if rng.IntN(2) == 0 {
			q.Src, q.Dst, q.Outgoing, q.SrcPort, q.DstPort = loc, res, true, eph, 53
		} else {
			q.Src, q.Dst, q.SrcPort, q.DstPort = res, loc, 53, eph
		}
		return q
	}
}

// ScanFunc is Mixed with ports that vary per packet, as the traffic of
// browsers and scanners does: every TCP or UDP packet picks its protocol
// and one of five well-known services (443, 80, 53, 22, 123) at random,
// and its client port anywhere in 1024-61023, so a remote uses several
// services in one window (a (service, remote) pair each) rather than one.
// Like MixedFunc, next must be called for i = 0, 1, 2, ... in order.
func ScanFunc(seed int64, n, remotes int, local []netip.Addr, start time.Time, span time.Duration, link uint16) func(i int) Packet {
	m := newMixer(seed, n, remotes, local, start, span, link)
	m.scatter = true
	return m.next
}

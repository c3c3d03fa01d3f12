package pcapgen

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"time"
)

// HostileFunc is a generator for WriteFunc of what a public host receives
// on a bad day: of n frames, one in five is Mixed's ordinary traffic (with
// `remotes` remotes), the others are spoofed probes, each from a source
// address not used before (until `spoofed` of them were used, then they
// repeat in the same order), to a random TCP or UDP port of a local
// address from a random source port, 40 to 60 bytes: a scan of random
// ports from millions of distinct remotes. Spoofed sources are IPv6
// (2001:db8::/32) when a local IPv6 address is given, else IPv4 from the
// documentation ranges (at most 762 distinct). Like MixedFunc, next must be
// called for i = 0, 1, 2, ... in order.
func HostileFunc(seed int64, n, remotes, spoofed int, local []netip.Addr, start time.Time, span time.Duration, link uint16) func(i int) Packet {
	m := newMixer(seed, n, remotes, local, start, span, link)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x686f7374696c65)) // "hostile"
	spoofed = max(spoofed, 1)
	k := 0
	return func(i int) Packet {
		p := m.next(i) // also the timestamp, and the ordinary fifth
		if rng.IntN(5) == 0 || !m.hasLocal {
			return p
		}
		q := Packet{TS: p.TS, Payload: rng.IntN(20)}
		if len(m.local6) > 0 {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			b[4], b[5] = 0xff, 0xff // apart from Mixed's pool, which uses 2001:db8:XXXX:XXXX::1
			// An odd multiplier is a bijection of 64-bit numbers: every
			// index is its own address, scattered over the /32.
			binary.BigEndian.PutUint64(b[8:], uint64(k%spoofed+1)*0x9e3779b97f4a7c15)
			q.Src, q.Dst = netip.AddrFrom16(b), m.pick(m.local6)
		} else {
			q.Src = m.pool4[k%spoofed%len(m.pool4)]
			q.Dst = m.pick(m.local4)
		}
		k++
		q.Proto = 6
		if rng.IntN(3) == 0 {
			q.Proto = 17
		}
		q.SrcPort, q.DstPort = uint16(1024+rng.IntN(64512)), uint16(1+rng.IntN(65535))
		return q
	}
}

package capture

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"unsafe"
)

const (
	local4  = "198.51.100.1"
	local4b = "198.51.100.7"
	local6  = "2001:db8:1::1"
	far4    = "203.0.113.9"
	far4b   = "203.0.113.10"
	far6    = "2001:db8:2::9"
	excl4   = "192.0.2.5"     // excluded exactly
	excl4p  = "192.0.2.130"   // in excluded 192.0.2.128/25
	excl6   = "2001:db8:3::5" // excluded exactly
	excl6p  = "2001:db8:4:0:1::1"
)

func testClassifier() *Classifier {
	return NewClassifier(
		[]netip.Addr{netip.MustParseAddr(local4), netip.MustParseAddr(local4b), netip.MustParseAddr(local6)},
		[]netip.Prefix{
			netip.MustParsePrefix(excl4 + "/32"),
			netip.MustParsePrefix("192.0.2.128/25"),
			netip.MustParsePrefix(excl6 + "/128"),
			netip.MustParsePrefix("2001:db8:4::/48"),
		})
}

type classifyCase struct {
	name   string
	link   LinkType
	frame  []byte
	kind   Kind
	len    uint32
	remote string // "" = zero
	wire   int    // length on the wire; 0: the frame was captured whole
}

func classifyCases() []classifyCase {
	udp4 := ipv4(local4, far4, 100, v4opts{})    // 120 bytes
	udp4in := ipv4(far4, local4, 1000, v4opts{}) // 1020
	udp6 := ipv6(local6, far6, 17, nil, 200)     // 240
	udp6in := ipv6(far6, local6, 17, nil, 8)     // 48
	full4 := eth(etherIPv4, ipv4(local4, far4, 1400, v4opts{}))
	full6 := eth(etherIPv6, ipv6(far6, local6, 6, nil, 1400))
	return []classifyCase{
		{"eth ipv4 egress", LinkEthernet, eth(etherIPv4, udp4), Egress, 120, far4, 0},
		{"eth ipv4 ingress", LinkEthernet, eth(etherIPv4, udp4in), Ingress, 1020, far4, 0},
		{"eth ipv6 egress", LinkEthernet, eth(etherIPv6, udp6), Egress, 240, far6, 0},
		{"eth ipv6 ingress", LinkEthernet, eth(etherIPv6, udp6in), Ingress, 48, far6, 0},
		{"eth ipv4 second local address", LinkEthernet, eth(etherIPv4, ipv4(far4, local4b, 12, v4opts{})), Ingress, 32, far4, 0},
		{"eth trailer padding ignored", LinkEthernet, cat(eth(etherIPv4, ipv4(far4, local4, 0, v4opts{})), make([]byte, 26)), Ingress, 20, far4, 0},

		{"vlan ipv4", LinkEthernet, eth(etherIPv4, udp4, ether8021Q, 100), Egress, 120, far4, 0},
		{"vlan ipv6", LinkEthernet, eth(etherIPv6, udp6in, ether8021Q, 7), Ingress, 48, far6, 0},
		{"qinq 88a8 ipv4", LinkEthernet, eth(etherIPv4, udp4in, ether8021A, 10, ether8021Q, 20), Ingress, 1020, far4, 0},
		{"qinq 9100 ipv6", LinkEthernet, eth(etherIPv6, udp6, etherQinQ, 10, ether8021Q, 20), Egress, 240, far6, 0},
		{"triple tag", LinkEthernet, eth(etherIPv4, udp4, ether8021A, 1, ether8021Q, 2, ether8021Q, 3), Egress, 120, far4, 0},
		{"vlan non-ip", LinkEthernet, eth(0x0806, make([]byte, 28), ether8021Q, 5), SkipNonIP, 0, "", 0},
		{"vlan tag cut", LinkEthernet, cat(ethHdr(ether8021Q)[:14], []byte{0, 5}), SkipMalformed, 0, "", 0},

		{"ipv4 options", LinkEthernet, eth(etherIPv4, ipv4(local4, far4, 50, v4opts{options: []byte{0x94, 4, 0, 0, 1, 1, 1, 0}})), Egress, 78, far4, 0},
		{"ipv4 second fragment", LinkEthernet, eth(etherIPv4, ipv4(far4, local4, 600, v4opts{fragOff: 185})), Ingress, 620, far4, 0},
		{"ipv4 first fragment", LinkEthernet, eth(etherIPv4, ipv4(far4, local4, 1480, v4opts{more: true})), Ingress, 1500, far4, 0},
		{"ipv6 hop-by-hop + fragment", LinkEthernet, eth(etherIPv6, ipv6(local6, far6, 0, cat(hopByHop(44), fragHdr(17, 0, true)), 1000)), Egress, 1056, far6, 0},
		{"ipv6 second fragment", LinkEthernet, eth(etherIPv6, ipv6(far6, local6, 44, fragHdr(17, 129, false), 300)), Ingress, 348, far6, 0},
		{"ipv6 jumbogram counts 40", LinkEthernet, eth(etherIPv6, ipv6(far6, local6, 0, nil, 0)), Ingress, 40, far6, 0},

		// A small snap length keeps the fixed IP header: the full length counts.
		{"snap 34 ipv4", LinkEthernet, full4[:34], Egress, 1420, far4, len(full4)},
		{"snap 54 ipv6", LinkEthernet, full6[:54], Ingress, 1440, far6, len(full6)},
		{"snap 33 ipv4", LinkEthernet, full4[:33], SkipMalformed, 0, "", 0},
		{"snap 53 ipv6", LinkEthernet, full6[:53], SkipMalformed, 0, "", 0},
		{"snap 13 ethernet", LinkEthernet, full4[:13], SkipMalformed, 0, "", 0},
		{"empty frame", LinkEthernet, nil, SkipMalformed, 0, "", 0},

		{"arp", LinkEthernet, arp(), SkipNonIP, 0, "", 0},
		{"802.3 llc", LinkEthernet, eth(46, make([]byte, 46)), SkipNonIP, 0, "", 0},
		{"ipv4 ethertype, version 6", LinkEthernet, eth(etherIPv4, udp6), SkipMalformed, 0, "", 0},
		{"ipv6 ethertype, version 4", LinkEthernet, eth(etherIPv6, cat(udp4, make([]byte, 40))), SkipMalformed, 0, "", 0},
		{"bad version 5", LinkEthernet, eth(etherIPv4, ipv4(local4, far4, 10, v4opts{version: 5})), SkipMalformed, 0, "", 0},
		{"ihl 4", LinkEthernet, eth(etherIPv4, ipv4(local4, far4, 10, v4opts{ihl: 4})), SkipMalformed, 0, "", 0},
		{"ihl 0", LinkEthernet, withByte(eth(etherIPv4, ipv4(local4, far4, 10, v4opts{})), 14, 0x40), SkipMalformed, 0, "", 0},
		{"ihl 15 beyond capture", LinkEthernet, eth(etherIPv4, ipv4(local4, far4, 10, v4opts{ihl: 15})), Egress, 30, far4, 0},

		{"both local v4", LinkEthernet, eth(etherIPv4, ipv4(local4, local4b, 10, v4opts{})), SkipLocal, 30, "", 0},
		{"same local v4", LinkEthernet, eth(etherIPv4, ipv4(local4, local4, 10, v4opts{})), SkipLocal, 30, "", 0},
		{"both local v6", LinkEthernet, eth(etherIPv6, ipv6(local6, local6, 17, nil, 10)), SkipLocal, 50, "", 0},
		{"transit v4", LinkEthernet, eth(etherIPv4, ipv4(far4, far4b, 10, v4opts{})), SkipTransit, 30, "", 0},
		{"transit v6", LinkEthernet, eth(etherIPv6, ipv6(far6, "2001:db8:9::1", 17, nil, 10)), SkipTransit, 50, "", 0},
		{"v4-mapped source in ipv6", LinkEthernet, eth(etherIPv6, ipv6("::ffff:"+local4, far6, 17, nil, 10)), SkipMalformed, 0, "", 0},
		{"v4-mapped destination in ipv6", LinkEthernet, eth(etherIPv6, ipv6(local6, "::ffff:"+far4, 17, nil, 10)), SkipMalformed, 0, "", 0},

		{"excluded v4 address egress", LinkEthernet, eth(etherIPv4, ipv4(local4, excl4, 10, v4opts{})), SkipExcluded, 30, "", 0},
		{"excluded v4 address ingress", LinkEthernet, eth(etherIPv4, ipv4(excl4, local4, 10, v4opts{})), SkipExcluded, 30, "", 0},
		{"excluded v4 prefix", LinkEthernet, eth(etherIPv4, ipv4(local4, excl4p, 10, v4opts{})), SkipExcluded, 30, "", 0},
		{"v4 just outside prefix", LinkEthernet, eth(etherIPv4, ipv4(local4, "192.0.2.127", 10, v4opts{})), Egress, 30, "192.0.2.127", 0},
		{"excluded v6 address", LinkEthernet, eth(etherIPv6, ipv6(excl6, local6, 17, nil, 10)), SkipExcluded, 50, "", 0},
		{"excluded v6 prefix", LinkEthernet, eth(etherIPv6, ipv6(local6, excl6p, 17, nil, 10)), SkipExcluded, 50, "", 0},
		{"v6 just outside prefix", LinkEthernet, eth(etherIPv6, ipv6(local6, "2001:db8:5::1", 17, nil, 10)), Egress, 50, "2001:db8:5::1", 0},
		{"transit to excluded stays transit", LinkEthernet, eth(etherIPv4, ipv4(far4, excl4, 10, v4opts{})), SkipTransit, 30, "", 0},

		{"sll ipv4", LinkLinuxSLL, withByte(sll(etherIPv4, udp4), 1, 4), Egress, 120, far4, 0},
		{"sll ipv6", LinkLinuxSLL, sll(etherIPv6, udp6in), Ingress, 48, far6, 0},
		{"sll vlan", LinkLinuxSLL, sll(ether8021Q, cat(be16(9), be16(etherIPv4), udp4in)), Ingress, 1020, far4, 0},
		{"sll arp", LinkLinuxSLL, sll(0x0806, make([]byte, 28)), SkipNonIP, 0, "", 0},
		{"sll short", LinkLinuxSLL, sll(etherIPv4, nil)[:15], SkipMalformed, 0, "", 0},
		{"sll2 ipv4", LinkLinuxSLL2, sll2(etherIPv4, udp4in), Ingress, 1020, far4, 0},
		{"sll2 ipv6", LinkLinuxSLL2, sll2(etherIPv6, udp6), Egress, 240, far6, 0},
		{"sll2 vlan", LinkLinuxSLL2, sll2(ether8021Q, cat(be16(9), be16(etherIPv6), udp6)), Egress, 240, far6, 0},
		{"sll2 short", LinkLinuxSLL2, sll2(etherIPv4, nil)[:19], SkipMalformed, 0, "", 0},
		{"sll2 non-ip", LinkLinuxSLL2, sll2(0x0806, make([]byte, 28)), SkipNonIP, 0, "", 0},

		{"raw ipv4", LinkRaw, udp4, Egress, 120, far4, 0},
		{"raw ipv6", LinkRaw, udp6in, Ingress, 48, far6, 0},
		{"raw bad version", LinkRaw, cat([]byte{0x50}, udp4[1:]), SkipMalformed, 0, "", 0},
		{"raw empty", LinkRaw, nil, SkipMalformed, 0, "", 0},
		{"raw snap 20", LinkRaw, ipv4(far4, local4, 1000, v4opts{})[:20], Ingress, 1020, far4, 1020},
		{"ipv4 link", LinkIPv4, udp4in, Ingress, 1020, far4, 0},
		{"ipv4 link, v6 inside", LinkIPv4, udp6, SkipMalformed, 0, "", 0},
		{"ipv6 link", LinkIPv6, udp6, Egress, 240, far6, 0},
		{"ipv6 link short", LinkIPv6, udp6[:39], SkipMalformed, 0, "", 0},
		{"unknown link", LinkType(147), udp4, SkipNonIP, 0, "", 0},

		// The IP length is trusted only up to what the wire carried.
		{"ipv4 length over wire", LinkEthernet, eth(etherIPv4, ipv4(far4, local4, 8, v4opts{totalLen: 65535})), SkipOversize, 0, "", 42},
		{"ipv4 length one over wire", LinkRaw, udp4in[:200], SkipOversize, 0, "", 1019},
		{"ipv4 length fits wire exactly", LinkRaw, udp4in[:200], Ingress, 1020, far4, 1020},
		{"ipv6 length over wire", LinkEthernet, withByte(withByte(eth(etherIPv6, udp6in), 18, 0xff), 19, 0xff), SkipOversize, 0, "", 0},
		{"vlan ipv4 length over wire", LinkEthernet, eth(etherIPv4, ipv4(far4, local4, 8, v4opts{totalLen: 1500}), ether8021Q, 5), SkipOversize, 0, "", 1400},
		{"sll2 ipv4 length over wire", LinkLinuxSLL2, sll2(etherIPv4, ipv4(far4, local4, 8, v4opts{totalLen: 29})), SkipOversize, 0, "", 0},
		{"ethernet padding: wire longer than ip", LinkEthernet, eth(etherIPv4, ipv4(far4, local4, 0, v4opts{})), Ingress, 20, far4, 60},
		{"gro super-frame: wire covers it", LinkRaw, ipv4(far4, local4, 60000, v4opts{})[:128], Ingress, 60020, far4, 60020},
		{"big tcp total length 0", LinkRaw, withByte(withByte(udp4in, 2, 0), 3, 0), Ingress, 0, far4, 0},
		{"wire below captured is the captured length", LinkRaw, udp4in, Ingress, 1020, far4, 10},

		// SLL/SLL2 carry the packet type: a received frame with a local
		// source is spoofed, except on loopback, which shows every packet
		// as received too.
		{"sll received with local source", LinkLinuxSLL, sll(etherIPv4, udp4), SkipSpoofed, 120, "", 0},
		{"sll broadcast with local source", LinkLinuxSLL, withByte(sll(etherIPv4, udp4), 1, 1), SkipSpoofed, 120, "", 0},
		{"sll received both local", LinkLinuxSLL, sll(etherIPv4, ipv4(local4, local4b, 10, v4opts{})), SkipSpoofed, 30, "", 0},
		{"sll loopback received local source", LinkLinuxSLL, withByte(withByte(sll(etherIPv4, udp4), 2, 0x03), 3, 0x04), Egress, 120, far4, 0},
		{"sll outgoing remote source", LinkLinuxSLL, withByte(sll(etherIPv4, udp4in), 1, 4), Ingress, 1020, far4, 0},
		{"sll2 received with local source", LinkLinuxSLL2, withByte(sll2(etherIPv6, udp6), 10, 0), SkipSpoofed, 240, "", 0},
		{"sll2 loopback received", LinkLinuxSLL2, withByte(withByte(withByte(sll2(etherIPv6, udp6), 10, 0), 8, 0x03), 9, 0x04), Egress, 240, far6, 0},
		{"sll2 packet type loopback", LinkLinuxSLL2, withByte(sll2(etherIPv6, udp6), 10, 5), Egress, 240, far6, 0},
	}
}

func TestClassify(t *testing.T) {
	c := testClassifier()
	for _, tc := range classifyCases() {
		t.Run(tc.name, func(t *testing.T) {
			// Garbage in the event proves Classify sets every field.
			ev := Event{TS: 77, Remote: [16]byte{1, 2, 3}, Len: 9999, Kind: Drops}
			c.Classify(tc.link, tc.frame, tc.wire, DirUnknown, &ev)
			var want [16]byte
			if tc.remote != "" {
				want = mapped(tc.remote)
			}
			if ev.Kind != tc.kind || ev.Len != tc.len || ev.Remote != want || ev.TS != 77 {
				t.Errorf("got kind=%v len=%d remote=%v ts=%d, want kind=%v len=%d remote=%v", ev.Kind, ev.Len, ev.Addr(), ev.TS, tc.kind, tc.len, netip.AddrFrom16(want).Unmap())
			}
		})
	}
}

// TestClassifyDirection: the direction a packet socket or pcapng gives
// decides egress only together with the addresses.
func TestClassifyDirection(t *testing.T) {
	c := testClassifier()
	out4 := eth(etherIPv4, ipv4(local4, far4, 100, v4opts{}))
	in4 := eth(etherIPv4, ipv4(far4, local4, 100, v4opts{}))
	for _, tc := range []struct {
		name   string
		frame  []byte
		dir    Dir
		kind   Kind
		remote string
	}{
		{"received, local source", out4, DirIn, SkipSpoofed, ""},
		{"sent, local source", out4, DirOut, Egress, far4},
		{"unknown, local source", out4, DirUnknown, Egress, far4},
		{"received, local destination", in4, DirIn, Ingress, far4},
		{"sent, local destination", in4, DirOut, Ingress, far4},
		{"received, both local", eth(etherIPv4, ipv4(local4, local4b, 1, v4opts{})), DirIn, SkipSpoofed, ""},
		{"received, transit", eth(etherIPv4, ipv4(far4, far4b, 1, v4opts{})), DirIn, SkipTransit, ""},
		{"received, ipv6 local source", eth(etherIPv6, ipv6(local6, far6, 17, nil, 8)), DirIn, SkipSpoofed, ""},
		{"received, excluded remote", eth(etherIPv4, ipv4(local4, excl4, 1, v4opts{})), DirIn, SkipSpoofed, ""},
	} {
		var ev Event
		c.Classify(LinkEthernet, tc.frame, 0, tc.dir, &ev)
		var want [16]byte
		if tc.remote != "" {
			want = mapped(tc.remote)
		}
		if ev.Kind != tc.kind || ev.Remote != want {
			t.Errorf("%s: kind %v remote %v, want %v %s", tc.name, ev.Kind, ev.Addr(), tc.kind, tc.remote)
		}
	}
}

func TestClassifierLocal(t *testing.T) {
	c := NewClassifier([]netip.Addr{
		netip.MustParseAddr("::ffff:" + local4), netip.MustParseAddr(local4),
		netip.MustParseAddr("fe80::1%eth0"), {},
	}, nil)
	got := fmt.Sprint(c.Local())
	if want := "[198.51.100.1 fe80::1]"; got != want {
		t.Errorf("Local() = %s, want %s", got, want)
	}
	var ev Event
	c.Classify(LinkRaw, ipv6("fe80::1", far6, 17, nil, 0), 0, DirUnknown, &ev)
	if ev.Kind != Egress {
		t.Errorf("zoned local address not matched: %v", ev.Kind)
	}
}

// TestClassifyLarge checks the map-backed paths (many locals, many
// exclusions) agree with the scanned ones.
func TestClassifyLarge(t *testing.T) {
	var locals []netip.Addr
	for i := range 40 {
		locals = append(locals, netip.AddrFrom4([4]byte{10, 0, byte(i), 1}))
	}
	locals = append(locals, netip.MustParseAddr(local4), netip.MustParseAddr(local6))
	excl := manyExclusions(10000)
	excl = append(excl,
		netip.MustParsePrefix(excl4+"/32"),
		netip.MustParsePrefix("192.0.2.128/25"),
		netip.MustParsePrefix(excl6+"/128"),
		netip.MustParsePrefix("2001:db8:4::/48"),
		netip.MustParsePrefix("::ffff:100.64.0.0/106"), // a v4 prefix written mapped: 100.64.0.0/10
	)
	c := NewClassifier(locals, excl)
	if c.localSet == nil || c.exclByLen == nil {
		t.Fatal("large classifier did not switch to maps")
	}
	cases := []struct {
		remote string
		kind   Kind
	}{
		{far4, Egress}, {far6, Egress},
		{excl4, SkipExcluded}, {excl4p, SkipExcluded}, {"192.0.2.127", Egress},
		{excl6, SkipExcluded}, {excl6p, SkipExcluded}, {"2001:db8:5::1", Egress},
		{"100.100.1.1", SkipExcluded}, {"100.128.0.1", Egress},
		{"172.16.3.77", SkipExcluded}, // from manyExclusions: 172.16.0.0/20 + i*16
		{"10.200.0.44", SkipExcluded}, // exact hosts 10.200.x.y
		{"10.200.0.45", Egress},
	}
	for _, tc := range cases {
		a := netip.MustParseAddr(tc.remote)
		var frame []byte
		if a.Is4() {
			frame = ipv4("10.0.33.1", tc.remote, 0, v4opts{})
		} else {
			frame = ipv6(local6, tc.remote, 17, nil, 0)
		}
		var ev Event
		c.Classify(LinkRaw, frame, 0, DirUnknown, &ev)
		if ev.Kind != tc.kind {
			t.Errorf("%s: kind %v, want %v", tc.remote, ev.Kind, tc.kind)
		}
	}
}

// manyExclusions makes n prefixes of mixed kinds: host addresses, /20s and
// IPv6 /64s.
func manyExclusions(n int) []netip.Prefix {
	var out []netip.Prefix
	for i := 0; len(out) < n; i++ {
		out = append(out,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i*4 + 0)}), 32),
			netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + i>>12), byte(i >> 4), 0}), 20),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, byte(i >> 8), byte(i), 0}), 64),
		)
	}
	return out
}

func BenchmarkClassify(b *testing.B) {
	frames := []struct {
		name  string
		link  LinkType
		frame []byte
		wire  int
		dir   Dir
	}{
		{"ethernet-ipv4", LinkEthernet, eth(etherIPv4, ipv4(local4, far4, 1400, v4opts{}))[:128], 1434, DirOut},
		{"vlan-ipv6", LinkEthernet, eth(etherIPv6, ipv6(far6, local6, 6, nil, 1400), ether8021Q, 5)[:128], 1478, DirIn},
	}
	classifiers := []struct {
		name string
		c    *Classifier
	}{
		{"noexcl", NewClassifier([]netip.Addr{netip.MustParseAddr(local4), netip.MustParseAddr(local6)}, nil)},
		{"small", testClassifier()},
		{"excl10k", NewClassifier([]netip.Addr{netip.MustParseAddr(local4), netip.MustParseAddr(local6)}, manyExclusions(10000))},
	}
	for _, cl := range classifiers {
		for _, f := range frames {
			b.Run(cl.name+"/"+f.name, func(b *testing.B) {
				b.ReportAllocs()
				var ev Event
				for b.Loop() {
					cl.c.Classify(f.link, f.frame, f.wire, f.dir, &ev)
				}
				if ev.Kind != Egress && ev.Kind != Ingress {
					b.Fatalf("kind %v", ev.Kind)
				}
			})
		}
	}
}

func TestClassifyNoAllocs(t *testing.T) {
	c := NewClassifier([]netip.Addr{netip.MustParseAddr(local4), netip.MustParseAddr(local6)}, manyExclusions(10000))
	frame := eth(etherIPv6, ipv6(far6, local6, 6, nil, 100), ether8021Q, 5)
	var ev Event
	if n := testing.AllocsPerRun(1000, func() { c.Classify(LinkEthernet, frame, 0, DirUnknown, &ev) }); n != 0 {
		t.Errorf("Classify allocates %v times per frame", n)
	}
}

// TestExclusionFamilies: an IPv6 prefix never excludes an IPv4 remote (as in
// netip), whatever the size of the list.
func TestExclusionFamilies(t *testing.T) {
	for _, n := range []int{0, 100} {
		excl := append(manyExclusions(n),
			netip.MustParsePrefix("::/16"),                  // covers ::ffff:0:0/96 bitwise
			netip.MustParsePrefix("::ffff:203.0.113.0/120"), // an IPv4 prefix written mapped
		)
		c := NewClassifier([]netip.Addr{netip.MustParseAddr(local4), netip.MustParseAddr(local6)}, excl)
		for remote, want := range map[string]Kind{
			"203.0.113.77": SkipExcluded,
			"192.0.2.1":    Egress,
			"::1:2":        SkipExcluded,
			"2001:db8::1":  Egress,
		} {
			var ev Event
			if netip.MustParseAddr(remote).Is4() {
				c.Classify(LinkRaw, ipv4(local4, remote, 0, v4opts{}), 0, DirUnknown, &ev)
			} else {
				c.Classify(LinkRaw, ipv6(local6, remote, 17, nil, 0), 0, DirUnknown, &ev)
			}
			if ev.Kind != want {
				t.Errorf("%d prefixes, remote %s: %v, want %v", len(excl), remote, ev.Kind, want)
			}
		}
	}
}

// TestRingDir lays frames out as the kernel does in a TPACKET_V3 block
// (tpacket3_hdr, sockaddr_ll, the frame at tp_mac) and checks that the packet
// type is found for every MAC header length, and that a header that does not
// agree with the frame is never taken for one.
func TestRingDir(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mac     int // tp_mac
		pkttype byte
		ifindex int
		snap    int
		want    Dir
	}{
		{"ethernet outgoing", 82, 4, 3, 60, DirOut},
		{"ethernet received", 82, 0, 3, 60, DirIn},
		{"raw ip received", 96, 0, 3, 60, DirIn},
		{"vlan in band", 78, 3, 3, 60, DirIn},
		{"long mac header", 68, 4, 3, 60, DirOut},
		{"loopback multicast", 82, 5, 3, 60, DirUnknown},
		{"other interface", 82, 4, 4, 60, DirUnknown},
		{"other snap length", 82, 4, 3, 61, DirUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			words := make([]uint64, 512) // 8-aligned, like a ring block
			ring := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
			h := 48 + 8*5 // a packet header after the block descriptor, 8-aligned
			ne := binary.NativeEndian
			ne.PutUint32(ring[h+12:], uint32(tc.snap))
			ne.PutUint32(ring[h+16:], 1500)
			ne.PutUint16(ring[h+24:], uint16(tc.mac))
			ne.PutUint16(ring[h+48:], 17) // AF_PACKET
			ne.PutUint32(ring[h+52:], 3)
			ring[h+58] = tc.pkttype
			data := ring[h+tc.mac : h+tc.mac+60]
			if got := ringDir(data, tc.ifindex); got != tc.want {
				t.Errorf("ringDir = %v, want %v", got, tc.want)
			}
		})
	}
}

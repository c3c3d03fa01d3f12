package pcapgen

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestIPLen(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")
	for _, c := range []struct {
		p    Packet
		want int
	}{
		{Packet{Src: v4, Dst: v4, Proto: 17, Payload: 100}, 128},
		{Packet{Src: v4, Dst: v4, Proto: 6, IPv4Options: true}, 48},
		{Packet{Src: v4, Dst: v4, Proto: 1, Payload: 56}, 84},
		{Packet{Src: v4, Dst: v4, Proto: 6, Payload: 500, Fragment: true, IPv4Options: true}, 528},
		{Packet{Src: v4, Dst: v4, Proto: 47, Payload: 10}, 30},
		{Packet{Src: v6, Dst: v6, Proto: 17, Payload: 10, IPv6ExtHdrs: true}, 74},
		{Packet{Src: v6, Dst: v6, Proto: 17, Payload: 1000, IPv6ExtHdrs: true, Fragment: true}, 1064},
		{Packet{Src: v6, Dst: v6, Proto: 58}, 48},
		{Packet{Src: v6, Dst: v6, Proto: 6, Payload: 1, Fragment: true}, 49},
		{Packet{Src: netip.MustParseAddr("::ffff:198.51.100.1"), Dst: v4, Proto: 17}, 28},
		{Packet{Shape: ARP}, 0},
	} {
		if got := c.p.IPLen(); got != c.want {
			t.Errorf("%+v: IPLen %d, want %d", c.p, got, c.want)
		}
	}
}

func TestTruthHandcrafted(t *testing.T) {
	const W = 5 * time.Minute
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	a := netip.MustParseAddr
	L4, L4b, L6 := a("198.51.100.1"), a("198.51.100.2"), a("2001:db8::1")
	R1, R2, R3 := a("203.0.113.5"), a("2001:db8:1::5"), a("192.0.2.9")
	local := []netip.Addr{L4, L4b, a("::ffff:198.51.100.3"), L6} // a mapped local must match unmapped traffic
	exclude := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}

	pkts := []Packet{
		// Out of order on purpose: Truth must not rely on sorted input.
		{TS: at("2025-03-01T12:10:00Z"), Shape: ARP},
		// Window 11:55.
		{TS: at("2025-03-01T11:58:00Z"), Src: L4, Dst: R1, Proto: 17, Payload: 100},                                        // R1 tx 128
		{TS: at("2025-03-01T11:58:01Z"), Src: R1, Dst: L4, Proto: 6, IPv4Options: true},                                    // R1 rx 48
		{TS: at("2025-03-01T11:59:00Z"), Src: L6, Dst: R2, Proto: 17, Payload: 10, IPv6ExtHdrs: true},                      // R2 tx 74
		{TS: at("2025-03-01T11:59:01Z"), Src: R2, Dst: L6, Proto: 17, Payload: 1000, IPv6ExtHdrs: true, Fragment: true},    // R2 rx 1064
		{TS: at("2025-03-01T11:59:02Z"), Src: R1, Dst: R3, Proto: 17, Payload: 5},                                          // transit
		{TS: at("2025-03-01T11:59:03Z"), Src: L4, Dst: L4b, Proto: 6},                                                      // local
		{TS: at("2025-03-01T11:59:04Z"), Src: L4, Dst: R1, Shape: ARP},                                                     // non-IP
		{TS: at("2025-03-01T11:59:05Z"), Src: L4, Dst: R1, Proto: 17, Shape: BadVersion},                                   // malformed
		{TS: at("2025-03-01T11:59:06Z"), Src: R2, Dst: L6, Proto: 17, Shape: ShortIP},                                      // malformed
		{TS: at("2025-03-01T11:59:07Z"), Src: L4, Dst: R3, Proto: 17, Payload: 9},                                          // excluded
		{TS: at("2025-03-01T11:59:08Z"), Src: a("198.51.100.3"), Dst: R1, Proto: 17},                                       // R1 tx 28, via the mapped local
		{TS: at("2025-03-01T11:59:59.999999999Z"), Src: a("::ffff:203.0.113.5"), Dst: L4, Proto: 1, Payload: 56, Snap: 64}, // R1 rx 84
		{TS: at("2025-03-01T11:59:09Z"), Src: L4, Dst: R1, Proto: 6, Payload: 500, Fragment: true, IPv4Options: true},      // R1 tx 528
		// Window 12:00: the first packet is exactly on the boundary.
		{TS: at("2025-03-01T12:00:00Z"), Src: L6, Dst: R2, Proto: 58},                                             // R2 tx 48
		{TS: at("2025-03-01T12:04:59.999999999Z"), Src: R1, Dst: L4, Proto: 6, Payload: 1400, VLANs: []uint16{5}}, // R1 rx 1440
	}
	got := Truth(pkts, local, exclude, W)
	want := []WindowTruth{
		{
			Start: at("2025-03-01T11:55:00Z"),
			Remotes: map[netip.Addr]Counts{
				R1: {TxPackets: 3, TxBytes: 128 + 28 + 528, RxPackets: 2, RxBytes: 48 + 84},
				R2: {TxPackets: 1, TxBytes: 74, RxPackets: 1, RxBytes: 1064},
			},
			Frames: 13, Tallied: 7, NonIP: 1, Transit: 1, Malformed: 2, Excluded: 1, Local: 1,
		},
		{
			Start: at("2025-03-01T12:00:00Z"),
			Remotes: map[netip.Addr]Counts{
				R1: {RxPackets: 1, RxBytes: 1440},
				R2: {TxPackets: 1, TxBytes: 48},
			},
			Frames: 2, Tallied: 2,
		},
		// 12:05 saw no frame, so it is absent.
		{Start: at("2025-03-01T12:10:00Z"), Remotes: map[netip.Addr]Counts{}, Frames: 1, NonIP: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Truth:\n got %+v\nwant %+v", got, want)
	}
	for _, w := range got {
		if w.Start.Location() != time.UTC {
			t.Fatalf("window start %v not UTC", w.Start)
		}
	}
}

func TestTruthWindowEdges(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	const W = 20 * time.Second
	for _, c := range []struct {
		ns, start int64
	}{
		{0, 0},
		{int64(W) - 1, 0},
		{int64(W), int64(W)},
		{-1, -int64(W)}, // floor, not truncation toward zero
		{-int64(W), -int64(W)},
		{-int64(W) - 1, -2 * int64(W)},
	} {
		got := Truth([]Packet{{TS: time.Unix(0, c.ns), Src: src, Dst: dst, Proto: 17}}, []netip.Addr{src}, nil, W)
		if len(got) != 1 || got[0].Start.UnixNano() != c.start || got[0].Tallied != 1 {
			t.Errorf("ts %d: %+v, want start %d", c.ns, got, c.start)
		}
	}
}

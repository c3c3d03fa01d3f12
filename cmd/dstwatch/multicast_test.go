package main

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/pcapgen"
)

// Multicast and broadcast, as the README's counting rules say: what the
// host sends to a group or broadcast address is egress, tallied under that
// address as the remote; what it receives for one (the destination is not
// a local address) is transit, not tallied. --exclude keeps the groups out
// of the tallies for those who want them apart.
func TestMulticastAndBroadcastCounting(t *testing.T) {
	dir := t.TempDir()
	a4, a6 := testLocal[0], testLocal[1]
	peer := netip.MustParseAddr("198.51.100.2")
	mdns4, mdns6 := netip.MustParseAddr("224.0.0.251"), netip.MustParseAddr("ff02::fb")
	bcast := netip.MustParseAddr("255.255.255.255")
	var pkts []pcapgen.Packet
	add := func(n int, src, dst netip.Addr, payload int) {
		for range n {
			pkts = append(pkts, pcapgen.Packet{TS: testStart.Add(time.Duration(len(pkts)) * time.Millisecond),
				Src: src, Dst: dst, Proto: 17, SrcPort: 5353, DstPort: 5353, Payload: payload})
		}
	}
	add(3, a4, mdns4, 50)    // egress to a group: remote 224.0.0.251, IP length 78
	add(2, a4, bcast, 300)   // egress broadcast (DHCP-like): 328
	add(4, a6, mdns6, 60)    // egress to an IPv6 group: 108
	add(5, peer, mdns4, 50)  // a peer's multicast: transit
	add(6, peer, bcast, 300) // a peer's broadcast: transit
	add(1, peer, a4, 10)     // unicast to the host: ingress, 38
	file := filepath.Join(dir, "mc.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	type counts struct{ tx, txBytes, rx, rxBytes uint64 }
	for _, tc := range []struct {
		name     string
		exclude  string
		want     map[string]counts
		excluded uint64
	}{
		{"as remotes", "", map[string]counts{
			"224.0.0.251":     {3, 3 * 78, 0, 0},
			"255.255.255.255": {2, 2 * 328, 0, 0},
			"ff02::fb":        {4, 4 * 108, 0, 0},
			"198.51.100.2":    {0, 0, 1, 38},
		}, 0},
		{"excluded", "224.0.0.0/4,ff00::/8,255.255.255.255", map[string]counts{
			"198.51.100.2": {0, 0, 1, 38},
		}, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "mc.db")
			args := []string{"run", "--read", file, "--local", a4.String() + "," + a6.String(), "--db", db}
			if tc.exclude != "" {
				args = append(args, "--exclude", tc.exclude)
			}
			if code, _, stderr := runCmd(t, args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got := map[string]counts{}
			var transit, excluded uint64
			for _, w := range readAll(t, db) {
				transit += w.Stats.Transit
				excluded += w.Stats.Excluded
				for _, r := range w.Remotes {
					c := got[r.Addr.String()]
					c.tx += r.TxPackets
					c.txBytes += r.TxBytes
					c.rx += r.RxPackets
					c.rxBytes += r.RxBytes
					got[r.Addr.String()] = c
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("remotes %v, want %v", got, tc.want)
			}
			for a, w := range tc.want {
				if got[a] != w {
					t.Errorf("%s: %+v, want %+v", a, got[a], w)
				}
			}
			if transit != 11 || excluded != tc.excluded {
				t.Errorf("transit %d, excluded %d; want 11 (the peer's multicast and broadcast) and %d", transit, excluded, tc.excluded)
			}
		})
	}
}

// A GRO/TSO super-frame (one frame far larger than the MTU, as packet
// sockets see them) is one packet of its full IP length: packet counts are
// then lower than what the wire carried as MTU-sized segments, bytes are
// the same.
func TestSuperFrameCountsAsOnePacket(t *testing.T) {
	dir := t.TempDir()
	peer := netip.MustParseAddr("198.51.100.2")
	pkts := []pcapgen.Packet{
		{TS: testStart, Src: peer, Dst: testLocal[0], Proto: 17, SrcPort: 443, DstPort: 40000, Payload: 60000}, // GRO: 60028 bytes
		{TS: testStart, Src: testLocal[0], Dst: peer, Proto: 17, SrcPort: 40000, DstPort: 443, Payload: 1472},  // one MTU frame
		{TS: testStart, Src: testLocal[1], Dst: netip.MustParseAddr("2001:db8::2"), Proto: 17, Payload: 40000}, // TSO, IPv6: 40048
	}
	file := filepath.Join(dir, "gro.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "gro.db")
	if code, _, stderr := runCmd(t, "run", "--read", file, "--local", testLocal[0].String()+","+testLocal[1].String(), "--db", db); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ws := readAll(t, db)
	if len(ws) != 1 {
		t.Fatalf("%d windows, want 1", len(ws))
	}
	got := map[string][4]uint64{}
	for _, r := range ws[0].Remotes {
		got[r.Addr.String()] = [4]uint64{r.TxPackets, r.TxBytes, r.RxPackets, r.RxBytes}
	}
	want := map[string][4]uint64{
		"198.51.100.2": {1, 1500, 1, 60028},
		"2001:db8::2":  {1, 40048, 0, 0},
	}
	for a, w := range want {
		if got[a] != w {
			t.Errorf("%s: tx pkts, bytes, rx pkts, bytes %v, want %v", a, got[a], w)
		}
	}
}

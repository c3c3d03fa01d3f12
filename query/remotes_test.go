package query

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/dstwatch/dstwatch/window"
)

// TestRemoteRowsMatchesMap: rows found by address through the tables'
// growth, for IPv4, IPv6, IPv4-mapped and zoned addresses, are those a map
// keyed by netip.Addr finds.
func TestRemoteRowsMatchesMap(t *testing.T) {
	if n := unsafe.Sizeof(remoteRow{}); n != 64 {
		t.Errorf("a remote's row is %d bytes, not one cache line", n)
	}
	addrs := benchAddrs(60000)
	addrs = append(addrs, netip.MustParseAddr("::ffff:10.0.0.0"), netip.MustParseAddr("10.0.0.0"),
		netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fe80::1%eth1"), netip.MustParseAddr("0.0.0.0"))
	rng := rand.New(rand.NewPCG(3, 3))
	rr := newRemoteRows()
	want := map[netip.Addr]window.Counts{}
	country := map[netip.Addr]string{}
	for i := range 300000 {
		a := addrs[rng.IntN(len(addrs))]
		if i < len(addrs) {
			a = addrs[i]
		}
		c := window.Counts{TxPackets: 1, TxBytes: uint64(i)}
		cc := []string{"", "DE", "xx", "ZZ"}[rng.IntN(4)]
		rr.add(&window.Remote{Addr: a, Country: cc, Counts: c}, uint32(i))
		country[a] = cc
		w := want[a]
		w.Add(c)
		want[a] = w
	}
	if len(rr.rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rr.rows), len(want))
	}
	for i, a := range rr.addrs {
		if rr.rows[i].Counts != want[a] || rr.country(i) != country[a] {
			t.Fatalf("%v: %+v %q, want %+v %q", a, rr.rows[i].Counts, rr.country(i), want[a], country[a])
		}
		if j, ok := rr.row(a); !ok || j != i {
			t.Fatalf("%v: row %d %v, want %d", a, j, ok, i)
		}
	}
}

// TestAggregateRemotesNewestAnswer: by remote, a row's country, AS and
// organisation are the newest window's, and each distinct address
// (zoned, IPv4-mapped) is its own row.
func TestAggregateRemotesNewestAnswer(t *testing.T) {
	a, m, z := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.1"), netip.MustParseAddr("fe80::1%eth0")
	ws := []*window.Window{
		{Start: t0, Remotes: []window.Remote{{Addr: a, Country: "DE", ASN: 1, Counts: c(1, 1, 0, 0)}, {Addr: m, Counts: c(1, 2, 0, 0)}, {Addr: z, Counts: c(1, 3, 0, 0)}}},
		{Start: t0.Add(20 * time.Second), Remotes: []window.Remote{{Addr: a, Country: "NL", ASN: 2, ASOrg: "Two", Counts: c(1, 1, 0, 0)}}},
		{Start: t0.Add(40 * time.Second), Remotes: []window.Remote{{Addr: a, Country: "AT", ASN: 3, ASOrg: "Three", Counts: c(1, 1, 0, 0)}}},
	}
	agg, err := NewAggregator(ByRemote)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		agg.Add(w)
	}
	rows := agg.Rows(SortBytes)
	if len(rows) != 3 || rows[0].Key != "192.0.2.1" || rows[0].Country != "AT" || rows[0].ASOrg != "Three" || rows[0].TxBytes != 3 ||
		rows[1].Key != "fe80::1%eth0" || rows[2].Key != "::ffff:192.0.2.1" {
		t.Errorf("rows %+v", rows)
	}
}

package pcapgen

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var docRanges = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func inDocRanges(a netip.Addr) bool {
	for _, p := range docRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func TestMixedDeterministic(t *testing.T) {
	a := Mixed(42, 5000, 500, testLocal, testStart, time.Hour, LinkEthernet)
	b := Mixed(42, 5000, 500, testLocal, testStart, time.Hour, LinkEthernet)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different scenario")
	}
	next := MixedFunc(42, 5000, 500, testLocal, testStart, time.Hour, LinkEthernet)
	for i := range a {
		if p := next(i); !reflect.DeepEqual(p, a[i]) {
			t.Fatalf("MixedFunc(%d) = %+v, Mixed has %+v", i, p, a[i])
		}
	}
	if c := Mixed(43, 5000, 500, testLocal, testStart, time.Hour, LinkEthernet); reflect.DeepEqual(a, c) {
		t.Fatal("different seeds, same scenario")
	}
}

func TestMixedContents(t *testing.T) {
	const n, remotes = 40000, 2000
	span := 17 * time.Minute
	isLocal := map[netip.Addr]bool{}
	for _, a := range testLocal {
		isLocal[a] = true
	}
	for _, link := range allLinks {
		pkts := Mixed(7, n, remotes, testLocal, testStart, span, link)
		seen := map[string]int{}
		for i, p := range pkts {
			if p.TS.Before(testStart) || !p.TS.Before(testStart.Add(span)) {
				t.Fatalf("link %d pkt %d: ts %v outside the span", link, i, p.TS)
			}
			if i > 0 && !p.TS.After(pkts[i-1].TS) {
				t.Fatalf("link %d pkt %d: ts not increasing", link, i)
			}
			if p.Shape != ARP && (!inDocRanges(p.Src) || !inDocRanges(p.Dst)) {
				t.Fatalf("link %d pkt %d: %v -> %v outside documentation ranges", link, i, p.Src, p.Dst)
			}
			if p.Shape == Normal && !isLocal[p.Src] && !isLocal[p.Dst] && p.Src == p.Dst {
				t.Fatalf("link %d pkt %d: transit to itself", link, i)
			}
			seen[p.Shape.String()]++
			for _, f := range []struct {
				name string
				on   bool
			}{
				{"vlan", len(p.VLANs) == 1}, {"qinq", len(p.VLANs) == 2}, {"v4opt", p.IPv4Options},
				{"v6ext", p.IPv6ExtHdrs}, {"frag", p.Fragment}, {"snap", p.Snap > 0}, {"v6", p.Src.Is6()},
				{"tcp", p.Proto == 6}, {"udp", p.Proto == 17}, {"icmp", p.Proto == 1}, {"icmp6", p.Proto == 58},
				{"jumbo", p.Payload > 1500}, {"snapped", p.Snap > 0 && p.Snap < expectFrameLen(p, link)},
			} {
				if f.on {
					seen[f.name]++
				}
			}
		}
		want := []string{"normal", "badversion", "shortip", "v4opt", "v6ext", "frag", "snapped", "v6", "tcp", "udp", "icmp", "icmp6", "jumbo"}
		switch link {
		case LinkEthernet:
			want = append(want, "arp", "vlan", "qinq")
		case LinkLinuxSLL, LinkLinuxSLL2:
			want = append(want, "arp")
		}
		for _, k := range want {
			if seen[k] == 0 {
				t.Errorf("link %d: no %s packets (%v)", link, k, seen)
			}
		}
		if link != LinkEthernet && seen["vlan"]+seen["qinq"] > 0 {
			t.Errorf("link %d: VLAN tags off Ethernet", link)
		}
		if link == LinkRaw && seen["arp"] > 0 {
			t.Errorf("raw link: ARP generated")
		}

		var sum WindowTruth
		distinct := map[netip.Addr]bool{}
		for _, w := range Truth(pkts, testLocal, nil, 5*time.Minute) {
			sum.Frames += w.Frames
			sum.Tallied += w.Tallied
			sum.NonIP += w.NonIP
			sum.Transit += w.Transit
			sum.Malformed += w.Malformed
			sum.Local += w.Local
			for a := range w.Remotes {
				distinct[a] = true
			}
		}
		if len(distinct) != remotes {
			t.Errorf("link %d: %d distinct tallied remotes, want %d", link, len(distinct), remotes)
		}
		if sum.Frames != n || sum.Tallied+sum.NonIP+sum.Transit+sum.Malformed+sum.Local != n {
			t.Errorf("link %d: window sums %+v do not add up to %d", link, sum, n)
		}
		if sum.Transit == 0 || sum.Local == 0 || sum.Malformed == 0 || (link != LinkRaw && sum.NonIP == 0) {
			t.Errorf("link %d: missing a skip reason: %+v", link, sum)
		}
	}
}

func TestMixedLocalFamilies(t *testing.T) {
	only4 := []netip.Addr{netip.MustParseAddr("198.51.100.1")}
	pkts := Mixed(1, 20000, 5000, only4, testStart, time.Minute, LinkRaw)
	remotes := map[netip.Addr]bool{}
	for _, w := range Truth(pkts, only4, nil, time.Minute) {
		for a := range w.Remotes {
			if !a.Is4() || a == only4[0] {
				t.Fatalf("remote %v with IPv4-only locals", a)
			}
			remotes[a] = true
		}
	}
	if len(remotes) != 761 { // 3 x 254 hosts, minus the local
		t.Fatalf("%d IPv4 remotes, want the capped 761", len(remotes))
	}

	// No locals: nothing can be tallied, and nothing panics.
	for _, w := range Truth(Mixed(1, 2000, 10, nil, testStart, time.Minute, LinkEthernet), nil, nil, time.Minute) {
		if w.Tallied != 0 || w.Local != 0 {
			t.Fatalf("tallied without locals: %+v", w)
		}
	}
}

func TestTruthFuncMatchesTruth(t *testing.T) {
	excl := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")}
	want := Truth(Mixed(9, 20000, 800, testLocal, testStart, 12*time.Minute, LinkLinuxSLL), testLocal, excl, 5*time.Minute)
	next := MixedFunc(9, 20000, 800, testLocal, testStart, 12*time.Minute, LinkLinuxSLL)
	got := TruthFunc(20000, next, testLocal, excl, 5*time.Minute)
	if !reflect.DeepEqual(got, want) {
		t.Fatal("TruthFunc over MixedFunc differs from Truth over Mixed")
	}
	if len(got) != 3 { // 11:58 to 12:10 (exclusive): 11:55, 12:00, 12:05
		t.Fatalf("%d windows, want 3", len(got))
	}
	var excluded uint64
	for _, w := range got {
		excluded += w.Excluded
	}
	if excluded == 0 {
		t.Fatal("exclusion prefix matched nothing")
	}
}

func BenchmarkTruthFunc(b *testing.B) {
	next := MixedFunc(1, b.N, 140000, testLocal, testStart, 30*time.Minute, LinkEthernet)
	b.ResetTimer()
	TruthFunc(b.N, next, testLocal, nil, 5*time.Minute)
}

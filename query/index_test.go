package query

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
)

// benchAddrs is a month's remote pool as storage's month benchmark makes
// it: half IPv4, half IPv6 from /64s all over 2001:db8::/32.
func benchAddrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		if i%2 == 0 {
			out[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			binary.BigEndian.PutUint32(b[4:], uint32(i)*2654435761)
			b[15] = 1
			out[i] = netip.AddrFrom16(b)
		}
	}
	return out
}

func TestPairSetMatchesMap(t *testing.T) {
	addrs := benchAddrs(5000)
	addrs = append(addrs, netip.MustParseAddr("::ffff:10.0.0.0"), netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::"))
	rng := rand.New(rand.NewPCG(1, 2))
	x := newPairSet()
	want := map[seenKeyT]bool{}
	for i := range 100000 {
		a, row := addrs[rng.IntN(len(addrs))], uint32(rng.IntN(3))
		if i%1000 == 0 {
			row = 1<<32 - 2 // the largest row
		}
		added := x.add(a, row)
		if added == want[seenKeyT{a, row}] {
			t.Fatalf("step %d: %v/%d: added %v, want %v", i, a, row, added, !added)
		}
		want[seenKeyT{a, row}] = true
	}
	if x.len() != len(want) {
		t.Fatalf("%d entries, want %d", x.len(), len(want))
	}
	got := map[seenKeyT]bool{}
	x.each(func(a netip.Addr, row uint32) { got[seenKeyT{a, row}] = true })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("each: %d pairs, want the %d added", len(got), len(want))
	}
}

type seenKeyT struct {
	a   netip.Addr
	tag uint32
}

func BenchmarkPairSet(b *testing.B) {
	addrs := benchAddrs(20000)
	rng := rand.New(rand.NewPCG(1, 2))
	seq := make([]netip.Addr, 1<<20)
	for i := range seq {
		seq[i] = addrs[rng.IntN(len(addrs))]
	}
	b.Run("set", func(b *testing.B) {
		x := newPairSet()
		for i := 0; b.Loop(); i++ {
			x.add(seq[i&(len(seq)-1)], 0)
		}
	})
	b.Run("map", func(b *testing.B) {
		m := map[seenKeyT]bool{}
		for i := 0; b.Loop(); i++ {
			k := seenKeyT{seq[i&(len(seq)-1)], 0}
			if !m[k] {
				m[k] = true
			}
		}
	})
}

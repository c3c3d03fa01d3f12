package query

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
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

func TestAddrIndexMatchesMap(t *testing.T) {
	addrs := benchAddrs(5000)
	addrs = append(addrs, netip.MustParseAddr("::ffff:10.0.0.0"), netip.MustParseAddr("10.0.0.0"))
	rng := rand.New(rand.NewPCG(1, 2))
	x := newAddrIndex()
	want := map[seenKeyT]int32{}
	for i := range 100000 {
		a, tag := addrs[rng.IntN(len(addrs))], uint32(rng.IntN(3))
		v, ok := x.get(a, tag)
		w, wok := want[seenKeyT{a, tag}]
		if ok != wok || (ok && *v != w) {
			t.Fatalf("step %d: %v/%d: got %v %v, want %v %v", i, a, tag, *v, ok, w, wok)
		}
		if !ok {
			*v = int32(i)
			want[seenKeyT{a, tag}] = int32(i)
		}
	}
	if x.n != len(want) {
		t.Fatalf("%d entries, want %d", x.n, len(want))
	}
}

type seenKeyT struct {
	a   netip.Addr
	tag uint32
}

func BenchmarkAddrIndex(b *testing.B) {
	addrs := benchAddrs(20000)
	rng := rand.New(rand.NewPCG(1, 2))
	seq := make([]netip.Addr, 1<<20)
	for i := range seq {
		seq[i] = addrs[rng.IntN(len(addrs))]
	}
	b.Run("index", func(b *testing.B) {
		x := newAddrIndex()
		for i := 0; b.Loop(); i++ {
			v, ok := x.get(seq[i&(len(seq)-1)], 0)
			if !ok {
				*v = 1
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		m := map[netip.Addr]int32{}
		for i := 0; b.Loop(); i++ {
			a := seq[i&(len(seq)-1)]
			if _, ok := m[a]; !ok {
				m[a] = 1
			}
		}
	})
}

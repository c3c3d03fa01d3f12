package query

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// pairSet is a set of (address, row) pairs: the distinct remotes of each
// row of `--by country`, `--by asn` and `--by prefix`, which check every
// remote entry they add (about 1.5M for a month) against it. A Go map
// keyed by a struct of netip.Addr and the row was a quarter of such an
// answer's CPU time, and a probe that misses the cache costs more than the
// rest of adding an entry up, so the set is open addressing with linear
// probing over power-of-two arrays, kept small: an IPv4 pair is one 8-byte
// word (a month's 20,000 remotes fit in a few hundred kilobytes), an IPv6
// pair 24 bytes in a table of its own. The hash is seeded per set, so
// addresses from the traffic (spoofed sources are stored like any other)
// cannot be chosen to collide.
type pairSet struct {
	v4     []uint64 // address << 32 | row + 1; 0 empty
	v6     []pair6
	n4, n6 int
	seed   [2]uint64
}

type pair6 struct {
	hi, lo uint64 // the address's 16 bytes
	row    uint32 // row + 1; 0 empty
}

func newPairSet() *pairSet {
	return &pairSet{v4: make([]uint64, 1024), v6: make([]pair6, 256), seed: [2]uint64{rand.Uint64() | 1, rand.Uint64()}}
}

// add adds (a, row) and reports whether it was new. An IPv4 address and
// its IPv4-mapped IPv6 form are different addresses, as they are for
// netip.Addr. row must be below 1<<32-1.
func (s *pairSet) add(a netip.Addr, row uint32) bool {
	if a.Is4() {
		v := a.As4()
		return s.add4(uint64(binary.BigEndian.Uint32(v[:]))<<32 | uint64(row+1))
	}
	k := a.As16()
	return s.add6(pair6{binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:]), row + 1})
}

func (s *pairSet) hash(hi, lo uint64) uint64 {
	h, l := bits.Mul64(hi^s.seed[0], lo^s.seed[1])
	return h ^ l
}

func (s *pairSet) add4(key uint64) bool {
	mask := uint64(len(s.v4) - 1)
	for i := s.hash(key, key>>32) & mask; ; i = (i + 1) & mask {
		switch s.v4[i] {
		case key:
			return false
		case 0:
			if 4*(s.n4+1) > 3*len(s.v4) {
				s.grow4()
				return s.add4(key)
			}
			s.v4[i] = key
			s.n4++
			return true
		}
	}
}

func (s *pairSet) add6(p pair6) bool {
	mask := uint64(len(s.v6) - 1)
	for i := s.hash(p.hi, p.lo^uint64(p.row)*0x9e3779b97f4a7c15) & mask; ; i = (i + 1) & mask {
		switch q := &s.v6[i]; {
		case *q == p:
			return false
		case q.row == 0:
			if 4*(s.n6+1) > 3*len(s.v6) {
				s.grow6()
				return s.add6(p)
			}
			*q = p
			s.n6++
			return true
		}
	}
}

func (s *pairSet) grow4() {
	old := s.v4
	s.v4, s.n4 = make([]uint64, 2*len(old)), 0
	for _, k := range old {
		if k != 0 {
			s.add4(k)
		}
	}
}

func (s *pairSet) grow6() {
	old := s.v6
	s.v6, s.n6 = make([]pair6, 2*len(old)), 0
	for _, p := range old {
		if p.row != 0 {
			s.add6(p)
		}
	}
}

// each calls fn with every pair of the set, as add takes them.
func (s *pairSet) each(fn func(a netip.Addr, row uint32)) {
	for _, k := range s.v4 {
		if k != 0 {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(k>>32))
			fn(netip.AddrFrom4(b), uint32(k)-1)
		}
	}
	for _, p := range s.v6 {
		if p.row != 0 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], p.hi)
			binary.BigEndian.PutUint64(b[8:], p.lo)
			fn(netip.AddrFrom16(b), p.row-1)
		}
	}
}

// len is how many pairs the set holds.
func (s *pairSet) len() int { return s.n4 + s.n6 }

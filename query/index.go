package query

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// addrIndex maps an address, with a 31-bit tag beside it, to an int32:
// open addressing with linear probing over a power-of-two array. A
// month-wide `--by country` or `--by asn` checks about 1.5M remote
// entries against the set of (remote, row) pairs seen, and a Go map keyed
// by a struct of netip.Addr and the row (hashed and compared field by
// field) was a quarter of the answer's CPU time. (For `--by remote`'s
// address-to-row lookups a map measured no slower: they stay maps.) The hash
// is seeded per index, so addresses from the traffic (spoofed sources
// are stored like any other) cannot be chosen to collide.
type addrIndex struct {
	slots []addrSlot
	n     int
	seed  [2]uint64
}

type addrSlot struct {
	key [16]byte
	tag uint32 // 0: empty; else the caller's tag << 1 | 1
	val int32
}

func newAddrIndex() *addrIndex {
	return &addrIndex{slots: make([]addrSlot, 1024), seed: [2]uint64{rand.Uint64() | 1, rand.Uint64()}}
}

// addrKey is a's 16 bytes and whether it is IPv4 (an IPv4 address and its
// IPv4-mapped IPv6 form are different keys, as they are for netip.Addr).
func addrKey(a netip.Addr) ([16]byte, uint32) {
	if a.Is4() {
		return a.As16(), 1
	}
	return a.As16(), 0
}

// get returns a pointer to the value of (a, tag) and whether it was there;
// a new entry's value is for the caller to set. tag must be below 1<<30.
// The pointer is valid until the next get.
func (x *addrIndex) get(a netip.Addr, tag uint32) (*int32, bool) {
	k, v4 := addrKey(a)
	return x.getKey(k, (tag<<1|v4)<<1|1)
}

// getKey is get by an address's key and a slot's tag: (tag << 1 | v4) << 1 | 1.
func (x *addrIndex) getKey(k [16]byte, t uint32) (*int32, bool) {
	hi, lo := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])
	h, l := bits.Mul64(hi^x.seed[0], lo^x.seed[1]^uint64(t)*0x9e3779b97f4a7c15)
	h ^= l
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.tag == 0 {
			if 2*(x.n+1) > len(x.slots) {
				x.grow()
				return x.getKey(k, t)
			}
			x.n++
			s.key, s.tag = k, t
			return &s.val, false
		}
		if s.tag == t && s.key == k {
			return &s.val, true
		}
	}
}

func (x *addrIndex) grow() {
	old := x.slots
	x.slots = make([]addrSlot, 2*len(old))
	mask := uint64(len(x.slots) - 1)
	for _, s := range old {
		if s.tag == 0 {
			continue
		}
		hi, lo := binary.LittleEndian.Uint64(s.key[:8]), binary.LittleEndian.Uint64(s.key[8:])
		h, l := bits.Mul64(hi^x.seed[0], lo^x.seed[1]^uint64(s.tag)*0x9e3779b97f4a7c15)
		h ^= l
		i := h & mask
		for x.slots[i].tag != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

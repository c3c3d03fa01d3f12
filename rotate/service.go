package rotate

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/dstwatch/dstwatch/capture"
)

// Per-service tallies. Every tallied packet belongs to one service
// (capture.Service: protocol, side, port); the tally keeps one row per
// (service, remote) pair of the open window, so that a closed window has
// exact totals per service, exact counts of distinct remotes per service,
// and each service's heaviest remotes.

// DefaultServiceTop is how many remotes a service keeps with rows of their
// own in a window; the rest are summed in its Other.
const DefaultServiceTop = 20

// ServicesWithTop is how many services (the heaviest) of one window keep
// per-remote rows; lighter ones keep their totals and remote counts only.
// It bounds a window whose packets spread over thousands of ports (a port
// scan) to a few thousand rows.
const ServicesWithTop = 200

// maxPairs bounds the (service, remote) rows of one open window. Past it,
// a packet of a pair not yet seen is added to its service's fold row: the
// service's totals stay exact, its remote count becomes a lower bound.
// 1M pairs cost about 72 MB, as many as the same number of remotes.
var maxPairs = 1 << 20 // a variable for tests

// foldBit marks a service's fold row (address zero) in the pair table.
const foldBit = 1 << 31

var zeroAddr [16]byte // the fold rows' address

// ServiceRemote is one remote's traffic with a service.
type ServiceRemote struct {
	Addr netip.Addr // IPv4 unmapped
	Counts
}

// Service is one service's traffic in a window.
type Service struct {
	Key     capture.Service
	Remotes int             // distinct remotes (a lower bound if the window had over maxPairs pairs)
	Counts                  // all of its traffic
	Top     []ServiceRemote // its heaviest remotes (bytes, then address), at most the service top
	Other   Counts          // Counts minus Top
}

// pair is one (service, remote) tally of the open window.
type pair struct {
	addr [16]byte
	svc  uint32
	Counts
}

// pairTable is table (table.go) keyed by address and service.
type pairTable struct {
	index []uint64
	rows  []pair
	shift uint
	limit int
	seed  [2]uint64
}

func (t *pairTable) reset(n int) {
	size := indexFor(n)
	if len(t.index) == size {
		clear(t.index)
	} else {
		t.index = make([]uint64, size)
	}
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	t.limit = size / 2
	t.rows = make([]pair, 0, n+n/8)
	t.seed = [2]uint64{rand.Uint64() | 1, rand.Uint64()}
}

func (t *pairTable) hash(hi, lo uint64, svc uint32) uint64 {
	h, l := bits.Mul64(hi^t.seed[0], lo^t.seed[1]^uint64(svc)*0x9e3779b97f4a7c15)
	return h ^ l
}

// get returns the row of (addr, svc), adding it if it is new; past
// maxPairs rows a new pair gets its service's fold row instead.
func (t *pairTable) get(addr *[16]byte, svc uint32) *pair {
	hi := binary.LittleEndian.Uint64(addr[:8])
	lo := binary.LittleEndian.Uint64(addr[8:])
	h := t.hash(hi, lo, svc)
	tag := h << 32
	mask := uint64(len(t.index) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		e := t.index[i]
		if e == 0 {
			if len(t.rows) >= maxPairs && svc&foldBit == 0 {
				return t.get(&zeroAddr, svc|foldBit)
			}
			if len(t.rows) >= t.limit {
				t.grow()
				return t.get(addr, svc)
			}
			t.rows = append(t.rows, pair{addr: *addr, svc: svc})
			t.index[i] = tag | uint64(len(t.rows))
			return &t.rows[len(t.rows)-1]
		}
		if e&^(1<<32-1) == tag {
			r := &t.rows[uint32(e)-1]
			if r.svc == svc && binary.LittleEndian.Uint64(r.addr[:8]) == hi && binary.LittleEndian.Uint64(r.addr[8:]) == lo {
				return r
			}
		}
	}
}

func (t *pairTable) grow() {
	t.index = make([]uint64, 2*len(t.index))
	t.shift--
	t.limit = len(t.index) / 2
	mask := uint64(len(t.index) - 1)
	for k := range t.rows {
		r := &t.rows[k]
		h := t.hash(binary.LittleEndian.Uint64(r.addr[:8]), binary.LittleEndian.Uint64(r.addr[8:]), r.svc)
		i := h >> t.shift
		for t.index[i] != 0 {
			i = (i + 1) & mask
		}
		t.index[i] = h<<32 | uint64(k+1)
	}
}

func (t *pairTable) take() []pair {
	rows := t.rows
	t.rows = nil
	return rows
}

// add tallies one packet of a tallied event.
func (t *pairTable) add(ev *capture.Event) {
	p := t.get(&ev.Remote, uint32(ev.Service()))
	if ev.Kind == capture.Egress {
		p.TxPackets++
		p.TxBytes += uint64(ev.Len)
	} else {
		p.RxPackets++
		p.RxBytes += uint64(ev.Len)
	}
}

func (c *Closed) services() []Service {
	top := c.serviceTop
	if top == 0 {
		top = DefaultServiceTop
	}
	s := finishServices(c.pairs, top)
	c.pairs = nil
	return s
}

// finishServices turns a window's pairs into services, heaviest first
// (bytes both ways, then key), each with at most top remotes of its own
// (top < 0: none; only the ServicesWithTop heaviest services keep any).
func finishServices(pairs []pair, top int) []Service {
	if len(pairs) == 0 {
		return nil
	}
	svcKey := func(p *pair) uint32 { return p.svc &^ foldBit }
	// Group the pairs by service with a counting sort (linear): a window
	// holds few services but can hold a million pairs, and sorting them all
	// cost more than counting the packets.
	idx := map[uint32]int{}
	var out []Service
	var size []int
	for i := range pairs {
		p := &pairs[i]
		k := svcKey(p)
		n, ok := idx[k]
		if !ok {
			n = len(out)
			idx[k] = n
			out = append(out, Service{Key: capture.Service(k)})
			size = append(size, 0)
		}
		out[n].Counts.Add(p.Counts)
		if p.svc&foldBit == 0 {
			out[n].Remotes++
		}
		size[n]++
	}
	type span struct{ from, to int }
	spans := make([]span, len(out))
	for i, at := 0, 0; i < len(out); i++ {
		spans[i] = span{at, at}
		at += size[i]
	}
	grouped := make([]pair, len(pairs))
	for i := range pairs {
		sp := &spans[idx[svcKey(&pairs[i])]]
		grouped[sp.to] = pairs[i]
		sp.to++
	}
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(out[b].Bytes(), out[a].Bytes()); c != 0 {
			return c
		}
		return cmp.Compare(out[a].Key, out[b].Key)
	})
	heavierPair := func(a, b pair) int {
		// Fold rows (over the pair cap) are never top remotes: last.
		if (a.svc&foldBit != 0) != (b.svc&foldBit != 0) {
			if a.svc&foldBit != 0 {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(b.Bytes(), a.Bytes()); c != 0 {
			return c
		}
		return bytes.Compare(a.addr[:], b.addr[:])
	}
	sorted := make([]Service, len(out))
	for n, i := range order {
		s := out[i]
		s.Other = s.Counts
		if top > 0 && n < ServicesWithTop {
			sp := grouped[spans[i].from:spans[i].to]
			k := min(top, s.Remotes)
			if k < len(sp) {
				selectFirst(sp, k, heavierPair)
			}
			slices.SortFunc(sp[:k], heavierPair)
			s.Top = make([]ServiceRemote, k)
			for x := range k {
				p := &sp[x]
				s.Top[x] = ServiceRemote{Addr: netip.AddrFrom16(p.addr).Unmap(), Counts: p.Counts}
				s.Other = subCounts(s.Other, p.Counts)
			}
		}
		sorted[n] = s
	}
	return sorted
}

func subCounts(a, b Counts) Counts {
	return Counts{a.TxPackets - b.TxPackets, a.TxBytes - b.TxBytes, a.RxPackets - b.RxPackets, a.RxBytes - b.RxBytes}
}

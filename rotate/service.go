package rotate

import (
	"bytes"
	"cmp"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/window"
)

// Per-service tallies. Every tallied packet belongs to one service
// (window.ServiceKey: protocol, side, port); the tally keeps one row per
// (service, remote) pair of the open window, so that a closed window has
// exact totals per service, exact counts of distinct remotes per service,
// and each service's heaviest remotes.

// DefaultServiceTop is how many remotes a service keeps with rows of their
// own in a window; the rest are summed in its Other.
const DefaultServiceTop = 20

// The (service, remote) rows of one open window are bounded like its
// remotes (Config.MaxOpenRemotes). Past the bound, a packet of a pair not
// yet seen is added to its service's fold row: the service's totals stay
// exact, its remote count becomes a lower bound. Fold rows are one per
// service, and at most maxFoldRows of them: past those (a window whose
// packets spread over more services than ports exist on one side), a new
// service's traffic is summed under 0/other, so that the table never
// holds more than its bound plus maxFoldRows rows.
const maxFoldRows = 1 << 15

// lastFold is the fold row of services past maxFoldRows.
const lastFold = foldBit | uint32(window.ProtoOther)<<16

// foldBit marks a service's fold row in the pair table; its remote is
// foldPos, no row.
const foldBit = 1 << 31

const foldPos = 1<<32 - 1

// pair is one (service, remote) tally of the open window: the remote is
// its row's position in the window's table (pairKey), not its address, so
// that a pair is 40 bytes instead of 56 and a probe compares one word. The
// rows never move while the window is open, and Finish sums the services up
// before it orders the rows.
type pair struct {
	window.Counts
	key uint64 // pairKey(row position, service)
}

func pairKey(pos, svc uint32) uint64 { return uint64(pos)<<32 | uint64(svc) }

func (p *pair) svc() uint32 { return uint32(p.key) }
func (p *pair) pos() uint32 { return uint32(p.key >> 32) }

// pairTable is table (table.go) keyed by row position and service.
type pairTable struct {
	index []uint64
	rows  []pair
	shift uint
	limit int
	seed  [2]uint64
	max   int // rows besides fold rows; 0: no bound
	// free brings back the pair arrays of finished windows, as table's.
	free chan []pair
	want int
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
	t.want = wantRows(n, t.bound())
	t.rows = startArray(t.free, t.want)
	t.seed = [2]uint64{rand.Uint64() | 1, rand.Uint64()}
}

// bound is the most rows the table holds, fold rows included; 0: none.
func (t *pairTable) bound() int {
	if t.max == 0 {
		return 0
	}
	return t.max + maxFoldRows + 1 // + lastFold's row
}

func (t *pairTable) hash(key uint64) uint64 {
	h, l := bits.Mul64(key^t.seed[0], t.seed[1])
	return h ^ l
}

// get returns the row of (the remote at row position pos, svc), adding it
// if it is new; past max rows a new pair gets its service's fold row
// instead.
func (t *pairTable) get(pos, svc uint32) *pair {
	key := pairKey(pos, svc)
	h := t.hash(key)
	tag := h << 32
	mask := uint64(len(t.index) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		e := t.index[i]
		if e == 0 {
			if t.max > 0 && len(t.rows) >= t.max {
				switch {
				case svc&foldBit == 0:
					return t.get(foldPos, svc|foldBit)
				case len(t.rows) >= t.max+maxFoldRows && svc != lastFold:
					return t.get(foldPos, lastFold)
				}
			}
			if len(t.rows) >= t.limit {
				t.grow()
				return t.get(pos, svc)
			}
			if len(t.rows) == cap(t.rows) {
				t.rows = roomFor(t.free, t.rows, t.want, t.bound())
			}
			t.rows = append(t.rows, pair{key: key})
			t.index[i] = tag | uint64(len(t.rows))
			return &t.rows[len(t.rows)-1]
		}
		if e&^(1<<32-1) == tag {
			if r := &t.rows[uint32(e)-1]; r.key == key {
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
		h := t.hash(t.rows[k].key)
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

// add tallies one packet of a tallied event whose remote is at row
// position pos.
func (t *pairTable) add(pos uint32, ev *capture.Event) {
	p := t.get(pos, uint32(ev.Service()))
	if ev.Kind == capture.Egress {
		p.TxPackets++
		p.TxBytes += uint64(ev.Len)
	} else {
		p.RxPackets++
		p.RxBytes += uint64(ev.Len)
	}
}

// services sums the window up per service: the remotes that used a single
// service are their own pair (their row), the others are in the pair table.
func (c *Closed) services(rows []row) []window.Service {
	top := c.serviceTop
	if top == 0 {
		top = DefaultServiceTop
	}
	s := finishServices(rows, c.pairs, top)
	if c.freePairs != nil {
		select {
		case c.freePairs <- c.pairs:
		default:
		}
	}
	c.pairs = nil
	return s
}

// topHeap gathers one service's heaviest remotes while the window is
// summed up: a min-heap, the lightest kept at the root.
type topHeap struct {
	heap []topEntry
}

// topEntry is a remote's traffic with one service, as topHeap keeps it.
type topEntry struct {
	addr [16]byte
	window.Counts
}

// heavierPair orders entries heaviest first, ties by address.
func heavierPair(a, b *topEntry) int {
	if c := cmp.Compare(b.Bytes(), a.Bytes()); c != 0 {
		return c
	}
	return bytes.Compare(a.addr[:], b.addr[:])
}

// offer keeps p if it is among the top heaviest seen so far.
func (a *topHeap) offer(p *topEntry, top int) {
	h := a.heap
	if len(h) < top {
		h = append(h, *p)
		for i := len(h) - 1; i > 0; { // sift up: lighter towards the root
			parent := (i - 1) / 2
			if heavierPair(&h[i], &h[parent]) <= 0 {
				break
			}
			h[i], h[parent] = h[parent], h[i]
			i = parent
		}
		a.heap = h
		return
	}
	if heavierPair(p, &h[0]) >= 0 {
		return // not heavier than the lightest kept
	}
	h[0] = *p
	for i := 0; ; { // sift down
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && heavierPair(&h[l], &h[m]) > 0 {
			m = l
		}
		if r < len(h) && heavierPair(&h[r], &h[m]) > 0 {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// svcKeys is the number of distinct service keys: window.ServiceKey packs
// port, protocol and side into 20 bits.
const svcKeys = 1 << 20

// svcIndexes holds the arrays finishServices finds a service's accumulator
// with: position + 1 by service key, 0 for none. A direct array instead of
// a map: a flood of spoofed probes of random ports makes a service of
// nearly every packet, and a map lookup per pair (twice) with an
// allocation per service was most of the cost of closing such a window.
// Each use resets only the entries it set, so a month of quiet windows does
// not clear 4 MB per window.
var svcIndexes = sync.Pool{New: func() any { return new([svcKeys]int32) }}

// svcTotal is one service's totals while finishServices runs.
type svcTotal struct {
	window.Counts
	remotes int
	key     uint32
}

// svcRank is a service's sort key in finishServices.
type svcRank struct {
	bytes uint64
	key   uint32
	pos   int32
}

// svcScratch is finishServices' pointer-free working arrays, kept from
// window to window: a flood's window of 200k services grew them from
// nothing each time, most of what closing it allocated.
type svcScratch struct {
	tots   []svcTotal
	order  []svcRank
	packed []uint64
	spare  []uint64 // radixSort's other buffer
}

var svcScratches = sync.Pool{New: func() any { return new(svcScratch) }}

// finishServices sums rows (single-service remotes) and pairs per service,
// then, in a second pass, keeps the top heaviest remotes of the
// window.ServicesWithTop heaviest services in bounded heaps: no list of every
// (service, remote) pair is built or sorted, and a window spread over
// thousands of services (a scan of every port) holds heaps for only 200 of
// them, so the writer needs little memory besides what the tally holds.
func finishServices(rows []row, pairs []pair, top int) []window.Service {
	idx := svcIndexes.Get().(*[svcKeys]int32)
	defer svcIndexes.Put(idx)
	sc := svcScratches.Get().(*svcScratch)
	defer svcScratches.Put(sc)
	// Totals first, in a pointer-free array: growing it is a plain copy.
	tots := sc.tots[:0]
	defer func() { sc.tots = tots[:0] }()
	acc := func(svc uint32) *svcTotal {
		k := svc & (svcKeys - 1)
		if n := idx[k]; n != 0 {
			return &tots[n-1]
		}
		tots = append(tots, svcTotal{key: k})
		idx[k] = int32(len(tots))
		return &tots[len(tots)-1]
	}
	for i := range rows {
		if r := &rows[i]; !r.mixed && r.TxPackets+r.RxPackets > 0 {
			a := acc(r.svc)
			a.Counts.Add(r.Counts)
			a.remotes++
		}
	}
	for i := range pairs {
		p := &pairs[i]
		a := acc(p.svc() &^ foldBit)
		a.Counts.Add(p.Counts)
		if p.svc()&foldBit == 0 { // else a fold row: traffic of remotes past the bound
			a.remotes++
		}
	}
	if len(tots) == 0 {
		return nil
	}
	// Heaviest first, ties by key (keys are distinct, so the order is
	// total), sorted as compact keys rather than through pointers.
	order := slices.Grow(sc.order[:0], len(tots))[:len(tots)]
	sc.order = order
	for i := range tots {
		order[i] = svcRank{tots[i].Bytes(), tots[i].key, int32(i)}
	}
	sortRanks(order, sc, idx)
	for i := range tots {
		idx[tots[i].key] = 0
	}
	var heaps []topHeap
	if top > 0 {
		// The heaviest services are offered their remotes: idx points at
		// their heap (rank + 1) while the second pass runs.
		heaps = make([]topHeap, min(len(order), window.ServicesWithTop))
		for n := range heaps {
			idx[order[n].key] = int32(n + 1)
		}
		for i := range rows {
			if r := &rows[i]; !r.mixed && r.TxPackets+r.RxPackets > 0 {
				if n := idx[r.svc&(svcKeys-1)]; n != 0 {
					heaps[n-1].offer(&topEntry{addr: r.addr, Counts: r.Counts}, top)
				}
			}
		}
		for i := range pairs {
			p := &pairs[i]
			if p.svc()&foldBit != 0 {
				continue // a fold row: not a remote
			}
			if n := idx[p.svc()]; n != 0 {
				heaps[n-1].offer(&topEntry{addr: rows[p.pos()].addr, Counts: p.Counts}, top)
			}
		}
		for n := range heaps {
			idx[order[n].key] = 0
		}
	}
	services := make([]window.Service, len(order))
	tops := 0
	for n := range heaps {
		tops += len(heaps[n].heap)
	}
	// One array for every service's top rows, which the writer then
	// resolves in place.
	remotes := make([]window.Remote, 0, tops)
	for n, o := range order {
		t := &tots[o.pos]
		s := window.Service{Key: window.ServiceKey(t.key), Remotes: t.remotes, Counts: t.Counts, Other: t.Counts}
		if n < len(heaps) {
			h := heaps[n].heap
			slices.SortFunc(h, func(x, y topEntry) int { return heavierPair(&x, &y) })
			start := len(remotes)
			for x := range h {
				p := &h[x]
				remotes = append(remotes, window.Remote{Addr: netip.AddrFrom16(p.addr).Unmap(), Counts: p.Counts})
				s.Other = subCounts(s.Other, p.Counts)
			}
			s.Top = remotes[start:len(remotes):len(remotes)]
		}
		services[n] = s
	}
	return services
}

// sortRanks orders services heaviest first, ties by key (keys are
// distinct, so the order is total). When every service has less than
// 4 GB, as in a flood's window of 200k one-packet services, it sorts
// (^bytes, key) packed into one uint64 with the ordered sort, several
// times faster than sorting structs through a comparison function; idx
// (key -> position + 1) finds each service again.
func sortRanks(order []svcRank, sc *svcScratch, idx *[svcKeys]int32) {
	for _, o := range order {
		if o.bytes >= 1<<32 {
			slices.SortFunc(order, func(a, b svcRank) int {
				if c := cmp.Compare(b.bytes, a.bytes); c != 0 {
					return c
				}
				return cmp.Compare(a.key, b.key)
			})
			return
		}
	}
	packed := sc.packed[:0]
	for _, o := range order {
		packed = append(packed, uint64(^uint32(o.bytes))<<32|uint64(o.key))
	}
	if len(packed) < radixMin {
		slices.Sort(packed)
	} else {
		sc.spare = radixSort(packed, slices.Grow(sc.spare[:0], len(packed))[:len(packed)])
	}
	for n, p := range packed {
		key := uint32(p)
		order[n] = svcRank{bytes: uint64(^uint32(p >> 32)), key: key, pos: idx[key] - 1}
	}
	sc.packed = packed[:0]
}

func subCounts(a, b window.Counts) window.Counts {
	return window.Counts{TxPackets: a.TxPackets - b.TxPackets, TxBytes: a.TxBytes - b.TxBytes, RxPackets: a.RxPackets - b.RxPackets, RxBytes: a.RxBytes - b.RxBytes}
}

// radixMin is the number of keys from which radixSort beats slices.Sort
// (a flood's window: 150k services).
const radixMin = 1 << 12

// radixSort sorts s in place, ascending, by 16-bit digits from the lowest
// (four passes at most; a digit that is the same in every key is skipped,
// as the unused bits of sortRanks' keys are), with spare (len(s)) as the
// other buffer. It returns spare for reuse.
func radixSort(s, spare []uint64) []uint64 {
	var count [1 << 16]int32
	src, dst := s, spare
	for shift := uint(0); shift < 64; shift += 16 {
		clear(count[:])
		for _, v := range src {
			count[v>>shift&0xffff]++
		}
		if count[src[0]>>shift&0xffff] == int32(len(src)) {
			continue // every key has this digit
		}
		pos := int32(0)
		for d := range count {
			c := count[d]
			count[d] = pos
			pos += c
		}
		for _, v := range src {
			d := v >> shift & 0xffff
			dst[count[d]] = v
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &s[0] {
		copy(s, src)
		return src
	}
	return dst
}

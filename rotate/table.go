package rotate

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"

	"github.com/dstwatch/dstwatch/capture"
)

// table is the open window's remotes: rows in arrival order, found through
// an open-addressing index (linear probing, power-of-two size). An index
// entry holds 32 bits of the address's hash and the row's position, so a
// probe only reads a row when the hash bits match: a known remote costs one
// read of an 8-byte entry and one of its row, a new one just the entry. A Go
// map from address to position cost several times as much and was the
// largest single cost of a replay.
//
// Rows are not stored in the index itself (which would save the second
// read) because that costs memory: 48-byte slots at most 3/4 full double
// the size of a scan's window (1.5M remotes: 200 MB of slots instead of 72 MB
// of rows plus 32 MB of index), and a window in the writer's hands while the
// next one fills means two of them.
//
// The hash is seeded per table from a random source, so the addresses of a
// scan cannot be chosen to collide (linear probing degrades badly under
// chosen collisions).
type table struct {
	index []uint64 // 0: empty; else hash bits << 32 | row position + 1
	rows  []row
	shift uint // 64 - log2(len(index)): the hash's top bits pick the entry
	limit int  // grow the index when this many rows exist: half its entries
	seed  [2]uint64
	// max is the most rows the table takes (0: no bound); get returns nil
	// for a new remote past it. It bounds the open window's memory however
	// many addresses a flood of spoofed sources brings.
	max int
	// free brings the row arrays of windows the writer has finished, to be
	// adopted when the rows outgrow their array (see recycled).
	free chan []row
	want int // rows expected: the previous window's and an eighth
}

// minIndex keeps the index of a quiet window small: a month of 20 s windows
// with a handful of remotes each must not clear 130k large arrays.
const minIndex = 16

// indexFor is the index size that holds n rows at most half full.
func indexFor(n int) int {
	want := 2*n + 1
	if want <= minIndex {
		return minIndex
	}
	return 1 << bits.Len(uint(want-1))
}

// reset makes t an empty table sized for n remotes (the previous window's
// count, so a steady load never grows its index). It reuses t's own index
// when its size is right. Rows go into a finished window's array when one
// is back already and large enough; else they start small and move into one
// when they outgrow their array (grow): at the switch from one window to
// the next the writer still holds the one that closed, and allocating the
// next one's rows in full then held both at once.
func (t *table) reset(n int) {
	size := indexFor(n)
	if len(t.index) == size {
		clear(t.index)
	} else {
		t.index = make([]uint64, size)
	}
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	t.limit = size / 2
	t.want = wantRows(n, t.max)
	t.rows = startArray(t.free, t.want)
	t.seed = [2]uint64{rand.Uint64() | 1, rand.Uint64()}
}

// wantRows is the array a window sized for n rows should have: an eighth of
// headroom, so that a window a little busier than the last one does not
// copy all its rows, within the bound (0: none).
func wantRows(n, bound int) int {
	want := n + n/8
	if bound > 0 {
		want = min(want, bound)
	}
	return max(want, 1)
}

// startRows is the array a table starts with when no finished one fits.
const startRows = 1024

// recycled returns rows (copied) in a finished window's array from free
// whose capacity is within [least, most], or rows as they are when none
// is. An array of the wrong size is left to the collector: too large, it
// would hold on to a flood's memory for good.
func recycled[T any](free chan []T, rows []T, least, most int) []T {
	for {
		select {
		case buf := <-free:
			if cap(buf) >= least && cap(buf) <= most {
				return append(buf[:0], rows...)
			}
			continue
		default:
			return rows
		}
	}
}

// startArray is reset's array for a window expected to hold want rows.
func startArray[T any](free chan []T, want int) []T {
	if r := recycled(free, []T(nil), want, 2*want+startRows); r != nil {
		return r
	}
	// A quarter: a writer that keeps up hands an array back before the
	// window needs more; one that is behind (a flood's windows) does not,
	// and growing from a few rows then copied the window's rows again and
	// again.
	return make([]T, 0, min(want, max(startRows, want/4)))
}

// roomFor gives a full array room for more: a finished window's array if one
// is back (up to twice the window's expected size), else twice the
// capacity (growTo).
func roomFor[T any](free chan []T, rows []T, want, bound int) []T {
	if r := recycled(free, rows, cap(rows)+1, 2*want+startRows); cap(r) > len(r) {
		return r
	}
	return growTo(rows, bound)
}

func (t *table) hash(hi, lo uint64) uint64 {
	// wyhash's mum: a 64x64->128 multiply of the seeded halves, folded.
	h, l := bits.Mul64(hi^t.seed[0], lo^t.seed[1])
	return h ^ l
}

// get returns the row of addr and its position, adding it if it is new;
// nil when it is new and the table holds max rows. The pointer is valid
// until the next get; the position for as long as the window is open.
func (t *table) get(addr *[16]byte) (*row, uint32) {
	hi := binary.LittleEndian.Uint64(addr[:8])
	lo := binary.LittleEndian.Uint64(addr[8:])
	h := t.hash(hi, lo)
	tag := h << 32 // the low bits; the top ones pick the entry
	mask := uint64(len(t.index) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		e := t.index[i]
		if e == 0 {
			if t.max > 0 && len(t.rows) >= t.max {
				return nil, 0
			}
			if len(t.rows) >= t.limit {
				t.grow()
				return t.get(addr)
			}
			if len(t.rows) == cap(t.rows) {
				t.rows = roomFor(t.free, t.rows, t.want, t.max)
			}
			t.rows = append(t.rows, row{addr: *addr})
			t.index[i] = tag | uint64(len(t.rows))
			return &t.rows[len(t.rows)-1], uint32(len(t.rows) - 1)
		}
		if e&^(1<<32-1) == tag {
			r := &t.rows[uint32(e)-1]
			if binary.LittleEndian.Uint64(r.addr[:8]) == hi && binary.LittleEndian.Uint64(r.addr[8:]) == lo {
				return r, uint32(e) - 1
			}
		}
	}
}

// grow doubles the index. It runs only when a window has more remotes than
// the one before it by a margin: the table is sized from the previous window.
func (t *table) grow() {
	t.index = make([]uint64, 2*len(t.index))
	t.shift--
	t.limit = len(t.index) / 2
	mask := uint64(len(t.index) - 1)
	for k := range t.rows {
		r := &t.rows[k]
		h := t.hash(binary.LittleEndian.Uint64(r.addr[:8]), binary.LittleEndian.Uint64(r.addr[8:]))
		i := h >> t.shift
		for t.index[i] != 0 {
			i = (i + 1) & mask
		}
		t.index[i] = h<<32 | uint64(k+1)
	}
}

// prefetchMin is the index size (entries) from which touch pays: below
// it the index and rows stay in the CPU caches anyway.
const prefetchMin = 1 << 15

// touch reads the index entries, then the rows, that get will probe
// first for the remotes of evs' tallied events, and returns a value
// that depends on them (so the loads are not dropped). The loads of a
// batch are independent of one another, so the CPU overlaps their cache
// misses, where get's probe of one remote waits for the one before: in a
// window of 100k remotes most of the tally's time was those waits.
func (t *table) touch(evs []capture.Event, pairs *pairTable) uint64 {
	if len(t.index) < prefetchMin {
		return 0
	}
	var sink uint64
	var slots [capture.BatchSize]uint32
	var evAt [capture.BatchSize]uint16
	n := 0
	for i := range evs {
		ev := &evs[i]
		if ev.Kind != capture.Egress && ev.Kind != capture.Ingress || n == len(slots) {
			continue
		}
		h := t.hash(binary.LittleEndian.Uint64(ev.Remote[:8]), binary.LittleEndian.Uint64(ev.Remote[8:]))
		slots[n], evAt[n] = uint32(h>>t.shift), uint16(i)
		sink += t.index[slots[n]]
		n++
	}
	// The remotes that use several services are tallied in the pair table
	// too (a scan's, a browser's): their pair entries next, once their
	// rows say so.
	m := 0
	for k, i := range slots[:n] {
		if e := t.index[i]; e != 0 && int(uint32(e)) <= len(t.rows) {
			r := &t.rows[uint32(e)-1]
			sink += r.TxPackets
			if r.mixed && len(pairs.index) >= prefetchMin {
				// The entry probed first is the row's only when the hash
				// bits match; a collision merely prefetches in vain.
				h := pairs.hash(pairKey(uint32(e)-1, uint32(evs[evAt[k]].Service())))
				slots[m] = uint32(h >> pairs.shift)
				sink += pairs.index[slots[m]]
				m++
			}
		}
	}
	for _, i := range slots[:m] {
		if e := pairs.index[i]; e != 0 && int(uint32(e)) <= len(pairs.rows) {
			sink += pairs.rows[uint32(e)-1].TxPackets
		}
	}
	return sink
}

// remotes is the number of distinct remotes.
func (t *table) remotes() int { return len(t.rows) }

// take returns the rows and forgets them; the index stays for the next
// window.
func (t *table) take() []row {
	rows := t.rows
	t.rows = nil
	return rows
}

// growTo doubles a full slice's capacity, stopping at limit (0: none).
// append grows large slices by about a quarter, so a scan's window growing
// to a million rows was copied again and again, in long copies the garbage
// collector has to wait for; the limit keeps a bounded table from holding an
// array twice the size of its bound.
func growTo[T any](s []T, limit int) []T {
	c := max(2*cap(s), 1024)
	if limit > 0 && c > limit {
		c = max(limit, cap(s)+1)
	}
	n := make([]T, len(s), c)
	copy(n, s)
	return n
}

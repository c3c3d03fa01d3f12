package rotate

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
)

// table is the open window's remotes: an open-addressing hash table (linear
// probing, power-of-two size) whose slots are the rows themselves, so a
// packet for a known remote costs one probe into one array, usually one
// cache miss. A Go map keyed by the address plus a slice of rows cost two
// misses (map group, then row) and was the largest single cost of a replay.
//
// The all-zero address marks an empty slot; the remote :: (possible as the
// source of an IPv6 packet) is kept aside in zero. The hash is seeded per
// table from a random source, so the addresses of a scan cannot be chosen to
// collide (linear probing degrades badly under chosen collisions).
type table struct {
	slots   []row
	shift   uint // 64 - log2(len(slots)): the hash's top bits index the slots
	n       int  // occupied slots
	limit   int  // grow when n reaches this: 3/4 of len(slots)
	seed    [2]uint64
	zero    row
	hasZero bool
}

// minSlots keeps a table of a quiet window small: a month of 20 s windows
// with a handful of remotes each must not clear 130k large arrays.
const minSlots = 16

// slotsFor is the table size that holds n remotes below the load limit.
func slotsFor(n int) int {
	want := n + n/3 + 1 // n / (3/4), rounded up
	if want <= minSlots {
		return minSlots
	}
	return 1 << bits.Len(uint(want-1))
}

// reset makes t an empty table of size slotsFor(n), reusing buf (a slice of
// a previous table, handed back by Finish) when it is large enough.
func (t *table) reset(n int, buf []row) {
	size := slotsFor(n)
	if cap(buf) >= size && cap(buf) <= 2*size {
		size = cap(buf)
		t.slots = buf[:size]
		clear(t.slots)
	} else {
		t.slots = make([]row, size)
	}
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	t.n = 0
	t.limit = size - size/4
	t.seed = [2]uint64{rand.Uint64() | 1, rand.Uint64()}
	t.zero, t.hasZero = row{}, false
}

func (t *table) hash(hi, lo uint64) uint64 {
	// wyhash's mum: a 64x64->128 multiply of the seeded halves, folded.
	h, l := bits.Mul64(hi^t.seed[0], lo^t.seed[1])
	return h ^ l
}

// get returns the row of addr, adding it if it is new. The pointer is valid
// until the next get.
func (t *table) get(addr *[16]byte) *row {
	hi := binary.LittleEndian.Uint64(addr[:8])
	lo := binary.LittleEndian.Uint64(addr[8:])
	if hi|lo == 0 {
		t.hasZero = true
		return &t.zero
	}
	mask := uint64(len(t.slots) - 1)
	i := t.hash(hi, lo) >> t.shift
	for {
		s := &t.slots[i]
		shi := binary.LittleEndian.Uint64(s.addr[:8])
		slo := binary.LittleEndian.Uint64(s.addr[8:])
		if shi == hi && slo == lo {
			return s
		}
		if shi|slo == 0 {
			if t.n >= t.limit {
				t.grow()
				return t.get(addr)
			}
			t.n++
			s.addr = *addr
			return s
		}
		i = (i + 1) & mask
	}
}

// grow doubles the table. It runs only when a window has more remotes than
// the one before it by a margin: the table is sized from the previous window.
func (t *table) grow() {
	old := t.slots
	t.slots = make([]row, 2*len(old))
	t.shift--
	t.limit = len(t.slots) - len(t.slots)/4
	mask := uint64(len(t.slots) - 1)
	for k := range old {
		r := &old[k]
		hi := binary.LittleEndian.Uint64(r.addr[:8])
		lo := binary.LittleEndian.Uint64(r.addr[8:])
		if hi|lo == 0 {
			continue
		}
		i := t.hash(hi, lo) >> t.shift
		for {
			s := &t.slots[i]
			if binary.LittleEndian.Uint64(s.addr[:8])|binary.LittleEndian.Uint64(s.addr[8:]) == 0 {
				*s = *r
				break
			}
			i = (i + 1) & mask
		}
	}
}

// remotes is the number of distinct remotes.
func (t *table) remotes() int {
	if t.hasZero {
		return t.n + 1
	}
	return t.n
}

// rows compacts the occupied slots to the front of the slot array, in place,
// and returns them; the table is unusable afterwards. The result's capacity
// is the whole array, so it can be handed back for reuse.
func (t *table) rows() []row {
	rows := t.slots
	j := 0
	for i := range rows {
		if binary.LittleEndian.Uint64(rows[i].addr[:8])|binary.LittleEndian.Uint64(rows[i].addr[8:]) != 0 {
			rows[j] = rows[i]
			j++
		}
	}
	// The load limit leaves at least a quarter of the slots free, so the
	// zero address always fits behind the others.
	if t.hasZero {
		rows[j] = t.zero
		j++
	}
	t.slots = nil
	return rows[:j]
}

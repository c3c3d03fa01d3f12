package rotate

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/window"
)

// TestTableMatchesMap tallies windows of very different sizes (so tables are
// sized from a smaller or larger previous window, grow mid-window and reuse
// arrays handed back by Finish) and compares every remote with a plain map.
// The address :: is among the remotes.
func TestTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var closed []*Closed
	tl := New(Config{Length: L}, func(c *Closed) { closed = append(closed, c) })
	var truths []map[netip.Addr]window.Counts
	for wi, remotes := range []int{5, 3000, 40, 70000, 70000, 1, 20000} {
		truth := map[netip.Addr]window.Counts{}
		var evs []capture.Event
		for i := range 3 * remotes {
			var a [16]byte
			switch k := rng.IntN(remotes); {
			case k == 0:
				// :: stays zero.
			case k%2 == 0:
				a = netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)}).As16()
			default:
				a = [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(k >> 16), byte(k >> 8), byte(k), 0, 15: 1}
			}
			kind := capture.Kind(i & 1)
			e := capture.Event{TS: base.Add(time.Duration(wi)*L + time.Duration(i)).UnixNano(), Kind: kind, Len: uint32(i % 1500), Remote: a}
			evs = append(evs, e)
			c := truth[netip.AddrFrom16(a).Unmap()]
			if kind == capture.Egress {
				c.TxPackets++
				c.TxBytes += uint64(e.Len)
			} else {
				c.RxPackets++
				c.RxBytes += uint64(e.Len)
			}
			truth[netip.AddrFrom16(a).Unmap()] = c
		}
		truths = append(truths, truth)
		tl.add(evs, clock{})
		// Finish each closed window at once, so its array is reused.
		for len(closed) > 0 {
			c := closed[0]
			closed = closed[1:]
			checkWindow(t, c, truths[0])
			truths = truths[1:]
		}
	}
	tl.flush()
	checkWindow(t, closed[0], truths[0])
}

func checkWindow(t *testing.T, c *Closed, truth map[netip.Addr]window.Counts) {
	t.Helper()
	if c.Remotes() != len(truth) {
		t.Fatalf("window %v: %d remotes, want %d", c.Start, c.Remotes(), len(truth))
	}
	w := c.Finish(0)
	for _, r := range w.Remotes {
		if truth[r.Addr] != r.Counts {
			t.Fatalf("window %v: %v = %+v, want %+v", w.Start, r.Addr, r.Counts, truth[r.Addr])
		}
	}
}

// sortRanks' packed sort (every service under 4 GB) orders exactly as
// the comparison sort: bytes descending, ties by key.
func TestSortRanksMatchesCompare(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	idx := new([svcKeys]int32)
	for _, big := range []bool{false, true} {
		order := make([]svcRank, 5000)
		for i := range order {
			key := uint32(i*7919) % svcKeys
			order[i] = svcRank{bytes: uint64(rng.IntN(30)), key: key, pos: int32(i)}
			if big && i == 17 {
				order[i].bytes = 1 << 33
			}
			idx[key] = int32(i + 1)
		}
		want := slices.Clone(order)
		slices.SortFunc(want, func(a, b svcRank) int {
			if c := cmp.Compare(b.bytes, a.bytes); c != 0 {
				return c
			}
			return cmp.Compare(a.key, b.key)
		})
		sortRanks(order, &svcScratch{}, idx)
		if !slices.Equal(order, want) {
			t.Fatalf("big=%v: order differs", big)
		}
	}
}

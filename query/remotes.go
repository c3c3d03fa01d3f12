package query

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"

	"github.com/dstwatch/dstwatch/window"
)

// remoteRows is what `--by remote` adds up while it reads: a month's
// answer adds about 1.5M remote entries into some 20,000 rows, and each
// entry's row, looked up through a map keyed by netip.Addr and kept in a
// Row of 200 bytes, missed the cache twice. Here the address finds its
// row in an open-addressing table of 8-byte words (IPv4; IPv6 in a table
// of its own), and the row is one 64-byte cache line; Rows are made once,
// at the end.
type remoteRows struct {
	v4     []uint64 // address << 32 | row + 1; 0 empty
	v6     []addr6
	n4, n6 int
	seed   [2]uint64
	rows   []remoteRow
	addrs  []netip.Addr       // rows[i]'s address
	zoned  map[netip.Addr]int // addresses with a zone, which no stored remote has
	odd    map[int]string     // rows[i]'s country when it is not "" or two letters A-Z (ccOdd)
}

type addr6 struct {
	hi, lo uint64
	row    uint32 // row + 1; 0 empty
}

// remoteRow is one remote's sums and its newest answer, given by the unit
// that started at at (Unix seconds, clamped to 32 bits: units that a
// storage span reads start from 1970 on): 64 bytes.
type remoteRow struct {
	window.Counts
	asOrg string
	asn   uint32
	at    uint32
	cc    uint16 // the country's ccSlot, or ccOdd
}

// ccOdd is remoteRow.cc of a country that has no ccSlot.
const ccOdd = 0xffff

// ccNames are the countries of the ccSlots.
var ccNames = func() (t [26*26 + 1]string) {
	for i := range 26 * 26 {
		t[i] = string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
	}
	return t
}()

func unitAt(start int64) uint32 { return uint32(min(max(start, 0), 1<<32-1)) }

// country is row i's country.
func (t *remoteRows) country(i int) string {
	if cc := t.rows[i].cc; cc != ccOdd {
		return ccNames[cc]
	}
	return t.odd[i]
}

// setCountry makes cc row i's country.
func (t *remoteRows) setCountry(i int, cc string) {
	k := ccSlot(cc)
	if k < 0 {
		if t.odd == nil {
			t.odd = map[int]string{}
		}
		t.odd[i] = cc
		t.rows[i].cc = ccOdd
		return
	}
	t.rows[i].cc = uint16(k)
}

func newRemoteRows() *remoteRows {
	if t, ok := spareRemoteRows.Get().(*remoteRows); ok {
		return t
	}
	return &remoteRows{v4: make([]uint64, 1024), v6: make([]addr6, 256), seed: [2]uint64{rand.Uint64() | 1, rand.Uint64()}}
}

// spareRemoteRows keeps the tables and rows of answers that are done for
// the next (a month's are a few megabytes per worker, allocated again for
// every answer).
var spareRemoteRows sync.Pool

// release empties t and keeps it for a later answer; t must not be used
// afterwards.
func (t *remoteRows) release() {
	clear(t.v4)
	clear(t.v6)
	clear(t.rows) // drop the organisations' strings
	*t = remoteRows{v4: t.v4, v6: t.v6, seed: t.seed, rows: t.rows[:0], addrs: t.addrs[:0]}
	spareRemoteRows.Put(t)
}

// add adds r, from the unit that started at at, to its row; its answer is
// the row's, as Aggregator.Add expects units oldest first. (merge, which
// meets units in no set order, keeps the answer with the latest at.)
func (t *remoteRows) add(r *window.Remote, at uint32) {
	i, ok := t.row(r.Addr)
	row := &t.rows[i]
	row.Counts.Add(r.Counts)
	row.at, row.asn = at, r.ASN
	// Most entries repeat the answer; not storing it again keeps the
	// row's line clean.
	if k := ccSlot(r.Country); k < 0 || !ok || row.cc != uint16(k) {
		t.setCountry(i, r.Country)
	}
	if row.asOrg != r.ASOrg {
		row.asOrg = r.ASOrg
	}
}

// merge adds o's rows into t.
func (t *remoteRows) merge(o *remoteRows) {
	for j := range o.rows {
		or := &o.rows[j]
		i, ok := t.row(o.addrs[j])
		row := &t.rows[i]
		if !ok || or.at > row.at {
			row.at, row.asOrg, row.asn = or.at, or.asOrg, or.asn
			t.setCountry(i, o.country(j))
		}
		row.Counts.Add(or.Counts)
	}
}

// appendRows appends a Row for each remote to rows.
func (t *remoteRows) appendRows(rows []Row) []Row {
	for i := range t.rows {
		r := &t.rows[i]
		rows = append(rows, Row{Addr: t.addrs[i], Country: t.country(i), ASN: r.asn, ASOrg: r.asOrg, Counts: r.Counts})
	}
	return rows
}

// row returns the index of a's row, adding a zero row if a is new, and
// whether it was there.
func (t *remoteRows) row(a netip.Addr) (int, bool) {
	if a.Zone() != "" {
		if i, ok := t.zoned[a]; ok {
			return i, true
		}
		if t.zoned == nil {
			t.zoned = map[netip.Addr]int{}
		}
		t.zoned[a] = len(t.rows)
		t.rows = append(t.rows, remoteRow{})
		t.addrs = append(t.addrs, a)
		return len(t.rows) - 1, false
	}
	if a.Is4() {
		k := key4(a)
		mask := uint64(len(t.v4) - 1)
		for i := t.hash(k, k>>32) & mask; ; i = (i + 1) & mask {
			s := t.v4[i]
			if s == 0 {
				break
			}
			if s>>32 == k>>32 {
				return int(uint32(s)) - 1, true
			}
		}
	} else {
		hi, lo := key6(a)
		mask := uint64(len(t.v6) - 1)
		for i := t.hash(hi, lo) & mask; ; i = (i + 1) & mask {
			s := &t.v6[i]
			if s.row == 0 {
				break
			}
			if s.hi == hi && s.lo == lo {
				return int(s.row) - 1, true
			}
		}
	}
	if 4*(t.n4+1) > 3*len(t.v4) || 4*(t.n6+1) > 3*len(t.v6) {
		t.grow()
	}
	t.rows = append(t.rows, remoteRow{})
	t.addrs = append(t.addrs, a)
	t.place(a, len(t.rows)-1)
	return len(t.rows) - 1, false
}

func key4(a netip.Addr) uint64 {
	v := a.As4()
	return uint64(binary.BigEndian.Uint32(v[:])) << 32
}

func key6(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// place puts a, which is not in the tables, in them as row's address.
func (t *remoteRows) place(a netip.Addr, row int) {
	if a.Is4() {
		k := key4(a)
		mask := uint64(len(t.v4) - 1)
		i := t.hash(k, k>>32) & mask
		for t.v4[i] != 0 {
			i = (i + 1) & mask
		}
		t.v4[i] = k | uint64(row+1)
		t.n4++
		return
	}
	hi, lo := key6(a)
	mask := uint64(len(t.v6) - 1)
	i := t.hash(hi, lo) & mask
	for t.v6[i].row != 0 {
		i = (i + 1) & mask
	}
	t.v6[i] = addr6{hi, lo, uint32(row + 1)}
	t.n6++
}

func (t *remoteRows) hash(hi, lo uint64) uint64 {
	h, l := bits.Mul64(hi^t.seed[0], lo^t.seed[1])
	return h ^ l
}

// grow doubles a table that is three quarters full and puts the rows'
// addresses back in.
func (t *remoteRows) grow() {
	n4, n6 := len(t.v4), len(t.v6)
	if 4*(t.n4+1) > 3*n4 {
		n4 *= 2
	}
	if 4*(t.n6+1) > 3*n6 {
		n6 *= 2
	}
	t.v4, t.v6, t.n4, t.n6 = make([]uint64, n4), make([]addr6, n6), 0, 0
	for i, a := range t.addrs {
		if a.Zone() == "" {
			t.place(a, i)
		}
	}
}

// top is Top(a.Rows(s), n): for --by remote it makes a Row, a key and a
// place in the sort only for the remotes that can be among the top n (as
// heavy as the n-th heaviest or heavier), and adds the rest up as they
// are. Rows are ordered by a total order (weight, then unique key), so
// the first n are the same whichever rows are sorted with them.
func (a *Aggregator) top(s Sort, n int) []Row {
	if a.by != ByRemote || n <= 0 || len(a.remotes.rows) <= n {
		return Top(a.Rows(s), n)
	}
	t := a.remotes
	ws := make([]uint64, len(t.rows))
	for i := range t.rows {
		ws[i] = s.weight(t.rows[i].Counts)
	}
	sorted := slices.Clone(ws)
	slices.Sort(sorted)
	least := sorted[len(sorted)-n] // the n-th heaviest weight
	rest := Row{Key: OtherKey}
	var rows []Row
	for i := range t.rows {
		r := &t.rows[i]
		if ws[i] < least {
			rest.Counts.Add(r.Counts)
			rest.Remotes++
			continue
		}
		rows = append(rows, Row{Key: t.addrs[i].String(), Addr: t.addrs[i], Country: t.country(i), ASN: r.asn, ASOrg: r.asOrg, Counts: r.Counts})
	}
	SortRows(rows, s)
	for _, r := range rows[n:] {
		rest.Counts.Add(r.Counts)
		rest.Remotes++
	}
	if a.other >= 0 {
		rest.Counts.Add(a.rows[a.other].Counts)
	}
	return append(rows[:n:n], rest)
}

// Package query owns what a question over stored windows means: which
// remotes a filter keeps, how windows add up per remote, country or ASN, how
// rows are ordered and cut to a top N, and the JSON shapes of windows and
// rows, and Reader, the one way to read windows and their answers (a
// Range of them) from a database, the daemon or its API. The daemon's API
// and the CLI both answer with this one implementation, so that a query
// gives the same numbers whichever of them read the windows.
package query

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// Direction selects which way's counts a query keeps.
type Direction int

const (
	Both Direction = iota // tx and rx
	Tx                    // egress only: rx counts read as zero
	Rx                    // ingress only: tx counts read as zero
)

// ParseDirection reads "tx", "rx", "both" (or "").
func ParseDirection(s string) (Direction, error) {
	switch strings.ToLower(s) {
	case "", "both":
		return Both, nil
	case "tx":
		return Tx, nil
	case "rx":
		return Rx, nil
	}
	return Both, fmt.Errorf("direction %q: want tx, rx or both", s)
}

func (d Direction) String() string {
	switch d {
	case Tx:
		return "tx"
	case Rx:
		return "rx"
	}
	return "both"
}

// Filter selects remotes. Within a field any entry matches (OR); across
// fields all must match (AND). A zero Filter keeps everything.
type Filter struct {
	Remotes   []netip.Prefix // remote address within one of these
	Countries []string       // ISO code, case-insensitive; "--" matches unknown
	ASNs      []uint32       // AS number; 0 matches unknown
	Direction Direction
}

// SelectsRemotes reports whether the filter looks at remotes' identities.
// Remotes folded into a window's "other" have none, so such a filter drops
// them.
func (f Filter) SelectsRemotes() bool {
	return len(f.Remotes) > 0 || len(f.Countries) > 0 || len(f.ASNs) > 0
}

// IsZero reports whether the filter keeps everything unchanged.
func (f Filter) IsZero() bool { return !f.SelectsRemotes() && f.Direction == Both }

func (f Filter) match(r *window.Remote) bool {
	if len(f.Remotes) > 0 && !slices.ContainsFunc(f.Remotes, func(p netip.Prefix) bool { return p.Contains(r.Addr) }) {
		return false
	}
	if len(f.Countries) > 0 && !slices.ContainsFunc(f.Countries, func(c string) bool {
		return strings.EqualFold(c, r.Country) || (c == "--" && r.Country == "")
	}) {
		return false
	}
	if len(f.ASNs) > 0 && !slices.Contains(f.ASNs, r.ASN) {
		return false
	}
	return true
}

// Apply is c as d counts it: one way's counts zeroed, or both kept.
func (d Direction) Apply(c window.Counts) window.Counts {
	switch d {
	case Tx:
		c.RxPackets, c.RxBytes = 0, 0
	case Rx:
		c.TxPackets, c.TxBytes = 0, 0
	}
	return c
}

// Key is the Row.Key of the row a remote adds to when rows are grouped by
// remote, country or AS.
func Key(by By, r *window.Remote) string {
	switch by {
	case ByCountry:
		return r.Country
	case ByASN:
		return strconv.FormatUint(uint64(r.ASN), 10)
	}
	return r.Addr.String()
}

// Apply returns w with only the matching remotes, each way's counts zeroed
// as Direction says, and remotes left with nothing counted dropped. The
// window's stats are kept as they are: drops and folds describe the window,
// not the selection. w itself is not changed; Apply is idempotent.
func (f Filter) Apply(w *window.Window) *window.Window {
	return f.applyInto(&window.Window{Remotes: make([]window.Remote, 0, len(w.Remotes))}, w)
}

// applyInto is Apply into out, reusing the memory of its Remotes (a
// worker's answer filters every unit into one window).
func (f Filter) applyInto(out, w *window.Window) *window.Window {
	if f.IsZero() {
		return w
	}
	rs := out.Remotes[:0]
	*out = *w
	out.Remotes = rs
	for _, r := range w.Remotes {
		if !f.match(&r) {
			continue
		}
		r.Counts = f.Direction.Apply(r.Counts)
		if r.Counts.IsZero() {
			continue
		}
		out.Remotes = append(out.Remotes, r)
	}
	out.Other = f.Direction.Apply(w.Other)
	if f.SelectsRemotes() {
		out.Other = window.Counts{}
	}
	return out
}

// By is what rows are grouped by.
type By string

const (
	ByWindow  By = "window"
	ByRemote  By = "remote"
	ByCountry By = "country"
	ByASN     By = "asn"
	ByPrefix  By = "prefix" // remotes' networks: --prefix4/--prefix6 bits
)

// Default prefix lengths of ByPrefix: an IPv4 /24 is the smallest block
// routed on the internet, an IPv6 /48 what one site is given.
const (
	DefaultPrefix4 = 24
	DefaultPrefix6 = 48
)

// ParseBy reads a grouping name.
func ParseBy(s string) (By, error) {
	switch b := By(strings.ToLower(s)); b {
	case ByWindow, ByRemote, ByCountry, ByASN, ByPrefix, ByService, ByHour, ByDay, ByWeek, ByMonth:
		return b, nil
	}
	return "", fmt.Errorf("by %q: want window, remote, country, asn, prefix, service, hour, day, week or month", s)
}

// Sort is what rows are ordered by, heaviest first.
type Sort string

const (
	SortBytes   Sort = "bytes"
	SortPackets Sort = "packets"
)

// ParseSort reads a sort key name.
func ParseSort(s string) (Sort, error) {
	switch o := Sort(strings.ToLower(s)); o {
	case "":
		return SortBytes, nil
	case SortBytes, SortPackets:
		return o, nil
	}
	return "", fmt.Errorf("sort %q: want bytes or packets", s)
}

func (s Sort) weight(c window.Counts) uint64 {
	if s == SortPackets {
		return c.Packets()
	}
	return c.Bytes()
}

// OtherKey is the Key of the row that holds remotes folded by the daemon's
// cardinality cap or by Top.
const OtherKey = "other"

// Row is one line of an aggregate: a remote, a country, an AS, a network,
// a period, or the folded rest (Key OtherKey).
type Row struct {
	Key     string       // address, country code ("" unknown), AS number or prefix; OtherKey for the rest
	Addr    netip.Addr   // ByRemote
	Prefix  netip.Prefix // ByPrefix
	Country string       // ByRemote (the newest answer) and ByCountry
	ASN     uint32       // ByRemote and ByASN
	ASOrg   string       // ByRemote and ByASN
	Remotes int          // distinct remotes (ByCountry, ByASN, ByPrefix, periods); for the other row, those Top folded
	// Periods: the period [Start, End), and whether Remotes is only a
	// lower bound (remotes folded by a cap have no address to count).
	Start, End time.Time
	Inexact    bool
	window.Counts
}

// IsOther reports whether r is the folded rest.
func (r *Row) IsOther() bool { return r.Key == OtherKey }

// Aggregator adds windows up, one at a time, so a long range needs memory
// for its rows only, not for its windows. Rows are found by the remote's
// address, the AS number or the country code; their string keys are made
// once, by Rows. Add keeps no pointer into a window (only its strings), so
// windows may be reused after it returns (storage.SpanOptions.Reuse).
type Aggregator struct {
	by       By
	rows     []Row
	remotes  *remoteRows            // ByRemote: its rows until Rows (remotes.go)
	byASN    map[uint32]int32       // ByASN
	byCC     map[string]int32       // ByCountry, for codes ccRow does not hold
	ccRow    [26*26 + 1]int32       // ByCountry: row + 1 by code (ccSlot), 0 none yet
	byPrefix map[netip.Prefix]int32 // ByPrefix
	bits4    int                    // ByPrefix
	bits6    int
	period   periodState // periods.go
	other    int32       // index of the other row; -1 none yet
	seen     *pairSet    // distinct remotes per row, ByCountry/ByASN/ByPrefix: (address, row) present
	sum      Summary
	// at[j] is when row j's newest answer was set: the start (Unix
	// seconds) of the newest unit that gave ByASN's ASOrg (noAnswer: none
	// did), so that aggregators that added up different units merge to
	// what one would have.
	at []int64
}

// noAnswer is Aggregator.at of a row no unit gave an answer yet.
const noAnswer = math.MinInt64

// ccSlot is the ccRow entry of a country code: "" and two letters A-Z, as
// storage decodes them; -1 for anything else.
func ccSlot(cc string) int {
	switch {
	case cc == "":
		return 26 * 26
	case len(cc) == 2 && cc[0]-'A' < 26 && cc[1]-'A' < 26:
		return int(cc[0]-'A')*26 + int(cc[1]-'A')
	}
	return -1
}

// NewAggregator groups by remote, country, asn, prefix (DefaultPrefix4
// and DefaultPrefix6) or period (UTC); ByWindow is not an aggregate
// (windows are their own rows).
func NewAggregator(by By) (*Aggregator, error) {
	return NewAggregatorFor(Question{By: by})
}

// NewAggregatorFor groups as q asks: q.By, with q's zone for periods and
// q's prefix lengths.
func NewAggregatorFor(q Question) (*Aggregator, error) {
	by := q.By
	a := &Aggregator{by: by, other: -1}
	if by.IsPeriod() {
		a.period = periodState{loc: q.Loc, cur: -1}
		if a.period.loc == nil {
			a.period.loc = time.UTC
		}
		return a, nil
	}
	switch by {
	case ByPrefix:
		a.byPrefix = map[netip.Prefix]int32{}
		a.seen = newPairSet()
		a.bits4, a.bits6 = cmp.Or(q.Prefix4, DefaultPrefix4), cmp.Or(q.Prefix6, DefaultPrefix6)
		if a.bits4 < 1 || a.bits4 > 32 || a.bits6 < 1 || a.bits6 > 128 {
			return nil, fmt.Errorf("prefix lengths /%d and /%d: want 1 to 32 and 1 to 128", a.bits4, a.bits6)
		}
	case ByRemote:
		a.remotes = newRemoteRows()
	case ByCountry:
		a.byCC = map[string]int32{}
		a.seen = newPairSet()
	case ByASN:
		a.byASN = map[uint32]int32{}
		a.seen = newPairSet()
	default:
		return nil, fmt.Errorf("cannot aggregate by %q: want remote, country, asn, prefix or a period", by)
	}
	return a, nil
}

// Add adds one window, which the caller has already filtered (Filter.Apply
// keeps what the Summary needs: start, length, statistics, Capped). Windows
// are expected oldest first: a remote's newest GeoIP answer wins.
func (a *Aggregator) Add(w *window.Window) {
	a.sum.add(w)
	if a.by.IsPeriod() {
		a.addPeriod(w)
		return
	}
	switch a.by {
	case ByPrefix:
		for i := range w.Remotes {
			r := &w.Remotes[i]
			bits := a.bits6
			if r.Addr.Is4() {
				bits = a.bits4
			}
			p, _ := r.Addr.Prefix(bits)
			j, ok := a.byPrefix[p]
			if !ok {
				j = int32(len(a.rows))
				a.byPrefix[p] = j
				a.rows = append(a.rows, Row{Prefix: p})
			}
			a.count(j, r)
		}
	case ByRemote:
		at := unitAt(w.Start.Unix())
		for i := range w.Remotes {
			a.remotes.add(&w.Remotes[i], at)
		}
	case ByCountry:
		for i := range w.Remotes {
			r := &w.Remotes[i]
			a.count(a.countryRow(r.Country), r)
		}
	case ByASN:
		for i := range w.Remotes {
			r := &w.Remotes[i]
			j, ok := a.byASN[r.ASN]
			if !ok {
				j = int32(len(a.rows))
				a.byASN[r.ASN] = j
				a.rows = append(a.rows, Row{ASN: r.ASN, ASOrg: r.ASOrg})
				a.at = append(a.at, noAnswer)
			}
			if r.ASOrg != "" {
				a.rows[j].ASOrg = r.ASOrg
				a.at[j] = w.Start.Unix()
			}
			a.count(j, r)
		}
	}
	if !w.Other.IsZero() {
		if a.other < 0 {
			a.other = a.newOther()
		}
		a.rows[a.other].Counts.Add(w.Other)
	}
}

// newOther adds the other row and returns its index.
func (a *Aggregator) newOther() int32 {
	a.rows = append(a.rows, Row{Key: OtherKey})
	if a.by == ByASN {
		a.at = append(a.at, noAnswer) // at stays in step with rows
	}
	return int32(len(a.rows) - 1)
}

// countryRow is the row of country code cc, added if it is new.
func (a *Aggregator) countryRow(cc string) int32 {
	k := ccSlot(cc)
	if k >= 0 && a.ccRow[k] != 0 {
		return a.ccRow[k] - 1
	}
	j, ok := a.byCC[cc]
	if !ok {
		j = int32(len(a.rows))
		a.byCC[cc] = j
		a.rows = append(a.rows, Row{Country: cc})
	}
	if k >= 0 {
		a.ccRow[k] = j + 1
	}
	return j
}

// count adds r to row j and counts it as one of the row's distinct remotes.
func (a *Aggregator) count(j int32, r *window.Remote) {
	row := &a.rows[j]
	row.Counts.Add(r.Counts)
	if a.seen.add(r.Addr, uint32(j)) {
		row.Remotes++
	}
}

// Summary describes the windows added so far; Resolution and RawFrom are
// the reader's to set.
func (a *Aggregator) Summary() Summary { return a.sum }

// Rows returns the rows heaviest first by s (ties by key), the other row
// last; periods oldest first. The aggregator must not be used afterwards.
func (a *Aggregator) Rows(s Sort) []Row {
	if a.by.IsPeriod() {
		for i := range a.rows {
			a.rows[i].Key = a.rows[i].Start.UTC().Format(time.RFC3339)
		}
		sortPeriods(a.rows)
		return a.rows
	}
	if a.by == ByRemote && len(a.remotes.rows) > 0 {
		// The other row, if any, is the only one in a.rows.
		rows := a.remotes.appendRows(make([]Row, 0, len(a.remotes.rows)+len(a.rows)))
		if a.other >= 0 {
			a.other = int32(len(rows))
			rows = append(rows, a.rows...)
		}
		a.rows = rows
	}
	for i := range a.rows {
		r := &a.rows[i]
		if int32(i) == a.other {
			continue
		}
		if a.by == ByPrefix {
			r.Key = r.Prefix.String()
		} else {
			r.Key = Key(a.by, &window.Remote{Addr: r.Addr, Country: r.Country, ASN: r.ASN})
		}
	}
	SortRows(a.rows, s)
	return a.rows
}

// SortRows orders rows heaviest first by s, ties by key, the other row last.
func SortRows(rows []Row, s Sort) {
	slices.SortFunc(rows, func(a, b Row) int {
		if a.IsOther() != b.IsOther() {
			if a.IsOther() {
				return 1
			}
			return -1
		}
		if n := cmp.Compare(s.weight(b.Counts), s.weight(a.Counts)); n != 0 {
			return n
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// Aggregate filters ws and adds them up by by, ordered by s.
func Aggregate(ws []*window.Window, by By, f Filter, s Sort) ([]Row, error) {
	a, err := NewAggregator(by)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		a.Add(f.Apply(w))
	}
	return a.Rows(s), nil
}

// Top keeps the n heaviest rows of sorted rows and folds the rest into one
// other row, so totals stay exact. An existing other row sorts last, so it
// is always among the folded ones. n <= 0 keeps all.
func Top(rows []Row, n int) []Row {
	if n <= 0 || len(rows) <= n {
		return rows
	}
	rest := Row{Key: OtherKey}
	for _, r := range rows[n:] {
		rest.Counts.Add(r.Counts)
		if r.IsOther() {
			continue
		}
		if r.Remotes > 0 {
			rest.Remotes += r.Remotes
		} else {
			rest.Remotes++
		}
	}
	return append(rows[:n:n], rest)
}

// SortRemotes reorders a window's remotes heaviest first by s (ties by
// address), in place. Stored windows are already in SortBytes order.
func SortRemotes(w *window.Window, s Sort) {
	if s == SortBytes {
		return
	}
	slices.SortStableFunc(w.Remotes, func(a, b window.Remote) int {
		if n := cmp.Compare(s.weight(b.Counts), s.weight(a.Counts)); n != 0 {
			return n
		}
		return a.Addr.Compare(b.Addr)
	})
}

// TopRemotes returns w with at most n remotes (n <= 0: all), the rest added
// to Other. w itself is not changed.
func TopRemotes(w *window.Window, n int) *window.Window {
	if n <= 0 || len(w.Remotes) <= n {
		return w
	}
	out := *w
	out.Remotes = w.Remotes[:n:n]
	for _, r := range w.Remotes[n:] {
		out.Other.Add(r.Counts)
	}
	return &out
}

// ParsePrefix parses an address (as a single-address prefix) or a CIDR
// prefix; IPv4-mapped IPv6 becomes IPv4, as stored remotes are.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseASN reads "64500" or "AS64500".
func ParseASN(s string) (uint32, error) {
	if len(s) > 2 && strings.EqualFold(s[:2], "as") {
		s = s[2:]
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

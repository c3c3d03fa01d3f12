package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// day0 is a UTC midnight, so tests can place windows on hour and day edges.
var day0 = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// sum is what a set of windows adds up to: totals, statistics and per
// remote counts.
type sum struct {
	Total   window.Counts // every remote plus other
	Other   window.Counts
	Stats   window.Stats
	Remotes map[netip.Addr]window.Counts
	Capped  uint64
}

func newSum() *sum { return &sum{Remotes: map[netip.Addr]window.Counts{}} }

func (s *sum) add(w *window.Window) error {
	for _, r := range w.Remotes {
		c := s.Remotes[r.Addr]
		c.Add(r.Counts)
		s.Remotes[r.Addr] = c
		s.Total.Add(r.Counts)
	}
	s.Other.Add(w.Other)
	s.Total.Add(w.Other)
	s.Stats.Add(w.Stats)
	s.Capped += w.Capped
	return nil
}

var pool = func() []window.Remote {
	var rs []window.Remote
	for i := range 300 {
		var a netip.Addr
		if i%5 == 4 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
		} else {
			a = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		}
		rs = append(rs, window.Remote{Addr: a, Country: []string{"DE", "US", "NL", ""}[i%4], ASN: uint32(64500 + i%20), ASOrg: "org"})
	}
	return rs
}()

// randomWindow has 0-8 remotes of pool with random counts.
func randomWindow(rng *rand.Rand, start time.Time) *window.Window {
	w := &window.Window{Start: start, Length: 20 * time.Second,
		Stats: window.Stats{Frames: rng.Uint64N(1000), Tallied: rng.Uint64N(900), Drops: rng.Uint64N(3), Folded: rng.Uint64N(2)},
		Other: window.Counts{TxPackets: rng.Uint64N(3), TxBytes: rng.Uint64N(300)}}
	seen := map[int]bool{}
	for range rng.IntN(9) {
		i := rng.IntN(len(pool))
		if seen[i] {
			continue
		}
		seen[i] = true
		r := pool[i]
		r.Counts = window.Counts{TxPackets: rng.Uint64N(100), TxBytes: rng.Uint64N(1e6), RxPackets: rng.Uint64N(100), RxBytes: rng.Uint64N(1e5)}
		w.Remotes = append(w.Remotes, r)
	}
	sortRemotes(w.Remotes)
	return w
}

// fillRandom stores random windows over several days: mostly in order, in
// batches of random size, with gaps, then some late ones (windows of hours
// already sealed, some of them stored a second time).
func fillRandom(t *testing.T, db *DB, rng *rand.Rand, days int) {
	t.Helper()
	var ws []*window.Window
	for at := day0.Add(7 * time.Minute); at.Before(day0.Add(time.Duration(days) * 24 * time.Hour)); at = at.Add(20 * time.Second) {
		if rng.IntN(100) < 70 { // gaps: hours with few or no windows
			continue
		}
		ws = append(ws, randomWindow(rng, at))
	}
	for i := 0; i < len(ws); {
		n := min(1+rng.IntN(300), len(ws)-i)
		if err := db.Put(ws[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	for range 40 {
		w := randomWindow(rng, day0.Add(time.Duration(rng.IntN(days*4320))*20*time.Second))
		if err := db.Put([]*window.Window{w}); err != nil {
			t.Fatal(err)
		}
	}
}

// randomTime is on a day, an hour, a window edge or any second.
func randomTime(rng *rand.Rand, days int) time.Time {
	t := day0.Add(-time.Hour).Add(time.Duration(rng.Int64N(int64(days+1) * 24 * int64(time.Hour))))
	switch rng.IntN(4) {
	case 0:
		return floorDay(t)
	case 1:
		return floorHour(t)
	case 2:
		return t.Truncate(20 * time.Second)
	}
	return t
}

func spanSum(t *testing.T, db *DB, from, to time.Time) (*sum, window.Resolution, int) {
	t.Helper()
	s := newSum()
	n := 0
	last := time.Time{}
	res, err := db.Span(context.Background(), from, to, func(w *window.Window) error {
		if w.Start.Before(last) {
			t.Fatalf("Span out of order: %s after %s", w.Start, last)
		}
		last = w.Start
		n++
		return s.add(w)
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, res, n
}

func rawSum(t *testing.T, db *DB, from, to time.Time) *sum {
	t.Helper()
	s := newSum()
	if err := db.Windows(context.Background(), from, to, s.add); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSpanEqualsRaw(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(1, 2))
	const days = 4
	fillRandom(t, db, rng, days)
	defer func(n int) { spanBatch = n }(spanBatch)
	spanBatch = 40 // many transactions, resumed inside raw segments

	// The raw windows, read once: the oracle sums them in memory, so that
	// the 400 ranges cost what Span costs (decoding them all again for
	// every range was most of this test's time, and minutes with -race).
	var raw []*window.Window
	if err := db.Windows(context.Background(), time.Unix(0, 0), time.Unix(1<<40, 0), func(w *window.Window) error { raw = append(raw, w); return nil }); err != nil {
		t.Fatal(err)
	}
	rawIn := func(from, to time.Time) (*sum, int) { // as Windows: from <= Start < to
		s, n := newSum(), 0
		for _, w := range raw {
			if !w.Start.Before(from) && w.Start.Before(to) {
				s.add(w)
				n++
			}
		}
		return s, n
	}
	var hourly, daily int
	for i := range 400 {
		from, to := randomTime(rng, days), randomTime(rng, days)
		if i%10 == 0 {
			from, to = day0, day0.Add(days*24*time.Hour+time.Hour)
		}
		if to.Before(from) {
			from, to = to, from
		}
		got, res, n := spanSum(t, db, from, to)
		want, rn := rawIn(from, to)
		if res != window.Raw {
			t.Fatalf("[%s, %s): resolution %s with every raw window kept", from, to, res)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("[%s, %s): Span\n%+v\nraw\n%+v", from, to, got, want)
		}
		if d := to.Sub(from); d > 26*time.Hour {
			daily++
			if n >= rn/2 {
				t.Errorf("[%s, %s): %d windows from Span, %d raw: rollups were not used", from, to, n, rn)
			}
		} else if d > 2*time.Hour {
			hourly++
		}
	}
	t.Logf("%d ranges over a day, %d over two hours", daily, hourly)
}

func TestRollupsMatchRaw(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(3, 4))
	fillRandom(t, db, rng, 2)
	sealed, _ := db.Sealed()
	for _, r := range []window.Resolution{window.Hourly, window.Daily} {
		n := 0
		err := db.Rollups(context.Background(), r, day0.Add(-24*time.Hour), day0.Add(5*24*time.Hour), func(w *window.Window) error {
			n++
			if w.Length != tierLength(r) {
				t.Errorf("%s rollup %s: length %s", r, w.Start, w.Length)
			}
			got := newSum()
			got.add(w)
			want := rawSum(t, db, w.Start, minTime(w.End(), sealed))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s rollup %s:\n%+v\nraw\n%+v", r, w.Start, got, want)
			}
			if !remotesSorted(w.Remotes) {
				t.Errorf("%s rollup %s: remotes not heaviest first", r, w.Start)
			}
			for _, rm := range w.Remotes {
				if rm.ASN != 0 && rm.ASOrg != "org" {
					t.Errorf("ASOrg %q", rm.ASOrg)
				}
			}
			return nil
		})
		if err != nil || n == 0 {
			t.Fatalf("%s: %d rollups, %v", r, n, err)
		}
	}
}

// TestCaps: a rollup that reaches its cap keeps its rows (each with its
// remote's exact sum) and folds every other remote wholly into Other.
func TestCaps(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "c.db"), Options{HourCap: 5, DayCap: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	fillRandom(t, db, rng, 2)
	sealed, _ := db.Sealed()

	for _, r := range []window.Resolution{window.Hourly, window.Daily} {
		capped := 0
		err := db.Rollups(context.Background(), r, day0, day0.Add(3*24*time.Hour), func(w *window.Window) error {
			got := newSum()
			got.add(w)
			want := rawSum(t, db, w.Start, minTime(w.End(), sealed))
			if got.Total != want.Total || got.Stats != want.Stats {
				t.Errorf("%s %s: totals %+v %+v, raw %+v %+v", r, w.Start, got.Total, got.Stats, want.Total, want.Stats)
			}
			if max := map[window.Resolution]int{window.Hourly: 5, window.Daily: 12}[r]; len(w.Remotes) > max {
				t.Errorf("%s %s: %d remotes over the cap %d", r, w.Start, len(w.Remotes), max)
			}
			folded := len(want.Remotes) - len(got.Remotes)
			if (folded > 0) != (w.Capped > 0) {
				t.Errorf("%s %s: %d remotes folded, Capped %d", r, w.Start, folded, w.Capped)
			}
			if w.Capped > 0 {
				capped++
			}
			var rest window.Counts
			for a, c := range want.Remotes {
				if g, ok := got.Remotes[a]; !ok {
					rest.Add(c)
				} else if g != c {
					t.Errorf("%s %s: %s has %+v, raw %+v", r, w.Start, a, g, c)
				}
			}
			rest.Add(want.Other)
			if rest != got.Other {
				t.Errorf("%s %s: other %+v, want the folded remotes' %+v", r, w.Start, got.Other, rest)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if capped == 0 {
			t.Fatalf("%s: no rollup reached its cap", r)
		}
	}
	// Totals of any span still equal the raw ones.
	for range 50 {
		from, to := randomTime(rng, 2), randomTime(rng, 2)
		if to.Before(from) {
			from, to = to, from
		}
		got, _, _ := spanSum(t, db, from, to)
		want := rawSum(t, db, from, to)
		if got.Total != want.Total || got.Stats != want.Stats {
			t.Fatalf("[%s, %s): totals %+v, raw %+v", from, to, got.Total, want.Total)
		}
	}
}

// snapshot copies every key and value of the meta and rollup buckets.
func snapshot(t *testing.T, db *DB) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketWindows, bucketHours, bucketDays} {
			tx.Bucket(name).ForEach(func(k, v []byte) error {
				m[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDamagedValuesSkipped: a value that does not decode (a flipped byte)
// stops neither storing nor reading: a damaged window merged into is
// replaced, one met while sealing is left out of its rollups and recorded
// as missing from them, a damaged rollup is left as it is; reads skip them
// and say which; CompactDropping drops them.
func TestDamagedValuesSkipped(t *testing.T) {
	var told []Damage
	db, err := Open(filepath.Join(t.TempDir(), "d.db"), Options{OnDamage: func(d Damage) { told = append(told, d) }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	var ws []*window.Window
	for i := range 3 * 180 {
		ws = append(ws, randomWindow(rng, day0.Add(time.Duration(i)*20*time.Second)))
	}
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	corruptKey := func(bucket []byte, at time.Time) {
		t.Helper()
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).Put(windowKey(at), []byte{valueVersion, 99})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// 1. Merging into a damaged window of the unsealed hour replaces it.
	merged := day0.Add(2*time.Hour + 20*time.Minute)
	corruptKey(bucketWindows, merged)
	fresh := randomWindow(rng, merged)
	if err := db.Put([]*window.Window{randomWindow(rng, day0.Add(30*time.Minute)), fresh, randomWindow(rng, day0.Add(5*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	var got []*window.Window
	db.Windows(context.Background(), merged, merged.Add(time.Second), func(w *window.Window) error { got = append(got, w); return nil })
	if len(got) != 1 || !reflect.DeepEqual(got[0].Stats, fresh.Stats) || len(got[0].Remotes) != len(fresh.Remotes) {
		t.Errorf("the damaged window was not replaced by the new one: %v", got)
	}
	// 2. Sealing meets a damaged window: left out, storing goes on.
	lost := day0.Add(5*time.Hour + 20*time.Second)
	if err := db.Put([]*window.Window{randomWindow(rng, lost)}); err != nil {
		t.Fatal(err)
	}
	corruptKey(bucketWindows, lost)
	if err := db.Put([]*window.Window{randomWindow(rng, day0.Add(6*time.Hour))}); err != nil {
		t.Fatalf("sealing over a damaged window: %v", err)
	}
	// 3. A late window for a damaged hourly rollup: stored raw, the
	// rollup left as it is.
	corruptKey(bucketHours, day0.Add(time.Hour))
	if err := db.Put([]*window.Window{randomWindow(rng, day0.Add(time.Hour+time.Minute))}); err != nil {
		t.Fatalf("Put into a damaged rollup's hour: %v", err)
	}
	want := []string{"window " + merged.Format(time.RFC3339), "window " + lost.Format(time.RFC3339), "hourly rollup " + day0.Add(time.Hour).Format(time.RFC3339)}
	var names []string
	for _, d := range told {
		names = append(names, d.String())
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("OnDamage told %q, want %q", names, want)
	}
	// Reads skip them and say which; the hour sealed without its damaged
	// window says so too.
	for _, tc := range []struct {
		from, to time.Time
		want     string
	}{
		{day0.Add(5 * time.Hour), day0.Add(5*time.Hour + time.Minute), "window " + lost.Format(time.RFC3339)},
		{day0.Add(5 * time.Hour), day0.Add(6 * time.Hour), "window " + lost.Format(time.RFC3339)},
		{day0.Add(time.Hour), day0.Add(2 * time.Hour), "hourly rollup " + day0.Add(time.Hour).Format(time.RFC3339)},
	} {
		var ds []string
		_, err := db.SpanWith(context.Background(), tc.from, tc.to, SpanOptions{Damaged: func(d Damage) { ds = append(ds, d.String()) }}, func(*window.Window) error { return nil })
		if err != nil || !reflect.DeepEqual(ds, []string{tc.want}) {
			t.Errorf("span %v..%v: %v, damaged %q, want %q", tc.from, tc.to, err, ds, tc.want)
		}
	}
	if err := db.Windows(context.Background(), day0, day0.Add(7*time.Hour), func(*window.Window) error { return nil }); err != nil {
		t.Errorf("Windows over a damaged window: %v", err)
	}
	path := db.Path()
	db.Close()
	dst := path + ".compact"
	dropped, err := CompactDropping(path, dst)
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, d := range dropped {
		names = append(names, d.String())
	}
	if want := []string{"window " + lost.Format(time.RFC3339), "hourly rollup " + day0.Add(time.Hour).Format(time.RFC3339)}; !reflect.DeepEqual(names, want) {
		t.Errorf("compact dropped %q, want %q", names, want)
	}
}

// TestRestoreAddsOnlyNewCounts: a window stored twice (a restart within
// it) is merged in raw and in the rollups alike, whether its hour was
// sealed in between or not.
func TestRestoreAddsOnlyNewCounts(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(9, 10))
	a, b := randomWindow(rng, day0.Add(10*time.Minute)), randomWindow(rng, day0.Add(10*time.Minute))
	for _, w := range []*window.Window{a, b, randomWindow(rng, day0.Add(2*time.Hour)), a, randomWindow(rng, day0.Add(3*time.Hour))} {
		if err := db.Put([]*window.Window{w}); err != nil {
			t.Fatal(err)
		}
	}
	sealed, _ := db.Sealed()
	if !sealed.Equal(day0.Add(3 * time.Hour)) {
		t.Fatalf("sealed %s", sealed)
	}
	want := rawSum(t, db, day0, day0.Add(time.Hour))
	for _, r := range []window.Resolution{window.Hourly, window.Daily} {
		got := newSum()
		db.Rollups(context.Background(), r, day0, day0.Add(time.Second), got.add)
		if r == window.Daily {
			want = rawSum(t, db, day0, sealed)
		}
		if got.Total != want.Total {
			t.Fatalf("%s: %+v, raw %+v", r, got.Total, want.Total)
		}
	}
	want = rawSum(t, db, day0, day0.Add(time.Hour))
	got, _, _ := spanSum(t, db, day0, day0.Add(time.Hour))
	if !reflect.DeepEqual(got, want) {
		t.Fatal("Span differs from raw")
	}
	ex := newSum()
	for _, w := range []*window.Window{a, b, a} {
		ex.add(w)
	}
	if ex.Total != want.Total {
		t.Fatalf("raw %+v, stored %+v", want.Total, ex.Total)
	}
}

func TestRetention(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(11, 12))
	// 6 days of windows, one every 10 minutes.
	var ws []*window.Window
	for at := day0; at.Before(day0.Add(6 * 24 * time.Hour)); at = at.Add(10 * time.Minute) {
		w := randomWindow(rng, at)
		w.Remotes = append(w.Remotes, window.Remote{Addr: netip.MustParseAddr("192.0.2.1"), Counts: window.Counts{TxPackets: 1}})
		sortRemotes(w.Remotes)
		ws = append(ws, w)
	}
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	mem := func(from, to time.Time) *sum { // what raw windows held
		s := newSum()
		for _, w := range ws {
			if !w.Start.Before(from) && w.Start.Before(to) {
				s.add(w)
			}
		}
		return s
	}
	newest := ws[len(ws)-1].Start // day 5, 23:50
	p, err := db.PruneTiers(newest, Retention{Windows: 36 * time.Hour, Hours: 3*24*time.Hour + time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Raw: cut at day 4 11:00 (newest - 36 h, floored to the hour).
	// Hours: cut at day 2 00:00 (newest - 73 h = day 2 22:50, floored to the day).
	if want := (Pruned{Windows: (4*24 + 11) * 6, Hours: 2 * 24}); p != want {
		t.Fatalf("PruneTiers = %+v, want %+v", p, want)
	}
	first, _, _, _ := db.Bounds()
	if !first.Equal(day0.Add(4*24*time.Hour + 11*time.Hour)) {
		t.Fatalf("first raw window %s", first)
	}
	tests := []struct {
		from, to         time.Time
		res              window.Resolution
		wantFrom, wantTo time.Time // the raw range the answer equals
	}{
		// All raw: exact.
		{day0.Add(4*24*time.Hour + 11*time.Hour + 5*time.Minute), day0.Add(5*24*time.Hour + 3*time.Minute), window.Raw,
			day0.Add(4*24*time.Hour + 11*time.Hour + 5*time.Minute), day0.Add(5*24*time.Hour + 3*time.Minute)},
		// Whole hours and days where raw is gone: still exact.
		{day0.Add(2 * 24 * time.Hour), day0.Add(4*24*time.Hour + 11*time.Hour + 30*time.Minute), window.Raw,
			day0.Add(2 * 24 * time.Hour), day0.Add(4*24*time.Hour + 11*time.Hour + 30*time.Minute)},
		{day0, day0.Add(6 * 24 * time.Hour), window.Raw, day0, day0.Add(6 * 24 * time.Hour)},
		// Edges inside pruned raw, hours kept: whole hours by their start.
		{day0.Add(3*24*time.Hour + 10*time.Hour + 30*time.Minute), day0.Add(3*24*time.Hour + 14*time.Hour + 30*time.Minute), window.Hourly,
			day0.Add(3*24*time.Hour + 11*time.Hour), day0.Add(3*24*time.Hour + 15*time.Hour)},
		// Edges inside pruned hours, days kept: whole days by their start.
		{day0.Add(10 * time.Hour), day0.Add(24*time.Hour + 3*time.Hour), window.Daily,
			day0.Add(24 * time.Hour), day0.Add(2 * 24 * time.Hour)},
		{day0.Add(10 * time.Hour), day0.Add(2*24*time.Hour + 3*time.Hour + 10*time.Minute), window.Daily,
			day0.Add(24 * time.Hour), day0.Add(2*24*time.Hour + 4*time.Hour)},
	}
	for _, tc := range tests {
		got, res, _ := spanSum(t, db, tc.from, tc.to)
		if res != tc.res {
			t.Errorf("[%s, %s): resolution %s, want %s", tc.from, tc.to, res, tc.res)
		}
		want := mem(tc.wantFrom, tc.wantTo)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("[%s, %s): %+v\nwant [%s, %s): %+v", tc.from, tc.to, got.Total, tc.wantFrom, tc.wantTo, want.Total)
		}
	}
	// Days pruned too: nothing is left before the cut.
	if n, err := db.PruneTier(window.Daily, day0.Add(24*time.Hour)); n != 1 || err != nil {
		t.Fatalf("PruneTier(Daily) = %d, %v", n, err)
	}
	if got, _, n := spanSum(t, db, day0, day0.Add(24*time.Hour)); n != 0 || !got.Total.IsZero() {
		t.Fatalf("pruned day still answers: %d windows", n)
	}
	// A window stored late into a pruned raw hour still reaches its
	// rollups (the hour is sealed), so totals keep matching.
	late := randomWindow(rng, day0.Add(3*24*time.Hour+12*time.Hour+5*time.Second))
	if err := db.Put([]*window.Window{late}); err != nil {
		t.Fatal(err)
	}
	ws = append(ws, late)
	got, _, _ := spanSum(t, db, day0.Add(3*24*time.Hour+12*time.Hour), day0.Add(3*24*time.Hour+13*time.Hour))
	if want := mem(day0.Add(3*24*time.Hour+12*time.Hour), day0.Add(3*24*time.Hour+13*time.Hour)); !reflect.DeepEqual(got, want) {
		t.Fatalf("late window: %+v, want %+v", got.Total, want.Total)
	}
}

// TestPruneSeals: Prune of raw windows of hours that are not sealed yet
// seals them first, so nothing is lost from the rollups.
func TestPruneSeals(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(13, 14))
	var ws []*window.Window
	want := newSum()
	for i := range 100 {
		w := randomWindow(rng, day0.Add(time.Duration(i)*time.Minute))
		ws = append(ws, w)
		want.add(w)
	}
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Prune(day0.Add(time.Hour + 30*time.Minute)); n != 90 || err != nil {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	got, res, _ := spanSum(t, db, day0, day0.Add(2*time.Hour))
	if !reflect.DeepEqual(got, want) || res != window.Raw {
		t.Fatalf("after prune (%s): %+v, want %+v", res, got.Total, want.Total)
	}
}

// writeFormat1 writes a file as format 1 code did: meta, windows and asn
// buckets, windows as values, format version 1.
func writeFormat1(t *testing.T, path string, ws []*window.Window) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339)))
		meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, 1))
		wb, _ := tx.CreateBucket(bucketWindows)
		ab, _ := tx.CreateBucket(bucketASN)
		for _, w := range ws {
			if err := wb.Put(windowKey(w.Start), MarshalWindow(w)); err != nil {
				return err
			}
			for _, r := range w.Remotes {
				if r.ASN != 0 {
					ab.Put(asnKey(r.ASN), []byte(r.ASOrg))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeFromFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	rng := rand.New(rand.NewPCG(15, 16))
	var ws []*window.Window
	for at := day0.Add(-3 * time.Hour); at.Before(day0.Add(30 * time.Hour)); at = at.Add(time.Duration(20+rng.IntN(5)*20) * time.Second) {
		ws = append(ws, randomWindow(rng, at))
	}
	writeFormat1(t, path, ws)

	// A read-only open asks for an upgrade and changes nothing.
	before := fileSum(t, path)
	if _, err := Open(path, Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of format 1 succeeded")
	}
	if fileSum(t, path) != before {
		t.Fatal("read-only open changed the file")
	}

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat)); v != formatVersion {
			t.Errorf("format %d after upgrade", v)
		}
		if s := getTime(tx.Bucket(bucketMeta), keySealed); !s.Equal(floorHour(ws[len(ws)-1].Start)) {
			t.Errorf("sealed %s", s)
		}
		return nil
	})
	sealed, _ := db.Sealed()
	for _, r := range []window.Resolution{window.Hourly, window.Daily} {
		n := 0
		db.Rollups(context.Background(), r, time.Time{}, day0.Add(10*24*time.Hour), func(w *window.Window) error {
			n++
			got := newSum()
			got.add(w)
			if want := rawSum(t, db, w.Start, minTime(w.End(), sealed)); !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: rollup differs from raw", r, w.Start)
			}
			return nil
		})
		if want := map[window.Resolution]int{window.Hourly: 32, window.Daily: 3}[r]; n != want {
			t.Errorf("%d %s rollups, want %d", n, r, want)
		}
	}
	from, to := day0.Add(-3*time.Hour), day0.Add(31*time.Hour)
	got, _, _ := spanSum(t, db, from, to)
	if want := rawSum(t, db, from, to); !reflect.DeepEqual(got, want) {
		t.Fatal("Span after upgrade differs from raw")
	}
}

// TestUpgradeSkipsDamagedWindow: an upgrade that meets a window that does
// not decode leaves it out of the rollups (and records so) rather than
// leaving the file unopenable.
func TestUpgradeSkipsDamagedWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	rng := rand.New(rand.NewPCG(17, 18))
	var ws []*window.Window
	for i := range 500 {
		ws = append(ws, randomWindow(rng, day0.Add(time.Duration(i)*time.Minute)))
	}
	writeFormat1(t, path, ws)
	b, _ := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWindows).Put(windowKey(day0.Add(300*time.Minute)), []byte{valueVersion, 77})
	})
	b.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("upgrade over a damaged window: %v", err)
	}
	defer db.Close()
	if d := db.Damaged(); len(d) != 1 || !d[0].Start.Equal(day0.Add(300*time.Minute)) {
		t.Errorf("damage noted: %v", d)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat)); v != formatVersion {
			t.Errorf("format %d after the upgrade", v)
		}
		if l := lostIn(tx, day0, day0.Add(24*time.Hour)); len(l) != 1 {
			t.Errorf("lost records %v, want the damaged window", l)
		}
		return nil
	})
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	db, err := Open(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(19, 20))
	fillRandom(t, db, rng, 2)
	if err := Compact(src, dst); !errors.Is(err, ErrLocked) {
		t.Fatalf("Compact of an open database: %v, want ErrLocked", err)
	}
	if _, err := db.Prune(day0.Add(24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, db)
	db.Close()
	if err := Compact(src, dst); err != nil {
		t.Fatal(err)
	}
	if err := Compact(src, dst); err == nil {
		t.Fatal("Compact overwrote an existing file")
	}
	c, err := Open(dst, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := snapshot(t, c); !reflect.DeepEqual(got, want) {
		t.Fatal("compacted file differs")
	}
	a, _ := c.Size()
	var bsz int64
	if o, err := Open(src, Options{ReadOnly: true}); err == nil {
		bsz, _ = o.Size()
		o.Close()
	}
	t.Logf("%d bytes compacted to %d", bsz, a)
	if a > bsz {
		t.Fatalf("compacted file is larger: %d > %d", a, bsz)
	}
}

// TestSpanGroups: with SpanOptions.Groups, sums by country and AS from the
// rollups' groups plus the raw edges' remotes equal those of the raw
// windows.
func TestSpanGroups(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(21, 22))
	fillRandom(t, db, rng, 3)
	type key struct {
		c   string
		asn uint32
	}
	for range 60 {
		from, to := randomTime(rng, 3), randomTime(rng, 3)
		if to.Before(from) {
			from, to = to, from
		}
		got, want := map[key]window.Counts{}, map[key]window.Counts{}
		add := func(m map[key]window.Counts, k key, c window.Counts) {
			s := m[k]
			s.Add(c)
			m[k] = s
		}
		groups := 0
		_, err := db.SpanWith(context.Background(), from, to, SpanOptions{Groups: true, Reuse: true}, func(w *window.Window) error {
			if w.Length >= time.Hour && len(w.Remotes) > 0 {
				t.Fatalf("rollup %s with remotes in groups mode", w.Start)
			}
			for _, g := range w.Groups {
				groups++
				if g.ASN != 0 && g.ASOrg != "org" {
					t.Fatalf("group ASOrg %q", g.ASOrg)
				}
				add(got, key{g.Country, g.ASN}, g.Counts)
			}
			for _, r := range w.Remotes {
				add(got, key{r.Country, r.ASN}, r.Counts)
			}
			add(got, key{"other", 0}, w.Other)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		db.Windows(context.Background(), from, to, func(w *window.Window) error {
			for _, r := range w.Remotes {
				add(want, key{r.Country, r.ASN}, r.Counts)
			}
			add(want, key{"other", 0}, w.Other)
			return nil
		})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("[%s, %s): groups %v\nraw %v", from, to, got, want)
		}
	}
}

func TestGroupsRoundTrip(t *testing.T) {
	w := &window.Window{Start: day0, Length: time.Hour, Capped: 7, Remotes: pool[:40]}
	w.Groups = groupsOf(w.Remotes)
	for i := range w.Groups {
		w.Groups[i].ASOrg = ""
	}
	got, err := UnmarshalWindow(windowKey(day0), MarshalWindow(w))
	if err != nil {
		t.Fatal(err)
	}
	if got.Capped != 7 || !reflect.DeepEqual(got.Groups, w.Groups) || len(got.Remotes) != 40 {
		t.Fatalf("round trip: %+v", got)
	}
	var g window.Window
	if err := unmarshalWith(&g, windowKey(day0), MarshalWindow(w), decodeGroups); err != nil || len(g.Remotes) != 0 || len(g.Groups) != len(w.Groups) {
		t.Fatalf("groups only: %d remotes, %d groups, %v", len(g.Remotes), len(g.Groups), err)
	}
}

package fleet

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/chtest"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// spread makes n windows of length step from start out of randomWindows'
// mix, so that a test covers days without storing thousands of windows.
func spread(rng *rand.Rand, start time.Time, n int, step time.Duration) []*window.Window {
	ws := randomWindows(rng, start, n)
	for i, w := range ws {
		w.Start, w.Length = start.Add(time.Duration(i)*step), step
	}
	return ws
}

// The ranges the rollup tests ask: whole days, whole hours on both sides
// of midnight, ragged edges, a range inside one hour, one starting in the
// open hour.
func rollupRanges(start time.Time) [][2]time.Time {
	d := start.Truncate(24 * time.Hour).Add(24 * time.Hour) // the first midnight after start
	return [][2]time.Time{
		{start, start.Add(72 * time.Hour)},
		{d, d.Add(24 * time.Hour)},
		{d.Add(-2 * time.Hour), d.Add(26 * time.Hour)},
		{d.Add(-97 * time.Minute), d.Add(24*time.Hour + 93*time.Minute + 7*time.Second)},
		{d.Add(3*time.Hour + 5*time.Minute), d.Add(3*time.Hour + 50*time.Minute)},
		{d.Add(-30 * time.Minute), d.Add(30 * time.Minute)},
	}
}

// exportAll stores ws and waits until the exporter has sent them.
func exportAll(t *testing.T, e *Exporter, db *storage.DB, ws []*window.Window) {
	t.Helper()
	for i := 0; i < len(ws); i += 50 {
		b := ws[i:min(i+50, len(ws))]
		if err := db.Put(b); err != nil {
			t.Fatal(err)
		}
		e.Stored(b)
	}
	waitExported(t, e)
}

// Across hour and day edges the fleet reads daily and hourly rollups as
// the local database's query does, and its answers equal that query's,
// rows and summary; a late window into a rolled-up hour (sent while
// ClickHouse was down) rebuilds that hour and its day.
func TestRollupsEqualLocal(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	db := openDB(t)
	rng := rand.New(rand.NewPCG(5, 6))
	start := time.Date(2026, 11, 27, 21, 10, 0, 0, time.UTC)
	ws := spread(rng, start, 600, 5*time.Minute) // to 2026-11-29 23:05
	e, err := New(Config{Target: target(t, srv, "roll1"), Host: "h1", DB: db, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	defer e.Stop(time.Second)
	exportAll(t, e, db, ws)
	r, err := Open(context.Background(), target(t, srv, "roll1"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check := func() {
		t.Helper()
		for i, rg := range rollupRanges(start) {
			compareAggregates(t, r, db, nil, rg[0], rg[1])
			compareAggregates(t, r, db, []string{"h1"}, rg[0], rg[1])
			if i == 1 { // a whole day: one daily rollup
				_, sum, err := r.Aggregate(context.Background(), Question{Question: query.Question{By: query.ByCountry}, From: rg[0], To: rg[1]})
				if err != nil || sum.Days != 1 || sum.Hours != 0 || sum.Windows != 0 {
					t.Fatalf("a whole day read as %+v, %v; want one daily rollup", sum, err)
				}
			}
		}
	}
	check()

	// ClickHouse down; a window arrives late for a rolled-up hour of the
	// whole day, and one more of the open hour.
	srv.Stop()
	late := spread(rng, start, 1, time.Minute)[0]
	late.Start = time.Date(2026, 11, 28, 13, 31, 0, 0, time.UTC)
	more := spread(rng, ws[len(ws)-1].End(), 1, 5*time.Minute)
	if err := db.Put([]*window.Window{late}); err != nil {
		t.Fatal(err)
	}
	e.Stored([]*window.Window{late})
	if err := db.Put(more); err != nil {
		t.Fatal(err)
	}
	e.Stored(more)
	time.Sleep(1500 * time.Millisecond)
	srv.Restart()
	waitExported(t, e)
	check()
}

// The planner's answer equals the raw windows' answer (where every remote
// keeps one country and AS, so that the rollups' choice of a remote's
// country cannot differ), across edges, and a rollup whose raw rows
// changed after it was built (here: a window sent again, changed, without
// the rebuild) is not read: its hour is read raw until it is rebuilt.
func TestRollupsEqualRaw(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	rng := rand.New(rand.NewPCG(7, 8))
	start := time.Date(2026, 11, 27, 22, 40, 0, 0, time.UTC)
	tg := target(t, srv, "roll2")
	for _, host := range []string{"h1", "h2"} {
		db := openDB(t)
		ws := spread(rng, start, 500, 6*time.Minute)
		fixedGeo(ws)
		e, err := New(Config{Target: tg, Host: host, DB: db, Logger: logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		e.Start()
		exportAll(t, e, db, ws)
		e.Stop(time.Second)
	}
	r, err := Open(context.Background(), tg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw := &Reader{conn: r.conn, db: r.db, rollups: true, rawOnly: true}
	same := func(hosts []string, from, to time.Time) query.Summary {
		t.Helper()
		return sameAsRaw(t, r, raw, hosts, from, to)
	}
	for _, rg := range rollupRanges(start) {
		same(nil, rg[0], rg[1])
		same([]string{"h2"}, rg[0], rg[1])
	}
	d := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	before := same(nil, d, d.Add(24*time.Hour))
	if before.Days != 2 || before.Hours != 0 || before.Windows != 0 {
		t.Fatalf("whole day of two hosts read as %+v, want two daily rollups", before)
	}
	// h1's first window of 10:00 again, with more traffic and a higher version,
	// as after a merge whose rebuild has not run yet.
	c := r.conn
	var w *window.Window
	rows, err := raw.Windows(context.Background(), Question{Hosts: []string{"h1"}, From: d.Add(10 * time.Hour), To: d.Add(10*time.Hour + 6*time.Minute)})
	if err != nil || len(rows) != 1 {
		t.Fatalf("windows 10:00-10:06: %d, %v", len(rows), err)
	}
	w = rows[0]
	w.Services = nil
	w.Remotes[0].Counts.Add(window.Counts{TxPackets: 1000, TxBytes: 1e6})
	if err := insert(context.Background(), c, "roll2", "h1", []versioned{{w, 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	after := same(nil, d, d.Add(24*time.Hour))
	if after.Days != 1 || after.Hours != 23 || after.Windows != 10 || after.Stats.Tallied != before.Stats.Tallied {
		t.Fatalf("after a changed window, the day read as %+v; want h2's day, h1's other 23 hours and its 10 raw windows of 10:00", after)
	}
	// The next roll-up (as the exporter runs after an insert) rebuilds
	// the hour and the day.
	if _, built, err := rollUp(context.Background(), c, "roll2", "h1", d.Unix()); err != nil || built != 2 {
		t.Fatalf("rollUp built %d, %v; want the hour and its day", built, err)
	}
	if s := same(nil, d, d.Add(24*time.Hour)); s.Days != 2 || s.Hours != 0 {
		t.Fatalf("after the rebuild the day read as %+v", s)
	}
}

// sameAsRaw checks that r's planned answers equal raw's, every grouping and
// filter, and returns the last planned summary.
func sameAsRaw(t *testing.T, r, raw *Reader, hosts []string, from, to time.Time) query.Summary {
	t.Helper()
	var last query.Summary
	for _, by := range []query.By{query.ByRemote, query.ByCountry, query.ByASN, ByHost} {
		for fi, f := range testFilters {
			q := Question{Question: query.Question{By: by, Filter: f, Top: 7}, Hosts: hosts, From: from, To: to}
			got, gsum, err := r.Aggregate(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			want, wsum, err := raw.Aggregate(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) || gsum.Stats != wsum.Stats {
				t.Fatalf("%v..%v by %s filter %d:\nplanned %+v\nraw     %+v\nsummaries %+v\n%+v", from, to, by, fi, got, want, gsum, wsum)
			}
			last = gsum
		}
	}
	return last
}

// fixedGeo gives every remote one country and AS, so that raw and rolled-up
// answers cannot differ in a remote's country.
func fixedGeo(ws []*window.Window) {
	for _, w := range ws {
		for i := range w.Remotes {
			rm := &w.Remotes[i]
			b := rm.Addr.As16()
			rm.Country = []string{"NL", "DE", ""}[b[15]%3]
			rm.ASN, rm.ASOrg = 64496+uint32(b[15]%4), ""
		}
	}
}

// Two hosts on two shards: the planner over the Distributed tables reads
// both shards' rollups and equals the raw answer over them.
func TestRollupsDistributed(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srvs := chtest.Cluster(t, 2)
	rng := rand.New(rand.NewPCG(9, 10))
	start := time.Date(2026, 11, 27, 22, 40, 0, 0, time.UTC)
	for i, host := range []string{"h1", "h2"} {
		db := openDB(t)
		ws := spread(rng, start, 300, 6*time.Minute)
		fixedGeo(ws)
		e, err := New(Config{Target: target(t, srvs[i], "roll3"), Host: host, Cluster: "fleet", DB: db, Logger: logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		e.Start()
		exportAll(t, e, db, ws)
		e.Stop(time.Second)
	}
	r, err := Open(context.Background(), target(t, srvs[0], "roll3"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw := &Reader{conn: r.conn, db: r.db, suffix: r.suffix, rollups: true, rawOnly: true}
	d := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	if s := sameAsRaw(t, r, raw, nil, d, d.Add(24*time.Hour)); s.Days != 2 || s.Hours != 0 || s.Windows != 0 {
		t.Fatalf("a whole day of two shards read as %+v; want two daily rollups", s)
	}
	sameAsRaw(t, r, raw, []string{"h2"}, start, start.Add(31*time.Hour))
	sameAsRaw(t, r, raw, nil, d.Add(-77*time.Minute), d.Add(25*time.Hour+time.Minute))
}

package query

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// monthWindows are 15-minute windows over October 2026 (Europe/Berlin
// leaves summer time on the 25th), with pseudo-random counts for a pool
// of remotes that recur across days. Some days are missing (the daemon
// was down), some windows fold remotes into other.
func monthWindows() []*window.Window {
	rng := rand.New(rand.NewPCG(16, 1))
	var pool []netip.Addr
	for i := range 40 {
		pool = append(pool, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	for i := range 10 {
		pool = append(pool, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i + 1), 15: 1}))
	}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var ws []*window.Window
	for t := start; t.Before(start.AddDate(0, 1, 0)); t = t.Add(15 * time.Minute) {
		if t.Day() == 12 || (t.Day() == 20 && t.Hour() < 7) {
			continue // daemon down
		}
		w := &window.Window{Start: t, Length: 15 * time.Minute}
		seen := map[netip.Addr]bool{}
		for range 1 + rng.IntN(6) {
			a := pool[rng.IntN(len(pool))]
			if seen[a] {
				continue
			}
			seen[a] = true
			w.Remotes = append(w.Remotes, window.Remote{Addr: a, Country: "NL",
				Counts: window.Counts{TxPackets: uint64(1 + rng.IntN(50)), TxBytes: uint64(rng.IntN(90000)), RxPackets: uint64(rng.IntN(40)), RxBytes: uint64(rng.IntN(70000))}})
		}
		if rng.IntN(100) == 0 {
			w.Other = window.Counts{TxPackets: 3, TxBytes: 300, RxPackets: 1, RxBytes: 40}
			w.Stats.Folded = 2
		}
		ws = append(ws, w)
	}
	return ws
}

// Per-period totals from the rollups (a real bbolt file) equal the sums of
// the raw windows starting in each period, in UTC, in Europe/Berlin across
// its DST change, and in Asia/Kolkata (UTC+5:30, whose local hours and
// days are not whole UTC hours); remotes are distinct addresses, exact
// where no window folded any.
func TestAnswerPeriods(t *testing.T) {
	ws := monthWindows()
	db, err := storage.Open(filepath.Join(t.TempDir(), "month.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < len(ws); i += 500 {
		if err := db.Put(ws[i:min(i+500, len(ws))]); err != nil {
			t.Fatal(err)
		}
	}
	var zones []*time.Location
	for _, name := range []string{"UTC", "Europe/Berlin", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Skipf("no time zone data: %v", err)
		}
		zones = append(zones, loc)
	}
	from, to := time.Date(2026, 10, 3, 5, 0, 0, 0, time.UTC), time.Date(2026, 10, 29, 0, 0, 0, 0, time.UTC)
	for _, loc := range zones {
		for _, by := range []By{ByHour, ByDay, ByWeek, ByMonth} {
			rows, sum, err := Answer(context.Background(), db, Range{From: from, To: to}, Question{By: by, Loc: loc})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Resolution != window.Raw {
				t.Errorf("%s %s: resolution %v", loc, by, sum.Resolution)
			}
			if by == ByDay && loc != time.UTC && sum.Days != 0 {
				t.Errorf("%s by day read %d UTC daily rollups", loc, sum.Days)
			}
			if by == ByMonth && sum.Days == 0 {
				t.Errorf("%s by month read no daily rollups: %+v", loc, sum)
			}
			// The truth, from the raw windows of each whole period.
			ps := Periods(by, from, to, loc)
			type truth struct {
				c       window.Counts
				addrs   map[netip.Addr]bool
				inexact bool
			}
			want := map[time.Time]*truth{}
			var order []time.Time
			for _, w := range ws {
				for _, p := range ps {
					if w.Start.Before(p[0]) || !w.Start.Before(p[1]) {
						continue
					}
					tr := want[p[0]]
					if tr == nil {
						tr = &truth{addrs: map[netip.Addr]bool{}}
						want[p[0]] = tr
						order = append(order, p[0])
					}
					for _, r := range w.Remotes {
						tr.c.Add(r.Counts)
						tr.addrs[r.Addr] = true
					}
					tr.c.Add(w.Other)
					tr.inexact = tr.inexact || w.Stats.Folded > 0
				}
			}
			if len(rows) != len(order) {
				t.Fatalf("%s %s: %d rows, want %d", loc, by, len(rows), len(order))
			}
			for i, r := range rows {
				tr := want[order[i]]
				if !r.Start.Equal(order[i]) || !r.End.Equal(PeriodEnd(by, r.Start, loc)) {
					t.Errorf("%s %s row %d: [%v, %v), want start %v", loc, by, i, r.Start, r.End, order[i])
				}
				if r.Counts != tr.c || r.Remotes != len(tr.addrs) || r.Inexact != tr.inexact {
					t.Errorf("%s %s %v: %+v remotes %d inexact %v, want %+v remotes %d inexact %v", loc, by, r.Start.In(loc),
						r.Counts, r.Remotes, r.Inexact, tr.c, len(tr.addrs), tr.inexact)
				}
			}
		}
	}
}

func TestPeriodBounds(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		by         By
		loc        *time.Location
		t          string
		start, end string
	}{
		{ByDay, berlin, "2026-10-25T12:00:00+01:00", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"}, // 25 hours
		{ByDay, berlin, "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"}, // 23 hours
		{ByHour, berlin, "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"},
		{ByHour, berlin, "2026-10-25T02:30:00+01:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"},
		{ByHour, kolkata, "2026-10-25T10:10:00Z", "2026-10-25T09:30:00Z", "2026-10-25T10:30:00Z"},
		{ByDay, kolkata, "2026-10-25T20:00:00Z", "2026-10-25T18:30:00Z", "2026-10-26T18:30:00Z"},
		{ByWeek, berlin, "2026-10-25T23:59:00+01:00", "2026-10-19T00:00:00+02:00", "2026-10-26T00:00:00+01:00"}, // Sunday
		{ByWeek, berlin, "2026-10-26T00:00:00+01:00", "2026-10-26T00:00:00+01:00", "2026-11-02T00:00:00+01:00"}, // Monday
		{ByMonth, berlin, "2026-10-31T23:30:00+01:00", "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"},
		{ByMonth, time.UTC, "2026-12-31T23:30:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
	} {
		s := PeriodStart(tc.by, at(tc.t), tc.loc)
		e := PeriodEnd(tc.by, s, tc.loc)
		if !s.Equal(at(tc.start)) || !e.Equal(at(tc.end)) {
			t.Errorf("%s of %s in %s: [%v, %v), want [%s, %s)", tc.by, tc.t, tc.loc, s.In(tc.loc), e.In(tc.loc), tc.start, tc.end)
		}
	}
}

// Periods with nothing stored do not report the tiers' pruning marks as a
// rounded answer; a period whose data was rounded does.
func TestAnswerPeriodsResolution(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	ws := monthWindows()
	db, err := storage.Open(filepath.Join(t.TempDir(), "month.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	// Daily rollups are kept from September 20th on, eleven days before
	// there are any: tiers that could hold data, and hold none.
	if _, err := db.PruneTiers(ws[len(ws)-1].Start, storage.Retention{Windows: 48 * time.Hour, Hours: 10 * 24 * time.Hour, Days: 41 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	q := Question{By: ByDay, Loc: berlin}
	rows, sum, err := Answer(context.Background(), db, Range{From: time.Date(2026, 9, 1, 0, 0, 0, 0, berlin), To: time.Date(2026, 10, 1, 0, 0, 0, 0, berlin)}, q)
	if err != nil || len(rows) != 0 || sum.Resolution != window.Raw {
		t.Errorf("empty September: %d rows, resolution %v, %v", len(rows), sum.Resolution, err)
	}
	// Early October: hourly rollups pruned, so a Berlin day is its UTC day.
	rows, sum, err = Answer(context.Background(), db, Range{From: time.Date(2026, 10, 2, 0, 0, 0, 0, berlin), To: time.Date(2026, 10, 5, 0, 0, 0, 0, berlin)}, q)
	if err != nil || len(rows) != 3 || sum.Resolution != window.Daily {
		t.Errorf("pruned October: %d rows, resolution %v, %v", len(rows), sum.Resolution, err)
	}
}

// The local zone is named for the daemon from TZ (as Go reads it), or
// refused when it has no name a daemon could load.
func TestNamedLocal(t *testing.T) {
	if _, err := time.LoadLocation("Europe/Berlin"); err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	for _, tc := range []struct{ tz, want string }{
		{"Europe/Berlin", "Europe/Berlin"}, {":Europe/Berlin", "Europe/Berlin"}, {"", "UTC"}, {"UTC", "UTC"},
	} {
		t.Setenv("TZ", tc.tz)
		loc, err := NamedLocal()
		if err != nil || loc.String() != tc.want {
			t.Errorf("TZ=%q: %v %v, want %s", tc.tz, loc, err, tc.want)
		}
	}
	for _, tz := range []string{"/usr/share/zoneinfo/Europe/Berlin", "Nowhere/Special", "Local"} {
		t.Setenv("TZ", tz)
		if loc, err := NamedLocal(); err == nil {
			t.Errorf("TZ=%q: %v, want an error", tz, loc)
		}
	}
}

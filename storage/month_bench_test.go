package storage_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// The month profile: a busy proxy. 30 days of 20 s windows (129,600); each
// window holds 500 remotes out of a pool of 20,000: 250 drawn by popularity
// (Zipf, s = 1.1: a few hundred remotes carry most of the traffic) and 250
// uniformly (the long tail), so an hour sees ~17k distinct remotes and a
// day all 20k. Each remote has a fixed country (30) and ASN (200), and
// heavy-tailed counts (bytes ~ 2 MB / rank^0.8 per window, random factor
// 0.5-1.5; a quarter of the pool is IPv6). Stored as a replay stores it:
// 1,024 windows per Put.
const (
	monthDays     = 30
	monthWindows  = monthDays * 4320
	monthPool     = 20_000
	monthPerWin   = 500
	monthCountry  = 30
	monthASNs     = 200
	monthPutBatch = 1024
)

var monthStart = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

var (
	monthOnce sync.Once
	monthPath string
	monthErr  error
	monthTook time.Duration
)

func monthPoolRemotes() []window.Remote {
	rng := rand.New(rand.NewPCG(42, 42))
	rs := make([]window.Remote, monthPool)
	for i := range rs {
		var a netip.Addr
		if i%4 == 3 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 4: byte(rng.Uint32()), 5: byte(rng.Uint32()), 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		} else {
			a = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(220)), byte(rng.Uint32()), byte(i >> 8), byte(i)})
		}
		c := rng.IntN(monthCountry)
		rs[i] = window.Remote{
			Addr:    a,
			Country: string([]byte{'A' + byte(c/26), 'A' + byte(c%26)}),
			ASN:     uint32(64500 + rng.IntN(monthASNs)),
		}
		rs[i].ASOrg = fmt.Sprintf("Org %d", rs[i].ASN)
	}
	return rs
}

// buildMonth writes the month once per test binary, into DSTWATCH_BENCH_DB
// when set (kept for later runs: it takes a while to build), else into a
// temporary directory.
func buildMonth(b *testing.B) string {
	monthOnce.Do(func() {
		path := os.Getenv("DSTWATCH_BENCH_DB")
		if path != "" {
			if _, err := os.Stat(path); err == nil {
				monthPath = path
				return
			}
		} else {
			dir, err := os.MkdirTemp("", "dstwatch-month-")
			if err != nil {
				monthErr = err
				return
			}
			path = filepath.Join(dir, "month.db")
		}
		monthPath = path
		start := time.Now()
		monthErr = writeMonth(path)
		monthTook = time.Since(start)
	})
	if monthErr != nil {
		b.Fatal(monthErr)
	}
	return monthPath
}

func writeMonth(path string) error {
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	pool := monthPoolRemotes()
	rng := rand.New(rand.NewPCG(1, 1))
	zipf := rand.NewZipf(rng, 1.1, 1, monthPool-1)
	seen := make([]int, monthPool) // window index + 1 that last took each remote
	var batch []*window.Window
	for i := range monthWindows {
		w := &window.Window{Start: monthStart.Add(time.Duration(i) * 20 * time.Second), Length: 20 * time.Second,
			Remotes: make([]window.Remote, 0, monthPerWin)}
		for len(w.Remotes) < monthPerWin {
			var k int
			if len(w.Remotes) < monthPerWin/2 {
				k = int(zipf.Uint64())
			} else {
				k = rng.IntN(monthPool)
			}
			if seen[k] == i+1 {
				continue
			}
			seen[k] = i + 1
			r := pool[k]
			f := 0.5 + rng.Float64()
			by := uint64(2e6/math.Pow(float64(k+1), 0.8)*f) + 60
			r.Counts = window.Counts{TxPackets: by/1200 + 1, TxBytes: by, RxPackets: by/2400 + 1, RxBytes: by / 20}
			w.Remotes = append(w.Remotes, r)
			w.Stats.Tallied += r.TxPackets + r.RxPackets
		}
		w.Stats.Frames = w.Stats.Tallied + 40
		w.Stats.NonIP = 40
		batch = append(batch, w)
		if len(batch) == monthPutBatch || i == monthWindows-1 {
			if err := db.Put(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// monthQuery is "this month" asked at 17:43:40 on the 30th: raw windows for
// the first and last partial hours, hourly rollups for the partial days,
// daily rollups for the 28 whole days between.
var (
	monthFrom = monthStart.Add(7*time.Minute + 20*time.Second)
	monthTo   = monthStart.Add(29*24*time.Hour + 17*time.Hour + 43*time.Minute + 40*time.Second)
)

func openMonth(b *testing.B) *storage.DB {
	path := buildMonth(b)
	db, err := storage.Open(path, storage.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if monthTook > 0 {
		st, _ := os.Stat(path)
		b.Logf("built the month in %s: %d windows, %.1f MB", monthTook.Round(time.Second), monthWindows, float64(st.Size())/1e6)
	}
	return db
}

func benchMonth(b *testing.B, by query.By, top int) {
	db := openMonth(b)
	b.ReportAllocs()
	var rows []query.Row
	var n int
	for b.Loop() {
		a, err := query.NewAggregator(by)
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		res, err := db.SpanWith(context.Background(), monthFrom, monthTo, storage.SpanOptions{Reuse: true}, func(w *window.Window) error {
			n++
			a.Add(w)
			return nil
		})
		if err != nil || res != window.Raw {
			b.Fatalf("Span: %v, resolution %s", err, res)
		}
		rows = query.Top(a.Rows(query.SortBytes), top)
	}
	b.ReportMetric(float64(n), "windows")
	b.ReportMetric(float64(len(rows)), "rows")
}

// BenchmarkMonthByCountry: "top countries this month".
func BenchmarkMonthByCountry(b *testing.B) { benchMonth(b, query.ByCountry, 0) }

// BenchmarkMonthByRemoteTop20: "top 20 remotes this month".
func BenchmarkMonthByRemoteTop20(b *testing.B) { benchMonth(b, query.ByRemote, 20) }

// BenchmarkMonthByASN: "AS totals this month".
func BenchmarkMonthByASN(b *testing.B) { benchMonth(b, query.ByASN, 0) }

// BenchmarkMonthSpanOnly: reading and decoding alone, with and without
// SpanOptions.Reuse, and on two workers (SpanOptions.Workers).
func BenchmarkMonthSpanOnly(b *testing.B) {
	b.Run("reuse", func(b *testing.B) { benchSpanOnly(b, true) })
	b.Run("alloc", func(b *testing.B) { benchSpanOnly(b, false) })
	b.Run("workers", func(b *testing.B) {
		db := openMonth(b)
		b.ReportAllocs()
		for b.Loop() {
			var remotes [2]int
			opt := storage.SpanOptions{Reuse: true, Workers: 2, Parallel: func(i int, w *window.Window) error {
				remotes[i] += len(w.Remotes)
				return nil
			}}
			if _, err := db.SpanWith(context.Background(), monthFrom, monthTo, opt, nil); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(remotes[0]+remotes[1]), "remotes")
		}
	})
}

func benchSpanOnly(b *testing.B, reuse bool) {
	db := openMonth(b)
	b.ReportAllocs()
	for b.Loop() {
		var remotes int
		if _, err := db.SpanWith(context.Background(), monthFrom, monthTo, storage.SpanOptions{Reuse: reuse}, func(w *window.Window) error {
			remotes += len(w.Remotes)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(remotes), "remotes")
	}
}

// BenchmarkMonthByCountryGroups: "top countries this month" from the
// rollups' groups (SpanOptions.Groups) and the raw edges' remotes, summed
// the way a groups-aware query.Aggregator would: by country, exact bytes
// and packets. (query.Aggregator itself does not read Groups yet.)
func BenchmarkMonthByCountryGroups(b *testing.B) {
	db := openMonth(b)
	b.ReportAllocs()
	for b.Loop() {
		rows := map[string]*window.Counts{}
		row := func(c string) *window.Counts {
			r := rows[c]
			if r == nil {
				r = &window.Counts{}
				rows[c] = r
			}
			return r
		}
		_, err := db.SpanWith(context.Background(), monthFrom, monthTo, storage.SpanOptions{Reuse: true, Groups: true}, func(w *window.Window) error {
			for i := range w.Groups {
				row(w.Groups[i].Country).Add(w.Groups[i].Counts)
			}
			for i := range w.Remotes {
				row(w.Remotes[i].Country).Add(w.Remotes[i].Counts)
			}
			row(query.OtherKey).Add(w.Other)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(rows)), "rows")
	}
}

// BenchmarkMonthSize reports the month's file: as built (every raw window
// kept), then a compacted copy after the default retention was applied at
// the month's end (2 days of raw windows, and the whole month of hourly
// and daily rollups), and the bytes of each tier.
func BenchmarkMonthSize(b *testing.B) {
	src := buildMonth(b)
	dir := b.TempDir()
	for b.Loop() {
		st, err := os.Stat(src)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Size())/1e6, "built-MB")
		cp, out := filepath.Join(dir, "copy.db"), filepath.Join(dir, "kept.db")
		os.Remove(cp)
		os.Remove(out)
		if err := storage.Compact(src, cp); err != nil {
			b.Fatal(err)
		}
		db, err := storage.Open(cp, storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		end := monthStart.Add(monthDays * 24 * time.Hour)
		p, err := db.PruneTiers(end.Add(-20*time.Second), storage.DefaultRetention)
		if err != nil {
			b.Fatal(err)
		}
		u, _ := db.Usage()
		db.Close()
		if err := storage.Compact(cp, out); err != nil {
			b.Fatal(err)
		}
		st, _ = os.Stat(out)
		b.ReportMetric(float64(st.Size())/1e6, "kept-MB")
		for r, name := range []string{"raw", "hourly", "daily"} {
			b.ReportMetric(float64(u[r].Bytes)/1e6, name+"-MB")
			b.Logf("%s: %d units, %.1f MB of keys and values", name, u[r].Units, float64(u[r].Bytes)/1e6)
		}
		b.Logf("pruned %+v", p)
	}
}

// BenchmarkMonthByRemoteAddrKeyed: "top 20 remotes this month" summed in a
// map keyed by netip.Addr, to show what query.Aggregator's by-remote path
// (a string key, so an Addr.String allocation per remote entry) costs.
func BenchmarkMonthByRemoteAddrKeyed(b *testing.B) {
	db := openMonth(b)
	b.ReportAllocs()
	for b.Loop() {
		rows := make(map[netip.Addr]*query.Row, 32_000)
		var other window.Counts
		_, err := db.SpanWith(context.Background(), monthFrom, monthTo, storage.SpanOptions{Reuse: true}, func(w *window.Window) error {
			for i := range w.Remotes {
				r := &w.Remotes[i]
				row := rows[r.Addr]
				if row == nil {
					row = &query.Row{Addr: r.Addr}
					rows[r.Addr] = row
				}
				row.Counts.Add(r.Counts)
				row.Country, row.ASN, row.ASOrg = r.Country, r.ASN, r.ASOrg
			}
			other.Add(w.Other)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		out := make([]query.Row, 0, len(rows)+1)
		for _, r := range rows {
			r.Key = r.Addr.String()
			out = append(out, *r)
		}
		out = append(out, query.Row{Key: query.OtherKey, Counts: other})
		query.SortRows(out, query.SortBytes)
		out = query.Top(out, 20)
		b.ReportMetric(float64(len(out)), "rows")
	}
}

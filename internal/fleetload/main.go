// Command fleetload plays a fleet for the ClickHouse export: N hosts, each
// writing windows of K remotes to one ClickHouse, then times the fleet
// queries over what it wrote. With -export-cpu it instead measures what
// the daemon's exporter costs per window: CPU time of this process while
// an Exporter sends windows of K remotes from a real bbolt outbox. With
// -days D it plays D days ending now the way the fleet's tables hold them
// once the exporters rolled them up: every window's row in table windows,
// raw remote rows only for the ragged edges (the partial hours at both
// ends), hourly rollups of -hour-remotes remotes for the whole hours
// outside whole days, and daily rollups of -day-remotes remotes for the
// whole days (a month of raw rows, 2.6 billion for 20 hosts, does not fit
// this machine), then times the fleet queries over the D days.
//
//	go run ./internal/fleetload -clickhouse clickhouse://127.0.0.1:9000/load -hosts 20 -remotes 1000 -span 6h
//	go run ./internal/fleetload -clickhouse clickhouse://127.0.0.1:9000/month -hosts 20 -remotes 1000 -days 30 -hour-remotes 5000 -day-remotes 5000
//	go run ./internal/fleetload -clickhouse clickhouse://127.0.0.1:9000/load -export-cpu -remotes 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/dstwatch/dstwatch/fleet"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

func main() {
	url := flag.String("clickhouse", "clickhouse://127.0.0.1:9000/load", "ClickHouse `url`")
	hosts := flag.Int("hosts", 20, "hosts to play")
	remotes := flag.Int("remotes", 1000, "remotes per window")
	pool := flag.Int("pool", 200000, "distinct remote addresses the fleet talks to")
	span := flag.Duration("span", 6*time.Hour, "history per host, ending now")
	length := flag.Duration("window", 20*time.Second, "window length")
	batch := flag.Int("batch", 64, "windows per insert")
	exportCPU := flag.Bool("export-cpu", false, "measure the exporter's CPU per window instead")
	days := flag.Int("days", 0, "play this many days as rolled up (see the package comment) instead of -span of raw windows")
	hourRemotes := flag.Int("hour-remotes", 5000, "distinct remotes in each host's hourly rollup, with -days")
	dayRemotes := flag.Int("day-remotes", 5000, "distinct remotes in each host's daily rollup, with -days")
	runs := flag.Int("runs", 5, "times each query runs; the median is printed")
	queryOnly := flag.Int64("query-only", 0, "with -days: do not write, only time the queries over the days ending at this Unix `second` (an earlier run's end)")
	flag.Parse()
	t, err := fleet.ParseURL(*url)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if *exportCPU {
		measureExport(ctx, t, *remotes)
		return
	}
	s, err := fleet.NewSender(ctx, t, "")
	if err != nil {
		fail(err)
	}
	defer s.Close()
	addrs := make([]netip.Addr, *pool)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	if *days > 0 {
		loadMonth(ctx, s, t, month{hosts: *hosts, days: *days, remotes: *remotes, hourRemotes: *hourRemotes, dayRemotes: *dayRemotes,
			window: *length, batch: *batch, runs: *runs, queryOnly: *queryOnly}, addrs)
		return
	}
	end := time.Now().Truncate(*length)
	start := end.Add(-*span)
	n := int(*span / *length)
	rows := 0
	began := time.Now()
	for h := range *hosts {
		rng := rand.New(rand.NewPCG(uint64(h), 7))
		host := fmt.Sprintf("host%02d", h)
		var ws []*window.Window
		for i := range n {
			ws = append(ws, window1(rng, addrs, start.Add(time.Duration(i)**length), *length, *remotes))
			if len(ws) == *batch || i == n-1 {
				if err := s.Send(ctx, host, ws, 1); err != nil {
					fail(err)
				}
				rows += len(ws) * *remotes
				ws = ws[:0]
			}
		}
		el := time.Since(began)
		fmt.Printf("host %d/%d: %d rows in %v, %.0f rows/s\n", h+1, *hosts, rows, el.Round(time.Millisecond), float64(rows)/el.Seconds())
	}
	r, err := fleet.Open(ctx, t, false)
	if err != nil {
		fail(err)
	}
	defer r.Close()
	for _, q := range []query.Question{{By: query.ByCountry}, {By: query.ByRemote, Top: 20}, {By: query.ByASN, Top: 20}, {By: fleet.ByHost}} {
		for range 2 { // the second run has warm caches
			t0 := time.Now()
			rs, sum, err := r.Aggregate(ctx, fleet.Question{Question: q, From: start, To: end.Add(time.Second)})
			if err != nil {
				fail(err)
			}
			fmt.Printf("fleet --by %s --top %d over %d windows: %d rows in %v\n", q.By, q.Top, sum.Windows, len(rs), time.Since(t0).Round(time.Millisecond))
		}
	}
}

type month struct {
	hosts, days, remotes, hourRemotes, dayRemotes, batch, runs int
	window                                                     time.Duration
	queryOnly                                                  int64
}

// loadMonth writes m.days ending now as rolled-up tables (the package
// comment says what exactly) and times the fleet queries over them.
func loadMonth(ctx context.Context, s *fleet.Sender, t fleet.Target, m month, addrs []netip.Addr) {
	to := time.Now().Truncate(m.window).Add(m.window)
	if m.queryOnly > 0 {
		to, m.hosts = time.Unix(m.queryOnly, 0), 0
	}
	from := to.Add(-time.Duration(m.days) * 24 * time.Hour)
	fmt.Printf("range %s to %s\n", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	h0, h1 := from.Truncate(time.Hour).Add(time.Hour), to.Truncate(time.Hour)
	d0, d1 := from.Truncate(24*time.Hour).Add(24*time.Hour), to.Truncate(24*time.Hour)
	n := int(to.Sub(from) / m.window)
	var rawRows, rollRows, winRows int
	var rawTime, rollTime time.Duration
	for h := range m.hosts {
		rng := rand.New(rand.NewPCG(uint64(h), 7))
		host := fmt.Sprintf("host%02d", h)
		// Every window's row; remote rows for the edges only.
		t0 := time.Now()
		var ws []*window.Window
		for i := range n {
			st := from.Add(time.Duration(i) * m.window)
			var w *window.Window
			if st.Before(h0) || !st.Before(h1) {
				w = window1(rng, addrs, st, m.window, m.remotes)
				rawRows += len(w.Remotes)
			} else {
				w = &window.Window{Start: st.UTC(), Length: m.window}
				w.Stats.Frames, w.Stats.Tallied = 1000, 1000
			}
			ws = append(ws, w)
			winRows++
			if len(ws) == m.batch*8 || i == n-1 {
				if err := s.Send(ctx, host, ws, 1); err != nil {
					fail(err)
				}
				ws = ws[:0]
			}
		}
		rawTime += time.Since(t0)
		// The rollups: hours outside whole days, then whole days.
		t0 = time.Now()
		per := uint32(time.Hour / m.window)
		for st := h0; st.Before(h1); st = st.Add(time.Hour) {
			if !st.Before(d0) && st.Before(d1) {
				continue
			}
			w := rollup1(rng, addrs, st, time.Hour, m.hourRemotes)
			if err := s.SendRollup(ctx, host, w, per, 1); err != nil {
				fail(err)
			}
			rollRows += len(w.Remotes)
		}
		for st := d0; st.Before(d1); st = st.Add(24 * time.Hour) {
			w := rollup1(rng, addrs, st, 24*time.Hour, m.dayRemotes)
			if err := s.SendRollup(ctx, host, w, 24*per, 1); err != nil {
				fail(err)
			}
			rollRows += len(w.Remotes)
		}
		rollTime += time.Since(t0)
		fmt.Printf("host %d/%d: %d window rows, %d raw remote rows (%.0f rows/s), %d rollup rows (%.0f rows/s)\n", h+1, m.hosts,
			winRows, rawRows, float64(rawRows+winRows)/rawTime.Seconds(), rollRows, float64(rollRows)/rollTime.Seconds())
	}
	r, err := fleet.Open(ctx, t, false)
	if err != nil {
		fail(err)
	}
	defer r.Close()
	// The range as asked (raw edges), to whole hours (no raw rows), and
	// whole days only.
	for _, rg := range []struct {
		name     string
		from, to time.Time
	}{{"as asked", from, to}, {"whole hours", h0, h1}, {"whole days", d0, d1}} {
		for _, q := range []query.Question{{By: query.ByCountry}, {By: query.ByRemote, Top: 20}} {
			var times []time.Duration
			var sum query.Summary
			var rows int
			for range m.runs {
				t0 := time.Now()
				rs, s, err := r.Aggregate(ctx, fleet.Question{Question: q, From: rg.from, To: rg.to})
				if err != nil {
					fail(err)
				}
				times = append(times, time.Since(t0))
				sum, rows = s, len(rs)
			}
			slices.Sort(times)
			fmt.Printf("%s: fleet --by %s --top %d: %d raw windows, %d hourly and %d daily rollups, %d rows; median %v of %d (min %v, max %v)\n",
				rg.name, q.By, q.Top, sum.Windows, sum.Hours, sum.Days, rows, times[len(times)/2].Round(time.Millisecond), len(times),
				times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
		}
	}
}

// rollup1 is a rollup of k distinct remotes drawn as window1 draws them,
// with a rollup's counts (window1's times the windows it stands for).
func rollup1(rng *rand.Rand, addrs []netip.Addr, start time.Time, length time.Duration, k int) *window.Window {
	w := window1(rng, addrs, start, length, k)
	f := uint64(length / (20 * time.Second) / 50) // each remote in about one window of fifty
	for i := range w.Remotes {
		c := &w.Remotes[i].Counts
		c.TxPackets, c.TxBytes, c.RxPackets, c.RxBytes = c.TxPackets*f, c.TxBytes*f, c.RxPackets*f, c.RxBytes*f
	}
	w.Stats.Tallied *= f
	w.Stats.Frames = w.Stats.Tallied
	return w
}

// window1 is one window of k remotes drawn from addrs, skewed so that a
// few remotes are everywhere, as real traffic is.
func window1(rng *rand.Rand, addrs []netip.Addr, start time.Time, length time.Duration, k int) *window.Window {
	w := &window.Window{Start: start.UTC(), Length: length}
	seen := make(map[int]bool, k)
	cc := []string{"NL", "DE", "US", "JP", "FR", "GB", ""}
	for len(w.Remotes) < k && len(seen) < len(addrs) {
		i := int(float64(len(addrs)) * rng.Float64() * rng.Float64() * rng.Float64())
		if seen[i] {
			continue
		}
		seen[i] = true
		c := window.Counts{TxPackets: uint64(rng.IntN(1000) + 1), RxPackets: uint64(rng.IntN(1000))}
		c.TxBytes, c.RxBytes = c.TxPackets*uint64(60+rng.IntN(1400)), c.RxPackets*uint64(60+rng.IntN(1400))
		w.Remotes = append(w.Remotes, window.Remote{Addr: addrs[i], Country: cc[i%len(cc)], ASN: uint32(64496 + i%200), Counts: c})
		w.Stats.Tallied += c.Packets()
	}
	w.Stats.Frames = w.Stats.Tallied
	return w
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureExport stores windows of k remotes in a bbolt file, then times
// the CPU this process spends while an Exporter sends them all.
func measureExport(ctx context.Context, t fleet.Target, k int) {
	dir, err := os.MkdirTemp("", "fleetload")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	db, err := storage.Open(filepath.Join(dir, "load.db"), storage.Options{})
	if err != nil {
		fail(err)
	}
	defer db.Close()
	addrs := make([]netip.Addr, 4*k)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 50
	start := time.Now().Truncate(20 * time.Second).Add(-n * 20 * time.Second)
	// One window per insert, as live: each is stored and its export
	// awaited before the next.
	e, err := fleet.New(fleet.Config{Target: t, Host: "cpu-probe", DB: db, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fail(err)
	}
	e.Start()
	var spent time.Duration
	var wall time.Duration
	for i := range n {
		w := window1(rng, addrs, start.Add(time.Duration(i)*20*time.Second), 20*time.Second, k)
		if err := db.Put([]*window.Window{w}); err != nil {
			fail(err)
		}
		c0, t0 := cpu(), time.Now()
		e.Stored([]*window.Window{w})
		for e.Lag().Exported < uint64(i+1) {
			time.Sleep(200 * time.Microsecond)
		}
		spent += cpu() - c0
		wall += time.Since(t0)
	}
	e.Stop(time.Second)
	fmt.Printf("export of a %d-remote window: %v CPU of this process, %v wall (mean of %d)\n", k, (spent / n).Round(time.Microsecond), (wall / n).Round(time.Microsecond), n)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleetload:", err)
	os.Exit(1)
}

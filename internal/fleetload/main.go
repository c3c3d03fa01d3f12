// Command fleetload plays a fleet for the ClickHouse export: N hosts, each
// writing windows of K remotes to one ClickHouse, then times the fleet
// queries over what it wrote. With -export-cpu it instead measures what
// the daemon's exporter costs per window: CPU time of this process while
// an Exporter sends windows of K remotes from a real bbolt outbox.
//
//	go run ./internal/fleetload -clickhouse clickhouse://127.0.0.1:9000/load -hosts 20 -remotes 1000 -span 6h
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
	"syscall"
	"time"

	"github.com/dstwatch/dstwatch/fleet"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

func main() {
	url := flag.String("clickhouse", "clickhouse://127.0.0.1:9000/load", "ClickHouse `url`")
	hosts := flag.Int("hosts", 20, "hosts to play")
	remotes := flag.Int("remotes", 1000, "remotes per window")
	pool := flag.Int("pool", 200000, "distinct remote addresses the fleet talks to")
	span := flag.Duration("span", 6*time.Hour, "history per host, ending now")
	window := flag.Duration("window", 20*time.Second, "window length")
	batch := flag.Int("batch", 64, "windows per insert")
	exportCPU := flag.Bool("export-cpu", false, "measure the exporter's CPU per window instead")
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
	end := time.Now().Truncate(*window)
	start := end.Add(-*span)
	n := int(*span / *window)
	rows := 0
	began := time.Now()
	for h := range *hosts {
		rng := rand.New(rand.NewPCG(uint64(h), 7))
		host := fmt.Sprintf("host%02d", h)
		var ws []*storage.Window
		for i := range n {
			ws = append(ws, window1(rng, addrs, start.Add(time.Duration(i)**window), *window, *remotes))
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

// window1 is one window of k remotes drawn from addrs, skewed so that a
// few remotes are everywhere, as real traffic is.
func window1(rng *rand.Rand, addrs []netip.Addr, start time.Time, length time.Duration, k int) *storage.Window {
	w := &storage.Window{Start: start.UTC(), Length: length}
	seen := make(map[int]bool, k)
	cc := []string{"NL", "DE", "US", "JP", "FR", "GB", ""}
	for len(w.Remotes) < k && len(seen) < len(addrs) {
		i := int(float64(len(addrs)) * rng.Float64() * rng.Float64() * rng.Float64())
		if seen[i] {
			continue
		}
		seen[i] = true
		c := rotate.Counts{TxPackets: uint64(rng.IntN(1000) + 1), RxPackets: uint64(rng.IntN(1000))}
		c.TxBytes, c.RxBytes = c.TxPackets*uint64(60+rng.IntN(1400)), c.RxPackets*uint64(60+rng.IntN(1400))
		w.Remotes = append(w.Remotes, storage.Remote{Addr: addrs[i], Country: cc[i%len(cc)], ASN: uint32(64496 + i%200), Counts: c})
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
		if err := db.Put([]*storage.Window{w}); err != nil {
			fail(err)
		}
		c0, t0 := cpu(), time.Now()
		e.Stored([]*storage.Window{w})
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

package storage

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// BenchmarkPutLarge is one 100k-remote window per Put: encode, one
// transaction, fsync. Each iteration writes a new window start, as the
// daemon does.
func BenchmarkPutLarge(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	w := bigWindow(t0, 100_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := *w
		c.Start = t0.Add(time.Duration(i) * 20 * time.Second)
		i++
		if err := db.Put([]*window.Window{&c}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if sz, err := db.Size(); err == nil {
		b.ReportMetric(float64(sz)/float64(i*100_000), "file-B/remote")
	}
}

// BenchmarkIngestMonth stores a month of 20 s windows (~130k) with 10
// remotes each, 1000 windows per Put, as a pcap replay would. One
// iteration is the whole month.
func BenchmarkIngestMonth(b *testing.B) {
	const windows, batch = 130_000, 1000
	ws := make([]*window.Window, windows)
	for i := range ws {
		w := &window.Window{Start: t0.Add(time.Duration(i) * 20 * time.Second), Length: 20 * time.Second,
			Stats: window.Stats{Frames: 1000, Tallied: 990, NonIP: 10}}
		for j := range 10 {
			w.Remotes = append(w.Remotes, window.Remote{
				Addr:    netip.AddrFrom4([4]byte{198, 51, 100, byte(j)}),
				Country: "NL", ASN: uint32(64500 + j), ASOrg: "org",
				Counts: window.Counts{TxPackets: uint64(100 - j), TxBytes: uint64(100_000 - j), RxPackets: 50, RxBytes: 4000},
			})
		}
		ws[i] = w
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "m.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := 0; i < windows; i += batch {
			if err := db.Put(ws[i:min(i+batch, windows)]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if sz, err := db.Size(); err == nil {
			b.ReportMetric(float64(sz)/1e6, "file-MB")
		}
		db.Close()
		b.StartTimer()
	}
}

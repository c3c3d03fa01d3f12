package daemon

// What closing a window costs the writer goroutine, off the counting path:
// Finish (select the heaviest remotes under the cap, sort them), one GeoIP
// lookup per stored remote in a country and an ASN database, and
// storage.Put of the window (one bbolt transaction, fsync): the writer's
// loop minus the record log.

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/geo"
	"github.com/dstwatch/dstwatch/internal/mmdbtest"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

const benchWindow = 20 * time.Second

var benchT0 = time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC)

// benchGeoDBs writes a country and an ASN database that cut 2001:db8::/32 into
// /48s, so every lookup walks 48 levels of a 65k-network tree, as lookups in
// the real GeoLite2 files do for IPv6.
func benchGeoDBs(b *testing.B) *geo.DB {
	dir := b.TempDir()
	cc := map[string]string{}
	as := map[string]mmdbtest.Entry{}
	codes := []string{"DE", "US", "FR", "NL", "GB", "JP", "BR", "IN"}
	for i := range 1 << 16 {
		var a [16]byte
		a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
		binary.BigEndian.PutUint16(a[4:], uint16(i))
		k := netip.PrefixFrom(netip.AddrFrom16(a), 48).String()
		cc[k] = codes[i%len(codes)]
		as[k] = mmdbtest.Entry{ASN: 64496 + uint32(i%16), ASOrg: fmt.Sprintf("Example Net %d", i%16)}
	}
	country, asn := filepath.Join(dir, "c.mmdb"), filepath.Join(dir, "a.mmdb")
	if err := mmdbtest.Country(country, cc); err != nil {
		b.Fatal(err)
	}
	if err := mmdbtest.ASN(asn, as); err != nil {
		b.Fatal(err)
	}
	g, err := geo.Open([]string{country, asn})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// benchClosedWindows tallies n windows of `remotes` remotes each (scattered IPv6
// addresses, skewed counts) through rotate.Tally.Run, as the daemon does,
// and returns them closed.
func benchClosedWindows(n, remotes int) []*rotate.Closed {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []*rotate.Closed
	p := capture.NewPipe(4)
	done := make(chan struct{})
	tl := rotate.New(rotate.Config{Length: benchWindow}, func(c *rotate.Closed) { out = append(out, c) })
	go func() { tl.Run(p); close(done) }()
	batch := p.Get()
	for w := range n {
		ts := benchT0.Add(time.Duration(w) * benchWindow).UnixNano()
		for i := range remotes {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			binary.BigEndian.PutUint32(a[4:], uint32(i)*2654435761)
			a[15] = 1
			for range 1 + rng.IntN(3) {
				batch = append(batch, capture.Event{TS: ts, Remote: a, Len: uint32(40 + rng.IntN(1460)), Kind: capture.Kind(rng.IntN(2))})
				if len(batch) == capture.BatchSize {
					p.Full <- batch
					batch = p.Get()
				}
			}
		}
	}
	p.Full <- batch
	close(p.Full)
	<-done
	return out
}

// BenchmarkCloseWindow is the writer's work for one closed 100k-remote
// window: Finish, GeoIP for every stored remote, storage.Put. One op is one
// window; the target is < 200 ms. "cap" is --max-remotes (10000 is the
// default; 0 stores all 100k).
func BenchmarkCloseWindow(b *testing.B) {
	g := benchGeoDBs(b)
	for _, cap := range []int{10000, 0} {
		b.Run(fmt.Sprintf("remotes=100k/cap=%d", cap), func(b *testing.B) {
			db, err := storage.Open(filepath.Join(b.TempDir(), "b.db"), storage.Options{Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			b.ReportAllocs()
			var windows []*rotate.Closed
			for i := 0; b.Loop(); i++ {
				if len(windows) == 0 {
					b.StopTimer()
					windows = benchClosedWindows(4, 100_000)
					// Distinct window starts per batch, as the daemon writes.
					for _, c := range windows {
						c.Start = c.Start.Add(time.Duration(i) * benchWindow)
					}
					b.StartTimer()
				}
				c := windows[0]
				windows = windows[1:]
				if err := db.Put([]*window.Window{resolveWindow(g, nil, c.Finish(cap))}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

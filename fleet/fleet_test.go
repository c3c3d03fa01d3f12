package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/chtest"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// randomWindows makes n 20 s windows from start with remotes drawn from a
// small pool (so remotes recur), IPv4 and IPv6, some without a country or
// AS, some folded into other, and a service or two.
func randomWindows(rng *rand.Rand, start time.Time, n int) []*window.Window {
	countries := []string{"NL", "DE", "US", ""}
	var ws []*window.Window
	for i := range n {
		w := &window.Window{Start: start.Add(time.Duration(i) * 20 * time.Second), Length: 20 * time.Second}
		seen := map[netip.Addr]bool{}
		for range 1 + rng.IntN(30) {
			var a netip.Addr
			if rng.IntN(4) == 0 {
				a = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", rng.IntN(40)+1))
			} else {
				a = netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(60) + 1)})
			}
			if seen[a] {
				continue
			}
			seen[a] = true
			asn := uint32(64496 + rng.IntN(6))
			if rng.IntN(5) == 0 {
				asn = 0
			}
			r := window.Remote{Addr: a, Country: countries[rng.IntN(len(countries))], ASN: asn,
				Counts: window.Counts{TxPackets: uint64(rng.IntN(100) + 1), TxBytes: uint64(rng.IntN(1e6)), RxPackets: uint64(rng.IntN(100)), RxBytes: uint64(rng.IntN(1e6))}}
			if rng.IntN(7) == 0 {
				r.TxPackets, r.TxBytes = 0, 0 // receive only
				r.RxPackets++
			}
			if asn != 0 {
				r.ASOrg = fmt.Sprintf("Org %d", asn)
			}
			w.Remotes = append(w.Remotes, r)
			w.Stats.Tallied += r.Packets()
		}
		if rng.IntN(3) == 0 {
			w.Other = window.Counts{TxPackets: 5, TxBytes: 500, RxPackets: 7, RxBytes: 700}
			w.Stats.Folded = 3
		}
		w.Stats.Frames = w.Stats.Tallied + 4
		w.Stats.NonIP, w.Stats.Drops = 4, uint64(rng.IntN(2))
		for k, key := range []window.ServiceKey{window.MakeServiceKey(window.ProtoTCP, window.SideIn, 443), window.MakeServiceKey(window.ProtoUDP, window.SideOut, 53)} {
			svc := window.Service{Key: key, Remotes: 5 + k + rng.IntN(3), Counts: window.Counts{TxPackets: 100, TxBytes: uint64(1e6 + rng.IntN(1e5)), RxPackets: 100, RxBytes: 5000}}
			for j := range min(len(w.Remotes), 2+k) {
				r := w.Remotes[j]
				r.Counts = window.Counts{TxPackets: uint64(j + 1), TxBytes: uint64(100*(5-j) + k), RxPackets: uint64(k), RxBytes: uint64(10 * k)}
				svc.Top = append(svc.Top, r)
			}
			slices.SortFunc(svc.Top, heavierRemote)
			w.Services = append(w.Services, svc)
		}
		slices.SortFunc(w.Services, func(x, y window.Service) int {
			return cmp.Or(cmp.Compare(y.Bytes(), x.Bytes()), cmp.Compare(x.Key, y.Key))
		})
		ws = append(ws, w)
	}
	return ws
}

func openDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "dstwatch.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func target(t *testing.T, s *chtest.Server, db string) Target {
	t.Helper()
	tg, err := ParseURL(s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// waitExported waits until the outbox is empty.
func waitExported(t *testing.T, e *Exporter) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		e.refresh()
		if e.Lag().Windows == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("export still behind after 60 s: %+v", e.Lag())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var testFilters = []query.Filter{{}, {Direction: query.Tx}, {Direction: query.Rx},
	{Remotes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/27"), netip.MustParsePrefix("2001:db8::/120")}},
	{Countries: []string{"NL", "--"}}, {ASNs: []uint32{64497, 0}}}

// compareAggregates checks that the fleet's aggregates for hosts equal the
// local DB's query, summary included, for every grouping, a filter and
// --top.
func compareAggregates(t *testing.T, r *Reader, db *storage.DB, hosts []string, from, to time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, by := range []query.By{query.ByRemote, query.ByCountry, query.ByASN} {
		for fi, f := range testFilters {
			for _, top := range []int{0, 5} {
				q := query.Question{By: by, Filter: f, Sort: query.SortBytes, Top: top}
				want, wsum, err := query.Answer(context.Background(), db, query.Range{From: from, To: to}, q)
				if err != nil {
					t.Fatal(err)
				}
				got, gsum, err := r.Aggregate(ctx, Question{Question: q, Hosts: hosts, From: from, To: to})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("by %s filter %d top %d:\nfleet %+v\nlocal %+v", by, fi, top, got, want)
				}
				if gsum.Stats != wsum.Stats || gsum.First != wsum.First || gsum.Last != wsum.Last || gsum.DropUnits != wsum.DropUnits || gsum.FoldUnits != wsum.FoldUnits ||
					gsum.Windows != wsum.Windows || gsum.Hours != wsum.Hours || gsum.Days != wsum.Days {
					t.Fatalf("by %s: summary fleet %+v, local %+v", by, gsum, wsum)
				}
			}
		}
	}
}

// compare checks that the fleet's answers for host equal the local DB's,
// for every grouping, sort, a filter and --top, services and windows too.
func compare(t *testing.T, r *Reader, db *storage.DB, hosts []string, from, to time.Time) {
	t.Helper()
	compareAggregates(t, r, db, hosts, from, to)
	ctx := context.Background()
	filters := testFilters
	for fi, f := range []query.ServiceFilter{{}, {Filter: query.Filter{Direction: query.Rx}}, {Filter: filters[3]},
		{Ports: []uint16{443, 53}, Protos: []window.Proto{window.ProtoTCP}}} {
		for _, top := range []int{0, 1} {
			q := query.ServiceQuestion{Filter: f, Sort: query.SortBytes, Top: top}
			want, _, err := query.AnswerServices(context.Background(), db, query.Range{From: from, To: to}, q)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := r.Services(ctx, Question{Question: query.Question{Sort: q.Sort, Top: top}, Hosts: hosts, From: from, To: to}, f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) || len(want) == 0 {
				t.Fatalf("services, filter %d top %d:\nfleet %+v\nlocal %+v", fi, top, got, want)
			}
		}
	}
	got, err := r.Windows(ctx, Question{Hosts: hosts, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	var want []*window.Window
	db.Windows(context.Background(), from, to, func(w *window.Window) error {
		want = append(want, w)
		return nil
	})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("windows differ: fleet %d, local %d\nfleet[0] %+v\nlocal[0] %+v", len(got), len(want), got[0], want[0])
	}
}

// Windows stored before and while the exporter runs all reach ClickHouse,
// and every answer from there equals the local one. A window merged after
// its export is sent again and read as its newer copy, and a repeated
// insert (a crash between insert and outbox update) is read once.
func TestExportEqualsLocal(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	db := openDB(t)
	rng := rand.New(rand.NewPCG(1, 2))
	ws := randomWindows(rng, t0, 120)
	if err := db.Put(ws[:40]); err != nil { // stored before the export was enabled
		t.Fatal(err)
	}
	e, err := New(Config{Target: target(t, srv, "fleet1"), Host: "h1", DB: db, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	for _, w := range ws[40:] {
		if err := db.Put([]*window.Window{w}); err != nil {
			t.Fatal(err)
		}
		e.Stored([]*window.Window{w})
	}
	waitExported(t, e)
	// A window stored again is merged locally; its new copy replaces the old.
	if err := db.Put(ws[10:11]); err != nil {
		t.Fatal(err)
	}
	e.Stored(ws[10:11])
	waitExported(t, e)
	r, err := Open(context.Background(), target(t, srv, "fleet1"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The same rows once more, as after a crash before the outbox update.
	var again []versioned
	db.Windows(context.Background(), t0, t0.Add(time.Hour), func(w *window.Window) error {
		if len(again) < 5 {
			again = append(again, versioned{w, 1 << 40})
		}
		return nil
	})
	if err := insert(context.Background(), r.conn, "fleet1", "h1", again); err != nil {
		t.Fatal(err)
	}
	compare(t, r, db, nil, t0, t0.Add(time.Hour))
	// And again with the same version, as after a second crash: those
	// windows' rows are there twice (no merge may remove them first), and
	// read once (with FINAL).
	srv.Exec("SYSTEM STOP MERGES fleet1.remotes")
	if err := insert(context.Background(), r.conn, "fleet1", "h1", again[:3]); err != nil {
		t.Fatal(err)
	}
	compare(t, r, db, nil, t0, t0.Add(time.Hour))
	compare(t, r, db, []string{"h1"}, t0.Add(5*time.Minute), t0.Add(17*time.Minute))
	if lag := e.Lag(); lag.Exported != 121 || lag.Windows != 0 || lag.Seconds != 0 {
		t.Fatalf("lag %+v, want 121 exported and none behind", lag)
	}
	e.Stop(time.Second)
}

// ClickHouse down: windows wait in the outbox, the lag grows, and once the
// server is back every window arrives, once.
func TestExportOutage(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	db := openDB(t)
	rng := rand.New(rand.NewPCG(3, 4))
	ws := randomWindows(rng, t0, 30)
	e, err := New(Config{Target: target(t, srv, "fleet2"), Host: "h1", DB: db, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	db.Put(ws[:10])
	e.Stored(ws[:10])
	waitExported(t, e)
	srv.Stop()
	db.Put(ws[10:])
	e.Stored(ws[10:])
	time.Sleep(2 * time.Second)
	e.refresh()
	if lag := e.Lag(); lag.Windows != 20 || lag.Seconds != 20*20 || lag.Failing == "" || lag.Errors == 0 {
		t.Fatalf("lag while ClickHouse is down: %+v", lag)
	}
	srv.Restart()
	waitExported(t, e)
	e.Stop(time.Second)
	r, err := Open(context.Background(), target(t, srv, "fleet2"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	compare(t, r, db, nil, t0, t0.Add(time.Hour))
}

// A database written by a newer dstwatch is refused, not written to.
func TestSchemaTooNew(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	srv.Exec("CREATE DATABASE f3", "CREATE TABLE f3.dstwatch_schema (version UInt32, applied DateTime) ENGINE = MergeTree ORDER BY version")
	c, err := srv.Open("f3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.PrepareBatch(context.Background(), "INSERT INTO f3.dstwatch_schema (version, applied)")
	b.Append(uint32(SchemaVersion+1), time.Now())
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	err = ensureSchema(context.Background(), c, "f3", "")
	if err == nil || !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("ensureSchema = %v, want ErrSchemaTooNew", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, bad := range []string{"http://h:8123/db", "clickhouse://u:p@h:9000/db", "clickhouse:///db", "clickhouse://h/d-b"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	tg, err := ParseURL("clickhouse://ch.example/fleet")
	if err != nil || !reflect.DeepEqual(tg.Addrs, []string{"ch.example:9000"}) || tg.Database != "fleet" {
		t.Fatalf("ParseURL = %+v, %v", tg, err)
	}
	if err := ReadPasswordFile(&tg, []byte("reader\nse:cret\n")); err != nil || tg.User != "reader" || tg.Password != "se:cret" {
		t.Fatalf("ReadPasswordFile = %+v, %v", tg, err)
	}
	if err := ReadPasswordFile(&tg, []byte("a\nb\nc\n")); err == nil {
		t.Fatal("three lines accepted")
	}
}

// A service read back from its columns is the service written, on every
// side (a scan's too).
func TestServiceKeySides(t *testing.T) {
	for sd := range window.Side(window.NumSides) {
		k := window.MakeServiceKey(window.ProtoTCP, sd, 443)
		if got := serviceKey(k.Proto().String(), k.Side().String(), k.Port()); got != k {
			t.Errorf("side %q: read back as %v, want %v", sd, got, k)
		}
	}
}

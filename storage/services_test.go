package storage

import (
	"context"
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

var (
	svcHTTPS = window.MakeServiceKey(window.ProtoTCP, window.SideOut, 443)
	svcWeb   = window.MakeServiceKey(window.ProtoTCP, window.SideIn, 8080)
	svcICMP  = window.MakeServiceKey(window.ProtoICMP, window.SideNone, 0)
)

func svcWindow(start time.Time, k uint64) *window.Window {
	a := netip.MustParseAddr("203.0.113.5")
	b := netip.MustParseAddr("2001:db8::9")
	c := window.Counts{TxPackets: 3 * k, TxBytes: 300 * k, RxPackets: 2 * k, RxBytes: 200 * k}
	return &window.Window{Start: start, Length: 20 * time.Second,
		Remotes: []window.Remote{{Addr: a, Country: "JP", ASN: 64500, Counts: c}},
		Services: []window.Service{
			{Key: svcHTTPS, Remotes: 3, Counts: window.Counts{TxPackets: 10 * k, TxBytes: 1000 * k, RxPackets: 10 * k, RxBytes: 9000 * k},
				Top: []window.Remote{{Addr: a, Country: "JP", ASN: 64500, Counts: c}, {Addr: b, Counts: window.Counts{TxPackets: k, TxBytes: 100 * k}}}},
			{Key: svcWeb, Remotes: 1, Counts: window.Counts{RxPackets: k, RxBytes: 60 * k}},
			{Key: svcICMP, Remotes: 1, Counts: window.Counts{TxPackets: k, TxBytes: 84 * k}},
		}}
}

func TestServicesRoundTrip(t *testing.T) {
	w := svcWindow(t0, 1)
	got, err := UnmarshalWindow(windowKey(w.Start), MarshalWindow(w))
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Services {
		s := &w.Services[i]
		s.Other = s.Counts
		for _, r := range s.Top {
			s.Other = sub(s.Other, r.Counts)
		}
	}
	if !reflect.DeepEqual(got.Services, w.Services) {
		t.Fatalf("services\n got %+v\nwant %+v", got.Services, w.Services)
	}
	// A decoder that does not know section 7 (a format 2 build) skips it:
	// the value without it decodes to the same window minus services.
	old := MarshalWindow(&window.Window{Start: w.Start, Length: w.Length, Remotes: w.Remotes})
	if v := MarshalWindow(w); len(v) <= len(old) || string(v[:len(old)]) != string(old) {
		t.Fatal("section 7 is not appended after the sections of format 2")
	}
}

func sub(a, b window.Counts) window.Counts {
	return window.Counts{TxPackets: a.TxPackets - b.TxPackets, TxBytes: a.TxBytes - b.TxBytes,
		RxPackets: a.RxPackets - b.RxPackets, RxBytes: a.RxBytes - b.RxBytes}
}

func TestServicesCorrupt(t *testing.T) {
	w := svcWindow(t0, 1)
	w.Services[0].Counts.TxBytes = 10 // less than its remotes
	if _, err := UnmarshalWindow(windowKey(w.Start), MarshalWindow(w)); err == nil {
		t.Fatal("a service whose remotes exceed its total decoded")
	}
}

// Services are summed per service into the rollups, and a window stored
// twice sums its services too.
func TestServicesRollupAndMerge(t *testing.T) {
	db := openTemp(t)
	hour := floorHour(t0)
	var ws []*window.Window
	for i := range 3 {
		ws = append(ws, svcWindow(hour.Add(time.Duration(i)*20*time.Second), uint64(i+1)))
	}
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	if err := db.Put([]*window.Window{svcWindow(hour, 1)}); err != nil { // merged: k 1+1
		t.Fatal(err)
	}
	// A window of the next hour seals the first.
	if err := db.Put([]*window.Window{svcWindow(hour.Add(time.Hour), 1)}); err != nil {
		t.Fatal(err)
	}
	var got []*window.Window
	if _, err := db.Span(context.Background(), hour, hour.Add(time.Hour), func(w *window.Window) error { got = append(got, w); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Length != time.Hour {
		t.Fatalf("span gave %d units, want the hourly rollup", len(got))
	}
	const k = 1 + 1 + 2 + 3
	want := map[window.ServiceKey]window.Counts{
		svcHTTPS: {TxPackets: 10 * k, TxBytes: 1000 * k, RxPackets: 10 * k, RxBytes: 9000 * k},
		svcWeb:   {RxPackets: k, RxBytes: 60 * k},
		svcICMP:  {TxPackets: k, TxBytes: 84 * k},
	}
	if len(got[0].Services) != 3 {
		t.Fatalf("%d services", len(got[0].Services))
	}
	for _, s := range got[0].Services {
		if s.Counts != want[s.Key] {
			t.Errorf("%v: %+v, want %+v", s.Key, s.Counts, want[s.Key])
		}
	}
	https := got[0].Services[0]
	if https.Key != svcHTTPS || https.Remotes != 3 || len(https.Top) != 2 || https.Top[0].Country != "JP" ||
		https.Top[0].TxBytes != 300*k || https.Other.RxBytes != (9000-200)*k {
		t.Errorf("https rollup: %+v", https)
	}
}

// A format 2 file opens as format 3 with its windows unchanged: they just
// have no services.
func TestUpgradeFormat2(t *testing.T) {
	path := t.TempDir() + "/d.db"
	writeDstwatch(t, path, 3)
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error { return putFormat(tx.Bucket(bucketMeta), 2) })
	b.Close()
	if _, err := Open(path, Options{ReadOnly: true}); err == nil {
		t.Fatal("a read-only open of a format 2 file must ask for an upgrade")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat)); v != 3 {
			t.Errorf("format %d", v)
		}
		return nil
	})
	n := 0
	if err := db.Windows(context.Background(), t0, t0.Add(time.Hour), func(w *window.Window) error {
		n++
		if len(w.Services) != 0 || len(w.Remotes) != 53 {
			t.Errorf("window %v: %d services, %d remotes", w.Start, len(w.Services), len(w.Remotes))
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("%d windows, %v", n, err)
	}
}

package query

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

func c(tp, tb, rp, rb uint64) window.Counts {
	return window.Counts{TxPackets: tp, TxBytes: tb, RxPackets: rp, RxBytes: rb}
}

var (
	t0 = time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)
	a1 = netip.MustParseAddr("198.51.100.1")
	a2 = netip.MustParseAddr("198.51.100.2")
	a3 = netip.MustParseAddr("2001:db8::3")
)

func windows() []*window.Window {
	return []*window.Window{
		{Start: t0, Length: 20 * time.Second, Remotes: []window.Remote{
			{Addr: a1, Country: "NL", ASN: 1, Counts: c(1, 100, 0, 0)},
			{Addr: a3, Country: "DE", ASN: 2, ASOrg: "Two", Counts: c(0, 0, 5, 50)},
		}, Other: c(1, 1, 1, 1), Stats: window.Stats{Folded: 2}},
		{Start: t0.Add(20 * time.Second), Length: 20 * time.Second, Remotes: []window.Remote{
			{Addr: a2, Country: "NL", ASN: 1, Counts: c(2, 1000, 2, 20)},
			{Addr: a1, Country: "BE", ASN: 1, Counts: c(1, 10, 1, 10)}, // GeoIP changed its mind
		}},
	}
}

func TestFilter(t *testing.T) {
	ws := windows()
	for _, tc := range []struct {
		name string
		f    Filter
		want []int // remotes kept per window
		tx   uint64
		rx   uint64 // bytes over all kept remotes and other
	}{
		{"zero", Filter{}, []int{2, 2}, 100 + 1 + 1000 + 10, 50 + 1 + 20 + 10},
		{"tx drops rx-only remotes", Filter{Direction: Tx}, []int{1, 2}, 1111, 0},
		{"rx", Filter{Direction: Rx}, []int{1, 2}, 0, 81},
		{"prefix drops other", Filter{Remotes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/31")}}, []int{1, 1}, 110, 10},
		{"country case-insensitive", Filter{Countries: []string{"nl"}}, []int{1, 1}, 1100, 20},
		{"unknown country", Filter{Countries: []string{"--"}}, []int{0, 0}, 0, 0},
		{"asn and country", Filter{ASNs: []uint32{1}, Countries: []string{"BE", "DE"}}, []int{0, 1}, 10, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tx, rx uint64
			for i, w := range ws {
				got := tc.f.Apply(w)
				if len(got.Remotes) != tc.want[i] {
					t.Errorf("window %d: %d remotes, want %d", i, len(got.Remotes), tc.want[i])
				}
				if again := tc.f.Apply(got); !reflect.DeepEqual(again, got) {
					t.Errorf("window %d: Apply is not idempotent", i)
				}
				if got.Stats != w.Stats {
					t.Errorf("window %d: stats changed", i)
				}
				for _, r := range got.Remotes {
					tx += r.TxBytes
					rx += r.RxBytes
				}
				tx += got.Other.TxBytes
				rx += got.Other.RxBytes
			}
			if tx != tc.tx || rx != tc.rx {
				t.Errorf("tx %d rx %d, want %d %d", tx, rx, tc.tx, tc.rx)
			}
		})
	}
	if ws[0].Remotes[1].RxBytes != 50 || len(ws[0].Remotes) != 2 {
		t.Error("Apply changed its input")
	}
}

func TestAggregate(t *testing.T) {
	rows, err := Aggregate(windows(), ByCountry, Filter{}, SortBytes)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Key: "NL", Country: "NL", Remotes: 2, Counts: c(3, 1100, 2, 20)},
		{Key: "DE", Country: "DE", Remotes: 1, Counts: c(0, 0, 5, 50)},
		{Key: "BE", Country: "BE", Remotes: 1, Counts: c(1, 10, 1, 10)},
		{Key: OtherKey, Counts: c(1, 1, 1, 1)},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("by country:\n got %+v\nwant %+v", rows, want)
	}
	rows, _ = Aggregate(windows(), ByRemote, Filter{}, SortPackets)
	if rows[0].Key != a3.String() || rows[0].ASOrg != "Two" || rows[1].Key != "198.51.100.2" {
		t.Errorf("by remote, packets: %+v", rows)
	}
	if rows[2].Key != a1.String() || rows[2].Country != "BE" {
		t.Errorf("a remote's newest country should win: %+v", rows[2])
	}
	rows, _ = Aggregate(windows(), ByASN, Filter{}, SortBytes)
	if rows[0].ASN != 1 || rows[0].Remotes != 2 || rows[0].Bytes() != 120+1020 {
		t.Errorf("by asn: %+v", rows[0])
	}
	top := Top(rows, 1)
	var sum, all window.Counts
	for _, r := range rows {
		all.Add(r.Counts)
	}
	for _, r := range top {
		sum.Add(r.Counts)
	}
	if len(top) != 2 || !top[1].IsOther() || sum != all {
		t.Errorf("top 1 of %d: %+v", len(rows), top)
	}
	if _, err := Aggregate(nil, ByWindow, Filter{}, SortBytes); err == nil {
		t.Error("aggregate by window accepted")
	}
}

func TestWindowJSONRoundTrip(t *testing.T) {
	for _, w := range windows() {
		w.GeoBuild = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
		w.Stats.Drops = 1<<64 - 1
		b, err := json.Marshal(ToWindowJSON(w))
		if err != nil {
			t.Fatal(err)
		}
		var j WindowJSON
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		got, err := FromWindowJSON(&j)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("got %+v\nwant %+v", got, w)
		}
	}
	for _, bad := range []WindowJSON{
		{Start: "x", End: "2026-10-25T00:00:20Z"},
		{Start: "2026-10-25T00:00:20Z", End: "2026-10-25T00:00:00Z"},
		{Start: "2026-10-25T00:00:00Z", End: "2026-10-25T00:00:20Z", Remotes: []RemoteJSON{{Addr: "nope"}}},
	} {
		if _, err := FromWindowJSON(&bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestParsers(t *testing.T) {
	if p, err := ParsePrefix("::ffff:192.0.2.0/120"); err != nil || p.String() != "192.0.2.0/24" {
		t.Errorf("mapped prefix: %v %v", p, err)
	}
	if p, err := ParsePrefix("192.0.2.9"); err != nil || p.String() != "192.0.2.9/32" {
		t.Errorf("address: %v %v", p, err)
	}
	if n, err := ParseASN("AS64500"); err != nil || n != 64500 {
		t.Errorf("AS64500: %v %v", n, err)
	}
	if _, err := ParseASN("4294967296"); err == nil {
		t.Error("ASN over 32 bits accepted")
	}
	if _, err := ParseDirection("up"); err == nil {
		t.Error("direction up accepted")
	}
}

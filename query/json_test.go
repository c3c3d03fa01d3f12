package query

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// serviceWindows are windows() with per-service tallies: a service with
// rows and a rest, one whose rows are all of it, a portless one without
// rows.
func serviceWindows() []*window.Window {
	ws := windows()
	ws[0].Services = []window.Service{
		{Key: window.MakeServiceKey(window.ProtoTCP, window.SideOut, 443), Remotes: 3,
			Counts: c(2, 150, 5, 51), Other: c(1, 50, 0, 1), Top: []window.Remote{
				{Addr: a1, Country: "NL", ASN: 1, Counts: c(1, 100, 0, 0)},
				{Addr: a3, Country: "DE", ASN: 2, ASOrg: "Two", Counts: c(0, 0, 5, 50)},
			}},
		{Key: window.MakeServiceKey(window.ProtoICMP, window.SideNone, 0), Remotes: 1, Counts: c(0, 0, 1, 1), Other: c(0, 0, 1, 1)},
	}
	ws[1].Services = []window.Service{
		{Key: window.MakeServiceKey(window.ProtoUDP, window.SideIn, 53), Remotes: 2,
			Counts: c(3, 1010, 3, 30), Top: []window.Remote{
				{Addr: a2, Country: "NL", ASN: 1, Counts: c(2, 1000, 2, 20)},
				{Addr: a1, Country: "BE", ASN: 1, Counts: c(1, 10, 1, 10)},
			}},
	}
	return ws
}

func roundTrip(t *testing.T, w *window.Window) (*window.Window, []byte) {
	t.Helper()
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
	return got, b
}

// Services survive the JSON shape exactly, both as built and as storage
// gives them back; a window without services has no "services" field.
func TestWindowJSONServices(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "w.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ws := serviceWindows()
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	var stored []*window.Window
	if err := db.Last(context.Background(), len(ws), func(w *window.Window) error { stored = append(stored, w); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(ws) {
		t.Fatalf("%d windows stored, want %d", len(stored), len(ws))
	}
	for i, w := range append(ws, stored...) {
		got, b := roundTrip(t, w)
		if !reflect.DeepEqual(got, w) {
			t.Errorf("window %d:\n got %+v\nwant %+v", i, got, w)
		}
		if !json.Valid(b) || !strings.Contains(string(b), `"services":[`) {
			t.Errorf("window %d: no services in %s", i, b)
		}
	}

	// The shape of one service: a --by service row, top and other.
	var m struct {
		Services []map[string]json.RawMessage `json:"services"`
	}
	_, b := roundTrip(t, ws[0])
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := `{"service":"443/tcp","proto":"tcp","port":443,"side":"out","remotes":3,` +
		`"tx_packets":2,"tx_bytes":150,"rx_packets":5,"rx_bytes":51,` +
		`"top":[{"addr":"198.51.100.1","country":"NL","asn":1,"tx_packets":1,"tx_bytes":100,"rx_packets":0,"rx_bytes":0},` +
		`{"addr":"2001:db8::3","country":"DE","asn":2,"as_org":"Two","tx_packets":0,"tx_bytes":0,"rx_packets":5,"rx_bytes":50}],` +
		`"other":{"tx_packets":1,"tx_bytes":50,"rx_packets":0,"rx_bytes":1}}`
	if got, _ := json.Marshal(ToWindowJSON(ws[0]).Services[0]); string(got) != want {
		t.Errorf("service:\n got %s\nwant %s", got, want)
	}
	if len(m.Services) != 2 || string(m.Services[1]["top"]) != "[]" || string(m.Services[1]["side"]) != `""` {
		t.Errorf("portless service without rows: %s", b)
	}

	plain := windows()[0]
	got, b := roundTrip(t, plain)
	if strings.Contains(string(b), "services") || got.Services != nil || !reflect.DeepEqual(got, plain) {
		t.Errorf("a window without services: %s", b)
	}

	base := ToWindowJSON(ws[0])
	for name, spoil := range map[string]func(*WindowServiceJSON){
		"protocol": func(s *WindowServiceJSON) { s.Proto = "sctp" },
		"side":     func(s *WindowServiceJSON) { s.Side = "up" },
		"remotes":  func(s *WindowServiceJSON) { s.Remotes = -1 },
		"top addr": func(s *WindowServiceJSON) { s.Top[0].Addr = "nope" },
	} {
		b, _ := json.Marshal(base)
		var j WindowJSON
		json.Unmarshal(b, &j)
		spoil(&j.Services[0])
		if _, err := FromWindowJSON(&j); err == nil {
			t.Errorf("bad %s accepted", name)
		}
	}
}

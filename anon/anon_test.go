package anon

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstwatch/dstwatch/window"
)

func TestTruncate(t *testing.T) {
	tr := Truncate{Bits4: 24, Bits6: 48}
	for in, want := range map[string]string{
		"203.0.113.77":             "203.0.113.0",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1::",
		"198.51.100.255":           "198.51.100.0",
		"2001:db8:ffff:ffff::ffff": "2001:db8:ffff::",
	} {
		if got := tr.Addr(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

func TestHashIsKeyedStableAndKeepsTheFamily(t *testing.T) {
	a := netip.MustParseAddr("203.0.113.77")
	h1, h2 := Hash{Key: []byte("0123456789abcdef")}, Hash{Key: []byte("fedcba9876543210")}
	p := h1.Addr(a)
	if p != h1.Addr(a) {
		t.Fatal("not stable")
	}
	if p == h2.Addr(a) {
		t.Fatal("not keyed")
	}
	if !strings.HasPrefix(p.String(), "fd04:") || !strings.HasPrefix(h1.Addr(netip.MustParseAddr("2001:db8::1")).String(), "fd06:") {
		t.Fatalf("family marker missing: %s", p)
	}
	if p == h1.Addr(netip.MustParseAddr("203.0.113.78")) {
		t.Fatal("neighbours collide")
	}
}

func TestApplyMergesAndKeepsGeo(t *testing.T) {
	w := &window.Window{Remotes: []window.Remote{
		{Addr: netip.MustParseAddr("203.0.113.5"), Country: "JP", ASN: 64500, Counts: window.Counts{TxPackets: 10, TxBytes: 1000}},
		{Addr: netip.MustParseAddr("198.51.100.1"), Country: "NL", Counts: window.Counts{TxPackets: 5, TxBytes: 700}},
		{Addr: netip.MustParseAddr("203.0.113.9"), Country: "KR", Counts: window.Counts{RxPackets: 3, RxBytes: 300}},
	}}
	Apply(Truncate{Bits4: 24, Bits6: 48}, w)
	if len(w.Remotes) != 2 {
		t.Fatalf("%d rows, want 2: %+v", len(w.Remotes), w.Remotes)
	}
	r := w.Remotes[0]
	if r.Addr.String() != "203.0.113.0" || r.Country != "JP" || r.ASN != 64500 ||
		r.Counts != (window.Counts{TxPackets: 10, TxBytes: 1000, RxPackets: 3, RxBytes: 300}) {
		t.Errorf("merged row %+v", r)
	}
	if w.Remotes[1].Addr.String() != "198.51.100.0" {
		t.Errorf("second row %+v", w.Remotes[1])
	}
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	good := []struct{ mode, key string }{{"truncate", ""}, {"truncate:/16,/32", ""}, {"truncate:20,40", ""}, {"hash", key}}
	for _, c := range good {
		if _, err := Parse(c.mode, c.key); err != nil {
			t.Errorf("%q: %v", c.mode, err)
		}
	}
	bad := []struct{ mode, key, want string }{
		{"mask", "", "want truncate"},
		{"truncate:/33,/48", "", "truncate:/V4BITS"},
		{"truncate:/24", "", "truncate:/V4BITS"},
		{"hash", "", "needs a key file"},
		{"hash", short, "at least 16"},
		{"hash", filepath.Join(dir, "none"), "no such file"},
		{"truncate", key, "goes with mode hash only"},
	}
	for _, c := range bad {
		if _, err := Parse(c.mode, c.key); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %q: %v, want %q", c.mode, c.key, err, c.want)
		}
	}
	if tr, _ := Parse("truncate:/16,/32", ""); tr.(Truncate) != (Truncate{16, 32}) {
		t.Errorf("parsed %+v", tr)
	}
}

package geo

import (
	"net/netip"
	"testing"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
)

// TestBlockCacheExact: an answer remembered for a block must never stand
// for an address it does not hold for. Networks smaller than a block, next
// to others, and holes without data, are looked up in orders that would
// betray a wrong reuse.
func TestBlockCacheExact(t *testing.T) {
	countries := map[string]string{
		"198.51.100.0/25":   "DE", // halves of one /24: never remembered
		"198.51.100.128/25": "FR",
		"203.0.113.0/24":    "NL", // exactly a block
		"192.0.0.0/16":      "US", // bigger than a block ...
		"192.0.2.64/26":     "JP", // ... with a smaller network inside
		"2001:db8::/32":     "SE", // bigger than a /48 ...
		"2001:db8:1::/56":   "CH", // ... with a /56 inside one /48
		"2001:db8:2::/48":   "GB", // exactly a block
	}
	d := open(t, write(t, "c.mmdb", func(p string) error { return mmdbtest.Country(p, countries) }))
	cases := []struct{ addr, want string }{
		{"198.51.100.1", "DE"}, {"198.51.100.200", "FR"}, {"198.51.100.2", "DE"},
		{"203.0.113.1", "NL"}, {"203.0.113.254", "NL"},
		{"192.0.1.1", "US"}, {"192.0.2.1", "US"}, {"192.0.2.65", "JP"}, {"192.0.2.1", "US"}, {"192.0.2.127", "JP"},
		{"10.1.1.1", ""}, {"10.1.1.2", ""}, // no data: remembered as unknown
		{"2001:db8:5::1", "SE"}, {"2001:db8:5:ffff::1", "SE"},
		{"2001:db8:1:100::1", "SE"}, {"2001:db8:1::1", "CH"}, {"2001:db8:1:200::1", "SE"}, {"2001:db8:1:ff::1", "CH"},
		{"2001:db8:2::1", "GB"}, {"2001:db8:2:ffff::2", "GB"},
		{"2001:db9::1", ""}, {"2001:db9::2", ""},
	}
	for pass := range 2 { // the second pass answers from the cache where it may
		for _, c := range cases {
			if got := d.Lookup(netip.MustParseAddr(c.addr)).Country; got != c.want {
				t.Errorf("pass %d: %s: country %q, want %q", pass, c.addr, got, c.want)
			}
		}
	}
	// Blocks remembered: the /24 and /48 that one network covers whole,
	// and the holes; never the blocks split by smaller networks.
	f := &d.files[0]
	for _, c := range []struct {
		addr string
		kept bool
	}{
		{"203.0.113.9", true}, {"192.0.1.9", true}, {"10.1.1.9", true}, {"2001:db8:5::9", true}, {"2001:db8:2::9", true},
		{"198.51.100.9", false}, {"192.0.2.9", false}, {"2001:db8:1::9", false},
	} {
		key, _ := blockKey(netip.MustParseAddr(c.addr))
		b := f.blocks.slot(key).Load()
		if kept := b != nil && b.key == key; kept != c.kept {
			t.Errorf("%s: block remembered %v, want %v", c.addr, kept, c.kept)
		}
	}
}

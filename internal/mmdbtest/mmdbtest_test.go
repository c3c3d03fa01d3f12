package mmdbtest

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
)

func TestWritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.mmdb")
	if err := Country(p, map[string]string{"203.0.113.0/24": "JP", "203.0.113.0/25": "KR", "2001:db8::/32": "FR"}); err != nil {
		t.Fatal(err)
	}
	r, err := maxminddb.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m := r.Metadata; m.DatabaseType != TypeCountry || m.IPVersion != 6 || int64(m.BuildEpoch) != BuildEpoch || m.RecordSize != 28 {
		t.Errorf("metadata %+v", m)
	}
	for addr, want := range map[string]string{
		"203.0.113.1":        "KR", // the narrower prefix wins
		"203.0.113.200":      "JP",
		"::ffff:203.0.113.1": "KR", // MaxMind-style IPv4 alias
		"2001:db8::1":        "FR",
	} {
		var got string
		if err := r.Lookup(netip.MustParseAddr(addr)).DecodePath(&got, "country", "iso_code"); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", addr, got, err, want)
		}
	}
}

func TestBadNetwork(t *testing.T) {
	err := Flat(filepath.Join(t.TempDir(), "f.mmdb"), map[string]string{"203.0.113.0": "JP"})
	if err == nil || !strings.HasPrefix(err.Error(), "mmdbtest: ") {
		t.Errorf("err = %v", err)
	}
}

package geo

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
)

// Hostile strings in real .mmdb files come out of Lookup and Files clean:
// a country is two letters A-Z or unknown, names and the database type are
// printable UTF-8 of bounded length.
func TestHostileStrings(t *testing.T) {
	long := strings.Repeat("ä", 100) // 200 bytes, cut at a rune boundary
	for _, tc := range []struct {
		name          string
		cc, org       string
		wantCC, wantO string
	}{
		{"forged record-log line", "NL\n2026-11-22T13:20:00Z  tx 1 1  ZZ 192.0.2.1", "Org", "", "Org"},
		{"option-like country", "--output=/tmp/x", "Org", "", "Org"},
		{"two dashes", "--", "Org", "", "Org"},
		{"lower case", "nl", "Org", "NL", "Org"},
		{"non-ASCII letters", "ÄÖ", "Org", "", "Org"},
		{"ANSI escapes", "\x1b[31m", "Evil\x1b[31m Red\x1b]0;title\x07", "", "Evil\uFFFD[31m Red\uFFFD]0;title\uFFFD"},
		{"invalid UTF-8", "DE", "Bad \xc3\x28 Org \xff", "DE", "Bad \uFFFD( Org \uFFFD"},
		{"newline and tab", "DE", "Line one\nline\ttwo\r\n", "DE", "Line one line two"},
		{"bidi override", "DE", "abc\u202Edef", "DE", "abc\uFFFDdef"},
		{"too long", "DE", long, "DE", strings.Repeat("ä", MaxNameLen/2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, "ipinfo.mmdb", func(p string) error {
				return mmdbtest.IPinfo(p, map[string]mmdbtest.Entry{"198.51.100.0/24": {Country: tc.cc, ASN: 64500, ASOrg: tc.org}})
			})
			got := open(t, p).Lookup(netip.MustParseAddr("198.51.100.7"))
			if got.Country != tc.wantCC || got.ASOrg != tc.wantO || got.ASN != 64500 {
				t.Errorf("Lookup = %q %d %q, want country %q org %q", got.Country, got.ASN, got.ASOrg, tc.wantCC, tc.wantO)
			}
		})
	}
}

// The MaxMind schema (country.iso_code) is cleaned the same way, and so is
// the metadata: a database type that is not UTF-8 or carries escapes.
func TestHostileMetadata(t *testing.T) {
	p := write(t, "asn.mmdb", func(p string) error {
		return mmdbtest.Write(p, "GeoLite2-\xff\xfeASN\x1b[2J", map[string]mmdbtype.DataType{
			"198.51.100.0/24": mmdbtype.Map{
				"autonomous_system_number":       mmdbtype.Uint32(64500),
				"autonomous_system_organization": mmdbtype.String("Org\n2026-11-22  tx"),
			},
		})
	})
	c := write(t, "country.mmdb", func(p string) error {
		return mmdbtest.Country(p, map[string]string{"198.51.100.0/24": "NL\n2026-11-22T13:20:00Z  tx 1 1"})
	})
	d := open(t, c, p)
	check(t, d, "198.51.100.1", Info{ASN: 64500, ASOrg: "Org 2026-11-22  tx"})
	fs := d.Files()
	if fs[1].Type != "GeoLite2-\uFFFD\uFFFDASN\uFFFD[2J" || !utf8.ValidString(fs[1].Type) {
		t.Errorf("type %q", fs[1].Type)
	}
	if !fs[1].ASN {
		t.Errorf("%+v: offers no AS numbers", fs[1])
	}
}

func TestCleanNameKeepsCleanStrings(t *testing.T) {
	for _, s := range []string{"", "Example Transit", "Deutsche Telekom AG", "日本電信電話", "O'Brien & Söhne, S.A."} {
		if got := CleanName(s); got != s {
			t.Errorf("CleanName(%q) = %q", s, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { CleanName("Example Transit") }); n != 0 {
		t.Errorf("CleanName of a clean name allocates %v times", n)
	}
}

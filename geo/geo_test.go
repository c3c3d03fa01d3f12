package geo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
)

// Documentation ranges only: tests never name a real network.
var countries = map[string]string{
	"198.51.100.0/24":  "DE",
	"203.0.113.0/24":   "JP",
	"203.0.113.128/25": "KR", // more specific than the /24
	"2001:db8::/48":    "FR",
	"2001:db8:1::/48":  "BR",
}

var asns = map[string]mmdbtest.Entry{
	"198.51.100.0/24": {ASN: 64500, ASOrg: "Example Transit"},
	"203.0.113.0/24":  {ASN: 64501, ASOrg: "Example Hosting"},
	"2001:db8::/32":   {ASN: 4200000001, ASOrg: "Example v6"},
}

func write(t testing.TB, name string, f func(string) error) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := f(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func countryFile(t testing.TB) string {
	return write(t, "GeoLite2-Country.mmdb", func(p string) error { return mmdbtest.Country(p, countries) })
}

func asnFile(t testing.TB) string {
	return write(t, "GeoLite2-ASN.mmdb", func(p string) error { return mmdbtest.ASN(p, asns) })
}

func open(t testing.TB, paths ...string) *DB {
	t.Helper()
	d, err := Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func check(t *testing.T, d *DB, addr string, want Info) {
	t.Helper()
	if got := d.Lookup(netip.MustParseAddr(addr)); got != want {
		t.Errorf("Lookup(%s) = %+v, want %+v", addr, got, want)
	}
}

func TestCountrySchemas(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(string, map[string]string) error
		typ   string
	}{
		{"Country", mmdbtest.Country, "GeoLite2-Country"},
		{"City", mmdbtest.City, "GeoLite2-City"},
		{"Flat", mmdbtest.Flat, "DBIP-Country-Lite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, tc.name+".mmdb", func(p string) error { return tc.write(p, countries) })
			d := open(t, p)
			if !d.HasCountry() || d.HasASN() {
				t.Errorf("HasCountry=%v HasASN=%v, want true false", d.HasCountry(), d.HasASN())
			}
			fi := d.Files()
			if len(fi) != 1 || fi[0] != (FileInfo{Path: p, Type: tc.typ, Build: mmdbtest.Build, Country: true}) {
				t.Errorf("Files() = %+v", fi)
			}
			if !d.CountryBuild().Equal(mmdbtest.Build) || d.CountryBuild().Location() != mmdbtest.Build.Location() {
				t.Errorf("CountryBuild() = %v, want %v", d.CountryBuild(), mmdbtest.Build)
			}
			check(t, d, "198.51.100.7", Info{Country: "DE"})
			check(t, d, "203.0.113.5", Info{Country: "JP"})
			check(t, d, "203.0.113.200", Info{Country: "KR"})
			check(t, d, "::ffff:203.0.113.5", Info{Country: "JP"})
			check(t, d, "::ffff:198.51.100.255", Info{Country: "DE"})
			check(t, d, "2001:db8::1", Info{Country: "FR"})
			check(t, d, "2001:db8:1:ffff::1", Info{Country: "BR"})
			check(t, d, "2001:db8:2::1", Info{})
			check(t, d, "192.0.2.1", Info{})
			check(t, d, "10.1.2.3", Info{})
			check(t, d, "::1", Info{})
		})
	}
}

func TestASN(t *testing.T) {
	d := open(t, asnFile(t))
	if d.HasCountry() || !d.HasASN() {
		t.Errorf("HasCountry=%v HasASN=%v, want false true", d.HasCountry(), d.HasASN())
	}
	if !d.CountryBuild().IsZero() {
		t.Errorf("CountryBuild() = %v without a country file", d.CountryBuild())
	}
	check(t, d, "198.51.100.7", Info{ASN: 64500, ASOrg: "Example Transit"})
	check(t, d, "::ffff:203.0.113.5", Info{ASN: 64501, ASOrg: "Example Hosting"})
	check(t, d, "2001:db8:ffff::1", Info{ASN: 4200000001, ASOrg: "Example v6"})
	check(t, d, "192.0.2.1", Info{})
}

func TestMerged(t *testing.T) {
	cp, ap := countryFile(t), asnFile(t)
	// Either order: each part comes from the file that offers it.
	for _, paths := range [][]string{{cp, ap}, {ap, cp}} {
		d := open(t, paths...)
		if !d.HasCountry() || !d.HasASN() {
			t.Fatalf("HasCountry=%v HasASN=%v", d.HasCountry(), d.HasASN())
		}
		check(t, d, "203.0.113.5", Info{Country: "JP", ASN: 64501, ASOrg: "Example Hosting"})
		check(t, d, "::ffff:203.0.113.5", Info{Country: "JP", ASN: 64501, ASOrg: "Example Hosting"})
		check(t, d, "2001:db8:1::9", Info{Country: "BR", ASN: 4200000001, ASOrg: "Example v6"})
		check(t, d, "2001:db8:5::9", Info{ASN: 4200000001, ASOrg: "Example v6"}) // country unknown
		check(t, d, "192.0.2.1", Info{})
	}
}

func TestCountryFallback(t *testing.T) {
	// A second country file answers what the first does not know.
	first := countryFile(t)
	second := write(t, "dbip.mmdb", func(p string) error {
		return mmdbtest.Flat(p, map[string]string{"192.0.2.0/24": "NL", "198.51.100.0/24": "US"})
	})
	d := open(t, first, second)
	check(t, d, "192.0.2.1", Info{Country: "NL"})
	check(t, d, "198.51.100.1", Info{Country: "DE"}) // first file wins
}

func TestRegisteredCountryFallback(t *testing.T) {
	// Anycast-like record: no country, only registered_country.
	p := write(t, "c.mmdb", func(p string) error {
		return mmdbtest.Write(p, mmdbtest.TypeCountry, map[string]mmdbtype.DataType{
			"192.0.2.0/24": mmdbtype.Map{"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("SE")}},
		})
	})
	check(t, open(t, p), "192.0.2.9", Info{Country: "SE"})
}

func TestIPinfoLite(t *testing.T) {
	p := write(t, "ipinfo_lite.mmdb", func(p string) error {
		return mmdbtest.IPinfo(p, map[string]mmdbtest.Entry{
			"203.0.113.0/24": {Country: "AU", ASN: 64502, ASOrg: "Example Lite"},
			"2001:db8::/32":  {Country: "CA"},
		})
	})
	d := open(t, p)
	if fi := d.Files()[0]; !fi.Country || !fi.ASN {
		t.Errorf("FileInfo = %+v, want both", fi)
	}
	check(t, d, "203.0.113.1", Info{Country: "AU", ASN: 64502, ASOrg: "Example Lite"})
	check(t, d, "2001:db8::1", Info{Country: "CA"})
}

func TestUnknownTypeProbed(t *testing.T) {
	// Neither the type name nor the file name say what this offers: the
	// probe finds both from the data.
	p := write(t, "custom.mmdb", func(p string) error {
		return mmdbtest.Write(p, "Acme-Internal-Geo", map[string]mmdbtype.DataType{
			"198.51.100.0/24": mmdbtype.Map{
				"country_code":             mmdbtype.String("IT"),
				"autonomous_system_number": mmdbtype.Uint32(64510),
			},
		})
	})
	d := open(t, p)
	if !d.HasCountry() || !d.HasASN() {
		t.Errorf("HasCountry=%v HasASN=%v", d.HasCountry(), d.HasASN())
	}
	check(t, d, "198.51.100.1", Info{Country: "IT", ASN: 64510})

	// A name that claims ASN is overruled by data that has none.
	p = write(t, "asn-country.mmdb", func(p string) error {
		return mmdbtest.Write(p, "geo-whois-asn-country", map[string]mmdbtype.DataType{
			"198.51.100.0/24": mmdbtype.Map{"country_code": mmdbtype.String("IT")},
		})
	})
	if fi := open(t, p).Files()[0]; !fi.Country || fi.ASN {
		t.Errorf("FileInfo = %+v, want country only", fi)
	}

	// An empty database is judged by its type name.
	p = write(t, "empty.mmdb", func(p string) error { return mmdbtest.ASN(p, nil) })
	if fi := open(t, p).Files()[0]; fi.Country || !fi.ASN {
		t.Errorf("FileInfo = %+v, want ASN only", fi)
	}
}

func TestOddValues(t *testing.T) {
	// Values of unexpected types or placeholders read as unknown without
	// losing the rest of the record.
	p := write(t, "odd.mmdb", func(p string) error {
		return mmdbtest.Write(p, "DBIP-ASN-Lite", map[string]mmdbtype.DataType{
			"198.51.100.0/24": mmdbtype.Map{
				"country_code":                   mmdbtype.String("ZZ"),
				"asn":                            mmdbtype.Map{"x": mmdbtype.Bool(true)},
				"as_name":                        mmdbtype.String("ignored"),
				"autonomous_system_number":       mmdbtype.Uint64(64520),
				"autonomous_system_organization": mmdbtype.String("Odd"),
			},
			"203.0.113.0/24": mmdbtype.Map{"asn": mmdbtype.String("AS-bogus"), "country_code": mmdbtype.String("DE")},
			"192.0.2.0/24":   mmdbtype.Map{"asn": mmdbtype.Uint32(64521), "as_name": mmdbtype.String("Numeric")},
		})
	})
	d := open(t, p)
	check(t, d, "198.51.100.1", Info{ASN: 64520, ASOrg: "Odd"})
	check(t, d, "203.0.113.1", Info{Country: "DE"})
	check(t, d, "192.0.2.1", Info{ASN: 64521, ASOrg: "Numeric"})
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	good := countryFile(t)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "notes.txt")
	halved := filepath.Join(dir, "halved.mmdb")
	clipped := filepath.Join(dir, "clipped.mmdb")
	other := filepath.Join(dir, "anon.mmdb")
	// The legacy format's trailer, as GeoIP.dat in Debian's geoip-database
	// ends: the info string, three 0xFF and the edition (1, Country).
	legacy := filepath.Join(dir, "GeoIP.bin")
	datText := filepath.Join(dir, "GeoIP.dat")
	for p, b := range map[string][]byte{
		legacy:  append(bytes.Repeat([]byte{0x12, 0x34, 0x00}, 1000), "\x00\x00\x00GEO-106FREE 20260704 Build\xff\xff\xff\x01"...),
		datText: []byte("this is not a database\n"),
		text:    []byte("this is not a database\n"),
		halved:  data[:len(data)/2],
		clipped: data[:len(data)-20],
	} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := mmdbtest.Write(other, "GeoIP2-Anonymous-IP", map[string]mmdbtype.DataType{
		"198.51.100.0/24": mmdbtype.Map{"is_anonymous": mmdbtype.Bool(true), "is_tor_exit_node": mmdbtype.Bool(true)},
	}); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")
	for _, tc := range []struct {
		path, want string
	}{
		{missing, "no such file or directory"},
		{dir, "not a regular file"},
		{text, "not a MaxMind DB file (no metadata section)"},
		{legacy, "legacy GeoIP .dat format (GeoIP Legacy, as in Debian's geoip-database), which is not supported: give a MaxMind DB (.mmdb) file"},
		{datText, "legacy GeoIP format, which is not supported: give a .mmdb file"},
		{halved, "not a MaxMind DB file"},
		{clipped, "not a MaxMind DB file (invalid metadata"},
		{other, `database type "GeoIP2-Anonymous-IP" offers neither countries nor AS numbers`},
	} {
		// The bad file comes second: one bad file fails the whole Open.
		d, err := Open([]string{good, tc.path})
		if err == nil {
			t.Errorf("Open(%s) = %v, want error", tc.path, d)
			continue
		}
		t.Logf("%v", err)
		if !strings.HasPrefix(err.Error(), "geoip "+tc.path+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) error %q, want it to name the path and say %q", tc.path, err, tc.want)
		}
		if strings.Count(err.Error(), tc.path) != 1 {
			t.Errorf("error %q repeats the path", err)
		}
	}
	if _, err := Open([]string{missing}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error %v is not fs.ErrNotExist", err)
	}
	if _, err := Open(nil); err == nil {
		t.Error("Open(nil) succeeded")
	}
}

func TestReplacedInPlace(t *testing.T) {
	p := countryFile(t)
	d := open(t, p)
	// Rewrite the same inode in place, first shorter, then with another
	// database: a mmap'd reader would see garbage or die with SIGBUS.
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(t, d, "203.0.113.5", Info{Country: "JP"})
	if err := mmdbtest.Flat(p, map[string]string{"203.0.113.0/24": "US"}); err != nil {
		t.Fatal(err)
	}
	check(t, d, "203.0.113.5", Info{Country: "JP"})
	check(t, d, "2001:db8::1", Info{Country: "FR"})
	// A new Open sees the new data.
	check(t, open(t, p), "203.0.113.5", Info{Country: "US"})
}

func TestIPv4OnlyDatabase(t *testing.T) {
	// An ip_version 4 database has no ::ffff:0:0/96 alias; without Unmap a
	// mapped address would be an error there, not an answer.
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "DBIP-Country-Lite", IPVersion: 4, RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR("203.0.113.0/24")
	if err := tree.Insert(n, mmdbtype.Map{"country_code": mmdbtype.String("NZ")}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "v4.mmdb")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := open(t, p)
	check(t, d, "203.0.113.5", Info{Country: "NZ"})
	check(t, d, "::ffff:203.0.113.5", Info{Country: "NZ"})
	check(t, d, "2001:db8::1", Info{})
}

func TestConcurrent(t *testing.T) {
	d := open(t, countryFile(t), asnFile(t))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if got := d.Lookup(netip.MustParseAddr("203.0.113.5")); got.Country != "JP" || got.ASN != 64501 {
					t.Errorf("Lookup = %+v", got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNilAndInvalid(t *testing.T) {
	var d *DB
	if d.Lookup(netip.MustParseAddr("203.0.113.5")) != (Info{}) || d.HasCountry() || d.HasASN() ||
		d.Files() != nil || !d.CountryBuild().IsZero() {
		t.Error("nil DB answered something")
	}
	if got := open(t, countryFile(t)).Lookup(netip.Addr{}); got != (Info{}) {
		t.Errorf("Lookup(invalid) = %+v", got)
	}
}

func TestFindPaths(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	touch := func(p string) string {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got := findPaths([]string{a, b}); got != nil {
		t.Errorf("empty dirs: %v", got)
	}
	city := touch(filepath.Join(a, "GeoLite2-City.mmdb"))
	touch(filepath.Join(b, "GeoLite2-Country.mmdb"))
	touch(filepath.Join(b, "dbip-asn-lite.mmdb"))
	touch(filepath.Join(b, "GeoIP2-ISP.mmdb"))
	if err := os.Mkdir(filepath.Join(a, "GeoLite2-ASN.mmdb"), 0o755); err != nil { // not a file
		t.Fatal(err)
	}
	got := findPaths([]string{a, b, filepath.Join(a, "nope")})
	want := []string{city, filepath.Join(b, "GeoIP2-ISP.mmdb")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findPaths = %v, want %v", got, want)
	}
	country := touch(filepath.Join(a, "GeoLite2-Country.mmdb"))
	if got := findPaths([]string{a, b}); len(got) != 2 || got[0] != country {
		t.Errorf("findPaths = %v, want %s first", got, country)
	}
	_ = DefaultPaths() // must not fail on a machine without GeoIP data
}

// manyASNs writes an ASN database with n distinct records, one per
// 2001:db8:x::/48, more than the record cache holds.
func manyASNs(t testing.TB, n int) (string, []netip.Addr) {
	entries := make(map[string]mmdbtest.Entry, n)
	addrs := make([]netip.Addr, n)
	for i := range n {
		entries[fmt.Sprintf("2001:db8:%x::/48", i)] = mmdbtest.Entry{ASN: uint32(64512 + i), ASOrg: fmt.Sprintf("AS %d", i)}
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", i))
	}
	return write(t, "many.mmdb", func(p string) error { return mmdbtest.ASN(p, entries) }), addrs
}

func TestManyRecords(t *testing.T) {
	// More distinct records than cache slots: collisions must never return
	// another record's answer.
	p, addrs := manyASNs(t, 3*len(recordCache{}))
	d := open(t, p)
	for pass := range 2 {
		for i, a := range addrs {
			want := Info{ASN: uint32(64512 + i), ASOrg: fmt.Sprintf("AS %d", i)}
			if got := d.Lookup(a); got != want {
				t.Fatalf("pass %d: Lookup(%s) = %+v, want %+v", pass, a, got, want)
			}
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, bc := range []struct {
		name  string
		paths func(testing.TB) []string
	}{
		{"Country", func(t testing.TB) []string { return []string{countryFile(t)} }},
		{"City", func(t testing.TB) []string {
			return []string{write(t, "city.mmdb", func(p string) error { return mmdbtest.City(p, countries) })}
		}},
		{"Country+ASN", func(t testing.TB) []string { return []string{countryFile(t), asnFile(t)} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := open(b, bc.paths(b)...)
			addrs := []netip.Addr{
				netip.MustParseAddr("203.0.113.5"),
				netip.MustParseAddr("198.51.100.9"),
				netip.MustParseAddr("2001:db8:1::1"),
				netip.MustParseAddr("192.0.2.1"),
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d.Lookup(addrs[i&3])
				i++
			}
		})
	}
	// Every lookup a different record, most not in the cache: the cost of
	// a decode, as with a City database and scattered remotes.
	b.Run("DistinctRecords", func(b *testing.B) {
		p, addrs := manyASNs(b, 1<<16)
		d := open(b, p)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.Lookup(addrs[i&(1<<16-1)])
			i += 7919 // prime stride: no cache-friendly order
		}
	})
}

func TestOpenRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: costs no disk, but would cost memory if it were read.
	if err := f.Truncate(maxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open([]string{path}); err == nil || !strings.Contains(err.Error(), "refusing to read it") {
		t.Fatalf("got %v", err)
	}
}

// TestAnswerCacheExact: answers from the cache are the files' answers,
// with far more addresses than slots (collisions) asked in random order,
// again and again.
func TestAnswerCacheExact(t *testing.T) {
	d := open(t, countryFile(t), asnFile(t))
	p, many := manyASNs(t, 1<<12)
	d2 := open(t, countryFile(t), p)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 400_000 {
		var a netip.Addr
		switch i % 3 {
		case 0:
			a = netip.AddrFrom4([4]byte{[]byte{192, 198, 203}[rng.IntN(3)], []byte{0, 51, 0}[rng.IntN(3)], []byte{2, 100, 113}[rng.IntN(3)], byte(rng.IntN(256))})
		case 1:
			a = many[rng.IntN(len(many))]
		default:
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			binary.BigEndian.PutUint32(b[4:], uint32(rng.IntN(1<<20)))
			b[15] = byte(rng.IntN(4))
			a = netip.AddrFrom16(b)
		}
		for _, db := range []*DB{d, d2} {
			if got, want := db.Lookup(a), db.resolve(a); got != want {
				t.Fatalf("Lookup(%s) = %+v, want %+v", a, got, want)
			}
		}
	}
}

// Package mmdbtest writes small MaxMind DB (.mmdb) files for tests.
//
// It exists because no real GeoIP data (GeoLite2, DB-IP, IPinfo, ...) may be
// shipped in this repository: their licences require attribution and keeping
// copies current. Tests therefore build their own databases, in the same
// schemas the real products use, with github.com/maxmind/mmdbwriter.
//
// Every database is an IPv6 tree with IPv4 networks stored in the ::/96
// subtree (and aliased from ::ffff:0:0/96 and 2002::/16) exactly as MaxMind
// builds its files, so lookups of IPv4, IPv6 and IPv4-mapped addresses
// behave as they do against production data. Reserved networks are allowed
// so the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, 2001:db8::/32) can carry data. Keys of the entry maps are
// CIDR prefixes such as "203.0.113.0/24" or "2001:db8:1::/48".
package mmdbtest

import (
	"fmt"
	"net"
	"os"
	"sort"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// BuildEpoch is the build_epoch written into every database, so tests can
// compare the build time read back with a fixed value instead of "now".
const BuildEpoch int64 = 1700000000 // 2023-11-14T22:13:20Z

// Build is BuildEpoch as a UTC time.
var Build = time.Unix(BuildEpoch, 0).UTC()

// Database types written by the helpers, as the real products name them.
const (
	TypeCountry = "GeoLite2-Country"
	TypeCity    = "GeoLite2-City"
	TypeASN     = "GeoLite2-ASN"
	TypeFlat    = "DBIP-Country-Lite"
	TypeIPinfo  = "ipinfo_lite.mmdb"
)

// Entry is the data for one network of an ASN (or IPinfo lite) database.
type Entry struct {
	Country string
	ASN     uint32
	ASOrg   string
}

// Country writes a MaxMind-style Country database (database_type
// "GeoLite2-Country"): each network gets country.iso_code and
// registered_country.iso_code set to the given code.
func Country(path string, entries map[string]string) error {
	return CountryBuilt(path, entries, Build)
}

// CountryBuilt is Country with another build time, for tests of what a
// database's age does.
func CountryBuilt(path string, entries map[string]string, build time.Time) error {
	return write(path, TypeCountry, build.Unix(), mapValues(entries, func(cc string) mmdbtype.DataType {
		return mmdbtype.Map{
			"continent":          mmdbtype.Map{"code": mmdbtype.String("EU")},
			"country":            isoCode(cc),
			"registered_country": isoCode(cc),
		}
	}))
}

// City writes a "GeoLite2-City" database: country.iso_code,
// registered_country.iso_code and a city name, so decoding has to skip the
// larger nested maps real City records carry.
func City(path string, entries map[string]string) error {
	return Write(path, TypeCity, mapValues(entries, func(cc string) mmdbtype.DataType {
		return mmdbtype.Map{
			"city": mmdbtype.Map{
				"geoname_id": mmdbtype.Uint32(2950159),
				"names": mmdbtype.Map{
					"de": mmdbtype.String("Teststadt"),
					"en": mmdbtype.String("Test City"),
				},
			},
			"country":            isoCode(cc),
			"location":           mmdbtype.Map{"latitude": mmdbtype.Float64(52.5), "longitude": mmdbtype.Float64(13.4)},
			"registered_country": isoCode(cc),
		}
	}))
}

// Flat writes a DB-IP lite / ip-location-db style database
// ("DBIP-Country-Lite") whose records carry a top-level country_code.
func Flat(path string, entries map[string]string) error {
	return Write(path, TypeFlat, mapValues(entries, func(cc string) mmdbtype.DataType {
		return mmdbtype.Map{"country_code": mmdbtype.String(cc)}
	}))
}

// ASN writes a "GeoLite2-ASN" database with autonomous_system_number and
// autonomous_system_organization. Entry.Country is ignored.
func ASN(path string, entries map[string]Entry) error {
	return Write(path, TypeASN, mapValues(entries, func(e Entry) mmdbtype.DataType {
		return mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(e.ASN),
			"autonomous_system_organization": mmdbtype.String(e.ASOrg),
		}
	}))
}

// IPinfo writes an IPinfo lite style database: one file answering both
// country_code and asn, the latter as a string such as "AS64500".
func IPinfo(path string, entries map[string]Entry) error {
	return Write(path, TypeIPinfo, mapValues(entries, func(e Entry) mmdbtype.DataType {
		m := mmdbtype.Map{
			"country_code":   mmdbtype.String(e.Country),
			"continent_code": mmdbtype.String("EU"),
		}
		if e.ASN != 0 {
			m["asn"] = mmdbtype.String(fmt.Sprintf("AS%d", e.ASN))
			m["as_name"] = mmdbtype.String(e.ASOrg)
		}
		return m
	}))
}

// Write writes a database of the given type with arbitrary records, for
// schemas the helpers above do not cover (e.g. a database of another kind).
func Write(path, databaseType string, records map[string]mmdbtype.DataType) error {
	return write(path, databaseType, BuildEpoch, records)
}

func write(path, databaseType string, buildEpoch int64, records map[string]mmdbtype.DataType) error {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		BuildEpoch:              buildEpoch,
		DatabaseType:            databaseType,
		Description:             map[string]string{"en": "dstwatch test database"},
		IncludeReservedNetworks: true,
		IPVersion:               6,
		RecordSize:              28,
	})
	if err != nil {
		return fmt.Errorf("mmdbtest: new tree: %w", err)
	}
	// Insert broader networks first, then narrower ones, so a more specific
	// prefix always overrides the network containing it whatever the map
	// iteration order.
	type item struct {
		key  string
		net  *net.IPNet
		bits int
	}
	items := make([]item, 0, len(records))
	for k := range records {
		_, network, err := net.ParseCIDR(k)
		if err != nil {
			return fmt.Errorf("mmdbtest: %w", err)
		}
		ones, _ := network.Mask.Size()
		if network.IP.To4() != nil {
			ones += 96
		}
		items = append(items, item{k, network, ones})
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].bits != items[j].bits {
			return items[i].bits < items[j].bits
		}
		return items[i].key < items[j].key
	})
	for _, it := range items {
		if err := tree.Insert(it.net, records[it.key]); err != nil {
			return fmt.Errorf("mmdbtest: insert %s: %w", it.key, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("mmdbtest: %w", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("mmdbtest: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mmdbtest: %w", err)
	}
	return nil
}

func isoCode(cc string) mmdbtype.Map {
	return mmdbtype.Map{"iso_code": mmdbtype.String(cc)}
}

func mapValues[V any](in map[string]V, f func(V) mmdbtype.DataType) map[string]mmdbtype.DataType {
	out := make(map[string]mmdbtype.DataType, len(in))
	for k, v := range in {
		out[k] = f(v)
	}
	return out
}

// Package geo owns the GeoIP side of dstwatch: it opens MaxMind-format
// (.mmdb) databases and resolves a remote address to a country and, when an
// ASN database is present, to an autonomous system.
//
// Lookups run once per unique remote per closed window, not per packet, but
// a busy window can hold hundreds of thousands of remotes, so the hot path
// decodes each record into a small fixed struct (about 200 ns) instead of a
// generic map.
//
// Databases are read fully into memory and never mmap'd: geoipupdate and
// distribution packages replace files, and a file rewritten in place under a
// live mapping kills the process with SIGBUS. Reloading a changed file is the
// caller's job: Open a new DB and swap it in (e.g. with an atomic.Pointer);
// a DB never changes after Open and is safe for concurrent use.
//
// Supported record schemas, decoded from every file:
//   - MaxMind Country / City: country.iso_code, falling back to
//     registered_country.iso_code when the record has no country (anycast
//     and some satellite networks);
//   - flat files (DB-IP lite, IPinfo lite, ip-location-db): country_code;
//   - ASN: autonomous_system_number and autonomous_system_organization
//     (GeoLite2-ASN, GeoIP2-ISP, DB-IP asn lite), or IPinfo lite's asn
//     ("AS15169") and as_name.
//
// Strings from a file are data, cleaned once when read (clean.go): a country
// is two letters A-Z or unknown; organisation names and the database type
// are printable UTF-8 of at most MaxNameLen bytes. Every caller (storage,
// record log, metrics, alerts, outputs) sees the same cleaned values.
package geo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// Info is what a lookup knows about one address. The zero value means
// nothing is known.
type Info struct {
	Country string // ISO 3166-1 alpha-2, "" when unknown
	ASN     uint32 // 0 when unknown
	ASOrg   string
}

// StaleAfter is the age past which a database is worth a warning: MaxMind
// rebuilds GeoLite2 twice a week and geoipupdate is meant to run weekly, so
// a file five weeks old means its updates have stopped, and networks move
// between countries and AS numbers all the time.
const StaleAfter = 35 * 24 * time.Hour

// Stale reports whether the file was built more than StaleAfter before now.
func (f FileInfo) Stale(now time.Time) bool { return now.Sub(f.Build) > StaleAfter }

// FileInfo describes one opened database file.
type FileInfo struct {
	Path    string
	Type    string    // metadata database_type, e.g. "GeoLite2-Country"
	Build   time.Time // metadata build epoch, UTC
	Country bool      // offers countries
	ASN     bool      // offers AS numbers
}

// DB is a set of opened databases answering together: countries come from
// the country-capable files, AS numbers from the ASN-capable files, each in
// the order the paths were given (the first file that answers wins). A DB is
// immutable after Open and safe for concurrent use. A nil *DB answers
// nothing, so callers without GeoIP data need no special case.
type DB struct {
	files   []file
	answers *answerCache
}

type file struct {
	info   FileInfo
	reader *maxminddb.Reader
	cache  *recordCache
}

// recordCache remembers decoded records by their offset in the data
// section. Databases store each distinct record once and point every
// network carrying it there: a Country database has a few hundred distinct
// records, an ASN database one per AS, so most lookups find their record
// here and skip decoding, which costs more than walking the tree. It is a
// fixed-size direct-mapped table of atomic pointers: lock-free for
// concurrent readers, bounded memory, and a collision merely costs a decode.
type recordCache [1 << 12]atomic.Pointer[cachedRecord]

type cachedRecord struct {
	offset uintptr
	info   Info
}

func (c *recordCache) slot(offset uintptr) *atomic.Pointer[cachedRecord] {
	// Fibonacci hashing spreads nearby offsets over the table.
	return &c[uint64(offset)*0x9E3779B97F4A7C15>>(64-12)]
}

// metadataMarker starts the metadata section at the end of every MaxMind DB
// file; its absence tells "not an mmdb at all" from "a damaged one".
var metadataMarker = []byte("\xAB\xCD\xEFMaxMind.com")

// Open reads every file fully into memory and works out what each offers.
// It fails, naming the path, when a file cannot be read, is not a MaxMind
// DB, or offers neither countries nor AS numbers; and when paths is empty.
func Open(paths []string) (*DB, error) {
	if len(paths) == 0 {
		return nil, errors.New("geoip: no database files given")
	}
	d := &DB{files: make([]file, 0, len(paths)), answers: new(answerCache)}
	for _, p := range paths {
		f, err := openFile(p)
		if err != nil {
			return nil, fmt.Errorf("geoip %s: %w", p, err)
		}
		d.files = append(d.files, f)
	}
	return d, nil
}

// maxFileSize bounds what is read into memory: the largest databases in
// use (City and ISP editions, IPinfo lite) are a few hundred MB.
const maxFileSize = 1 << 30

// errLegacy names the legacy GeoIP format (GeoIP.dat, GeoIPv6.dat,
// GeoIPASNum.dat: MaxMind's pre-2019 format, still in Debian's
// geoip-database package), which dstwatch does not read.
var errLegacy = errors.New("legacy GeoIP .dat format (GeoIP Legacy, as in Debian's geoip-database), which is not supported: give a MaxMind DB (.mmdb) file, e.g. GeoLite2-Country.mmdb from geoipupdate or dbip-country-lite")

// isLegacy recognises a legacy GeoIP database by its trailer: the legacy
// readers look for three 0xFF bytes within the last 20 bytes, followed by
// the edition byte (and for some editions a segment count). A file with
// the mmdb marker never gets here.
func isLegacy(buf []byte) bool {
	tail := buf[max(0, len(buf)-20):]
	i := bytes.LastIndex(tail, []byte{0xFF, 0xFF, 0xFF})
	return i >= 0 && i+3 < len(tail)
}

func openFile(path string) (file, error) {
	// Refuse anything but a regular file before reading it whole: a FIFO or
	// a device such as /dev/zero would block or never end.
	st, err := os.Stat(path)
	if err != nil {
		return file{}, pathErr(err)
	}
	if !st.Mode().IsRegular() {
		return file{}, errors.New("not a regular file")
	}
	if st.Size() > maxFileSize {
		return file{}, fmt.Errorf("%d bytes is more than any GeoIP database needs (at most %d); refusing to read it into memory", st.Size(), int64(maxFileSize))
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return file{}, pathErr(err)
	}
	if !bytes.Contains(buf, metadataMarker) {
		if isLegacy(buf) {
			return file{}, errLegacy
		}
		if strings.EqualFold(filepath.Ext(path), ".dat") {
			return file{}, errors.New("not a MaxMind DB file (no metadata section; .dat files are the legacy GeoIP format, which is not supported: give a .mmdb file)")
		}
		return file{}, errors.New("not a MaxMind DB file (no metadata section)")
	}
	// buf is ours alone and never modified, as OpenBytes requires.
	r, err := maxminddb.OpenBytes(buf)
	if err != nil {
		return file{}, fmt.Errorf("not a MaxMind DB file (invalid metadata: %w)", err)
	}
	f := file{
		info: FileInfo{
			Path:  path,
			Type:  CleanName(r.Metadata.DatabaseType),
			Build: time.Unix(int64(r.Metadata.BuildEpoch), 0).UTC(),
		},
		reader: r,
		cache:  new(recordCache),
	}
	var probeErr error
	f.info.Country, f.info.ASN, probeErr = offers(r)
	if !f.info.Country && !f.info.ASN {
		msg := fmt.Sprintf("database type %q offers neither countries nor AS numbers", f.info.Type)
		if probeErr != nil {
			return file{}, fmt.Errorf("%s (%w)", msg, probeErr)
		}
		return file{}, errors.New(msg)
	}
	return f, nil
}

// pathErr drops the operation and path from an *fs.PathError, since the
// caller already names the path; errors.Is still sees the cause.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// probeAddrs are well-known addresses that any real-world Country or ASN
// database answers.
var probeAddrs = []netip.Addr{
	netip.MustParseAddr("1.1.1.1"),
	netip.MustParseAddr("8.8.8.8"),
	netip.MustParseAddr("9.9.9.9"),
	netip.MustParseAddr("81.2.69.142"),
	netip.MustParseAddr("2001:4860:4860::8888"),
	netip.MustParseAddr("2606:4700:4700::1111"),
}

// probeNetworks bounds how many records from the start of the tree are
// examined; enough to see past a few sparse leading records, cheap even on
// the largest files.
const probeNetworks = 256

// offers decides what a file offers.
//
// The rule: decode the well-known probe addresses and the first
// probeNetworks records of the tree with the same decoder Lookup uses. The
// file offers countries if any of them yields a country, AS numbers if any
// yields an AS number. Only when no probed record yields either (an empty or
// tiny database) does the metadata database_type decide: a word "country" or
// "city" means countries, "asn" or "isp" means AS numbers, "ipinfo" means
// both. The data comes first because names are not reliable: ip-location-db's
// "asn-country" files carry only country_code, IPinfo's type names vary, and
// an unknown vendor's type name says nothing.
func offers(r *maxminddb.Reader) (country, asn bool, err error) {
	seen := func(res maxminddb.Result) {
		if !res.Found() {
			return
		}
		var rec record
		if e := res.Decode(&rec); e != nil {
			if err == nil {
				err = e
			}
			return
		}
		i := rec.info()
		country = country || i.Country != ""
		asn = asn || i.ASN != 0
	}
	for _, a := range probeAddrs {
		seen(r.Lookup(a))
	}
	n := 0
	for res := range r.Networks() {
		if res.Err() != nil {
			if err == nil {
				err = res.Err()
			}
			break
		}
		seen(res)
		if n++; n >= probeNetworks || (country && asn) {
			break
		}
	}
	if country || asn {
		return country, asn, nil
	}
	for _, w := range strings.FieldsFunc(strings.ToLower(r.Metadata.DatabaseType), func(c rune) bool {
		return !('a' <= c && c <= 'z' || '0' <= c && c <= '9')
	}) {
		switch w {
		case "country", "city":
			country = true
		case "asn", "isp":
			asn = true
		case "ipinfo":
			country, asn = true, true
		}
	}
	return country, asn, err
}

// record holds the fields of every supported schema. Fields absent from a
// record are skipped by the decoder at no allocation cost.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	CountryCode string   `maxminddb:"country_code"`
	ASNumber    asNumber `maxminddb:"autonomous_system_number"`
	ASOrg       string   `maxminddb:"autonomous_system_organization"`
	ASN         asNumber `maxminddb:"asn"`
	ASName      string   `maxminddb:"as_name"`
}

func (r *record) info() Info {
	i := Info{Country: r.Country.ISOCode, ASN: uint32(r.ASNumber), ASOrg: r.ASOrg}
	if i.Country == "" {
		i.Country = r.RegisteredCountry.ISOCode
	}
	if i.Country == "" {
		i.Country = r.CountryCode
	}
	// DB-IP and others mark unknown or reserved space with the
	// user-assigned "ZZ" or a dash; CleanCountry makes neither a country.
	if i.ASN == 0 && r.ASN != 0 {
		i.ASN, i.ASOrg = uint32(r.ASN), r.ASName
	}
	i.Country, i.ASOrg = CleanCountry(i.Country), CleanName(i.ASOrg) // clean.go
	return i
}

// asNumber decodes an AS number stored either as an unsigned integer or as
// a string "AS15169" (IPinfo lite). Anything else is skipped and reads as
// 0, so one odd field does not lose the rest of the record.
type asNumber uint32

func (n *asNumber) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	kind, err := c.Kind()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	switch kind {
	case mmdbdata.KindUint16, mmdbdata.KindUint32, mmdbdata.KindUint64:
		v, next, err := c.ReadUint()
		if err != nil {
			return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[asNumber](err)
		}
		if v <= 1<<32-1 {
			*n = asNumber(v)
		}
		return next, nil
	case mmdbdata.KindString:
		s, next, err := c.ReadString()
		if err != nil {
			return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[asNumber](err)
		}
		if len(s) > 2 && (s[:2] == "AS" || s[:2] == "as") {
			s = s[2:]
		}
		if v, err := strconv.ParseUint(s, 10, 32); err == nil {
			*n = asNumber(v)
		}
		return next, nil
	}
	return c.Skip()
}

// Lookup resolves a. IPv4-mapped IPv6 addresses are unmapped first, so
// ::ffff:203.0.113.5 answers like 203.0.113.5. The country comes from the
// first country-capable file that knows one, the AS number and organisation
// from the first ASN-capable file that knows one; each file is decoded at
// most once. Unknown parts stay zero; a damaged record reads as unknown.
func (d *DB) Lookup(a netip.Addr) Info {
	if d == nil || !a.IsValid() {
		return Info{}
	}
	a = a.Unmap()
	slot := d.answers.slot(a)
	if c := slot.Load(); c != nil && c.addr == a {
		return c.info
	}
	out := d.resolve(a)
	slot.Store(&cachedAnswer{addr: a, info: out})
	return out
}

// answerCache remembers Lookup's answers by address. The daemon looks up
// every stored remote of every window, and a host's remotes come back
// window after window (a month of 20 s windows replayed: the same 2,000
// remotes 880,000 times, and the tree walks were a fifth of the replay).
// The files never change under a DB (a reload opens a new one), so an
// answer stays right. Direct-mapped like recordCache: 65,536 slots,
// lock-free, bounded (at most a few MB), a collision costs a lookup.
type answerCache [1 << 16]atomic.Pointer[cachedAnswer]

type cachedAnswer struct {
	addr netip.Addr
	info Info
}

func (c *answerCache) slot(a netip.Addr) *atomic.Pointer[cachedAnswer] {
	b := a.As16()
	h := (binary.LittleEndian.Uint64(b[:8])*0x9E3779B97F4A7C15 ^ binary.LittleEndian.Uint64(b[8:])) * 0xBF58476D1CE4E5B9
	return &c[h>>(64-16)]
}

// resolve is Lookup without the cache.
func (d *DB) resolve(a netip.Addr) Info {
	var out Info
	for i := range d.files {
		f := &d.files[i]
		needCountry := f.info.Country && out.Country == ""
		needASN := f.info.ASN && out.ASN == 0
		if !needCountry && !needASN {
			continue
		}
		got, ok := f.lookup(a)
		if !ok {
			continue
		}
		if needCountry {
			out.Country = got.Country
		}
		if needASN && got.ASN != 0 {
			out.ASN, out.ASOrg = got.ASN, got.ASOrg
		}
	}
	return out
}

// lookup answers a from one file; ok is false when the address is not in
// the file or its record cannot be decoded.
func (f *file) lookup(a netip.Addr) (Info, bool) {
	res := f.reader.Lookup(a)
	if !res.Found() {
		return Info{}, false
	}
	off := res.Offset()
	slot := f.cache.slot(off)
	if c := slot.Load(); c != nil && c.offset == off {
		return c.info, true
	}
	var rec record
	if res.Decode(&rec) != nil {
		return Info{}, false
	}
	c := &cachedRecord{offset: off, info: rec.info()}
	slot.Store(c)
	return c.info, true
}

// Files describes the opened files in the order they were given.
func (d *DB) Files() []FileInfo {
	if d == nil {
		return nil
	}
	out := make([]FileInfo, len(d.files))
	for i := range d.files {
		out[i] = d.files[i].info
	}
	return out
}

// CountryBuild is the build time of the file that answers countries first,
// so callers can warn about stale data; zero if no file offers countries.
func (d *DB) CountryBuild() time.Time {
	if d == nil {
		return time.Time{}
	}
	for i := range d.files {
		if d.files[i].info.Country {
			return d.files[i].info.Build
		}
	}
	return time.Time{}
}

// HasCountry reports whether any file offers countries.
func (d *DB) HasCountry() bool {
	return d != nil && slices.ContainsFunc(d.files, func(f file) bool { return f.info.Country })
}

// HasASN reports whether any file offers AS numbers.
func (d *DB) HasASN() bool {
	return d != nil && slices.ContainsFunc(d.files, func(f file) bool { return f.info.ASN })
}

package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// valueVersion is the first byte of every window value. It changes only if
// the section framing itself changes; new data goes into new sections.
const valueVersion = 1

// Section ids. Never reuse or renumber one: old files keep them forever.
const (
	secHeader  = 1
	secStats   = 2
	secOther   = 3
	secRemotes = 4
	secRollup  = 5 // rollups only: what the tier cap folded
	secGroups  = 6 // rollups only: sums per country and ASN
)

// Address family bytes in the remotes section.
const (
	family4 = 4
	family6 = 6
)

// minRemoteLen is the smallest encoding of one remote (family, IPv4
// address, country, ASN and four counts of one byte each). The decoder
// checks a remote count against it before allocating.
const minRemoteLen = 1 + 4 + 2 + 1 + 4

// keyLen is the length of a window key: big-endian Unix seconds of Start.
const keyLen = 8

func windowKey(start time.Time) []byte {
	k := make([]byte, keyLen)
	binary.BigEndian.PutUint64(k, uint64(start.Unix()))
	return k
}

func keyTime(k []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(k)), 0).UTC()
}

// MarshalWindow encodes w as a window value (see the package documentation
// for the layout). w.Start goes into the key, not the value. A Country that
// is not two upper-case ASCII letters is stored as unknown.
func MarshalWindow(w *window.Window) []byte {
	// Most remotes take 15-30 bytes; sizing up front avoids regrowing a
	// multi-megabyte buffer several times for a large window.
	buf := make([]byte, 0, 128+len(w.Remotes)*28)
	buf = append(buf, valueVersion)

	var scratch [128]byte

	var geo uint64
	if !w.GeoBuild.IsZero() && w.GeoBuild.Unix() > 0 {
		geo = uint64(w.GeoBuild.Unix())
	}
	p := binary.AppendUvarint(scratch[:0], uint64(w.Length/time.Second))
	p = binary.AppendUvarint(p, geo)
	buf = appendSection(buf, secHeader, p)

	s := w.Stats
	p = scratch[:0]
	for _, v := range [...]uint64{s.Frames, s.Tallied, s.NonIP, s.Transit, s.Malformed,
		s.Excluded, s.Local, s.Drops, s.Late, s.Folded, s.Oversize, s.Spoofed, s.Overflow, uint64(s.Partial)} {
		p = binary.AppendUvarint(p, v)
	}
	buf = appendSection(buf, secStats, p)

	buf = appendSection(buf, secOther, appendCounts(scratch[:0], w.Other))

	// The remotes section is most of the value: compute its length first
	// so the payload is written once, in place, instead of built and copied.
	n := uint64(uvarintLen(uint64(len(w.Remotes))))
	for i := range w.Remotes {
		n += uint64(remoteLen(&w.Remotes[i]))
	}
	buf = binary.AppendUvarint(buf, secRemotes)
	buf = binary.AppendUvarint(buf, n)
	buf = binary.AppendUvarint(buf, uint64(len(w.Remotes)))
	for i := range w.Remotes {
		buf = appendRemote(buf, &w.Remotes[i])
	}
	if w.Capped != 0 {
		buf = appendSection(buf, secRollup, binary.AppendUvarint(scratch[:0], w.Capped))
	}
	if len(w.Groups) > 0 {
		p := binary.AppendUvarint(nil, uint64(len(w.Groups)))
		for i := range w.Groups {
			g := &w.Groups[i]
			p = appendCountry(p, g.Country)
			p = binary.AppendUvarint(p, uint64(g.ASN))
			p = binary.AppendUvarint(p, uint64(g.Remotes))
			p = appendCounts(p, g.Counts)
		}
		buf = appendSection(buf, secGroups, p)
	}
	return appendServices(buf, w.Services)
}

func appendCountry(b []byte, c string) []byte {
	if len(c) == 2 && isUpper(c[0]) && isUpper(c[1]) {
		return append(b, c[0], c[1])
	}
	return append(b, 0, 0)
}

func appendSection(buf []byte, id uint64, payload []byte) []byte {
	buf = binary.AppendUvarint(buf, id)
	buf = binary.AppendUvarint(buf, uint64(len(payload)))
	return append(buf, payload...)
}

func appendCounts(b []byte, c window.Counts) []byte {
	b = binary.AppendUvarint(b, c.TxPackets)
	b = binary.AppendUvarint(b, c.TxBytes)
	b = binary.AppendUvarint(b, c.RxPackets)
	return binary.AppendUvarint(b, c.RxBytes)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func remoteLen(r *window.Remote) int {
	n := 1 + 4 + 2
	if a := r.Addr.Unmap(); a.Is6() {
		n = 1 + 16 + 2
	}
	return n + uvarintLen(uint64(r.ASN)) + uvarintLen(r.TxPackets) + uvarintLen(r.TxBytes) +
		uvarintLen(r.RxPackets) + uvarintLen(r.RxBytes)
}

func appendRemote(b []byte, r *window.Remote) []byte {
	// Unmap so a v4-mapped address a caller forgot to normalise is stored
	// (and later merged) as the IPv4 address it is.
	a := r.Addr.Unmap()
	if a.Is6() {
		b = append(b, family6)
		a16 := a.As16()
		b = append(b, a16[:]...)
	} else {
		// An invalid Addr is stored as 0.0.0.0 rather than making
		// MarshalWindow fail; Put rejects it before it gets here.
		b = append(b, family4)
		a4 := [4]byte{}
		if a.Is4() {
			a4 = a.As4()
		}
		b = append(b, a4[:]...)
	}
	b = appendCountry(b, r.Country)
	b = binary.AppendUvarint(b, uint64(r.ASN))
	return appendCounts(b, r.Counts)
}

// errCorrupt is what every decoding failure wraps, so callers can tell a
// bad value from other failures without string matching.
var errCorrupt = errors.New("corrupt window value")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
}

// UnmarshalWindow decodes a window from its key and value. It never panics
// and allocates at most in proportion to len(val): counts are checked
// against the bytes left before anything is allocated. Sections with ids it
// does not know are skipped, so files from a later minor change still read.
// Remote.ASOrg is left empty: organisations live in their own bucket.
func UnmarshalWindow(key, val []byte) (*window.Window, error) {
	w := &window.Window{}
	if err := unmarshalInto(w, key, val); err != nil {
		return nil, err
	}
	return w, nil
}

// unmarshalInto is UnmarshalWindow into w, reusing the capacity of
// w.Remotes; every other field of w is overwritten.
func unmarshalInto(w *window.Window, key, val []byte) error {
	return unmarshalWith(w, key, val, decodeAll)
}

// What unmarshalWith decodes of the remotes and groups sections.
const (
	decodeAll      = iota
	decodeNoGroups // remotes only
	decodeGroups   // groups only, when there are groups
)

// unmarshalWith decodes into w as mode says.
func unmarshalWith(w *window.Window, key, val []byte, mode int) error {
	return unmarshalOrgs(w, key, val, mode, nil)
}

// unmarshalOrgs is unmarshalWith that also fills in the remotes'
// organisations from orgs (if not nil) as it decodes them: a second pass
// over a rollup's remotes, after they left the cache, cost more.
func unmarshalOrgs(w *window.Window, key, val []byte, mode int, orgs *orgFill) error {
	*w = window.Window{Remotes: w.Remotes[:0], Groups: w.Groups[:0]}
	if len(key) != keyLen {
		return corrupt("key is %d bytes, want %d", len(key), keyLen)
	}
	secs := binary.BigEndian.Uint64(key)
	if secs > 1<<62 {
		return corrupt("key %#x is not a plausible time", key)
	}
	if len(val) == 0 {
		return corrupt("empty value")
	}
	if val[0] != valueVersion {
		return corrupt("value encoding version %d, want %d", val[0], valueVersion)
	}
	w.Start = time.Unix(int64(secs), 0).UTC()
	var seen uint64 // bit per known section id, to refuse duplicates
	rest := val[1:]
	for len(rest) > 0 {
		id, n := binary.Uvarint(rest)
		if n <= 0 {
			return corrupt("bad section id")
		}
		rest = rest[n:]
		l, n := binary.Uvarint(rest)
		if n <= 0 {
			return corrupt("section %d: bad length", id)
		}
		rest = rest[n:]
		if l > uint64(len(rest)) {
			return corrupt("section %d: length %d past the end (%d bytes left)", id, l, len(rest))
		}
		payload := rest[:l]
		rest = rest[l:]
		if id >= secHeader && id <= secServices {
			if seen&(1<<id) != 0 {
				return corrupt("section %d twice", id)
			}
			seen |= 1 << id
		}
		var err error
		switch id {
		case secHeader:
			err = decodeHeader(w, payload)
		case secStats:
			err = decodeStats(&w.Stats, payload)
		case secOther:
			var ok bool
			w.Other, _, ok = decodeCounts(payload)
			if !ok {
				err = corrupt("other: bad count")
			}
			// Bytes after the four counts are fields a later version appended.
		case secRemotes:
			if mode == decodeGroups && hasSection(rest, secGroups) {
				continue
			}
			err = decodeRemotes(w, payload, orgs)
		case secGroups:
			if mode != decodeNoGroups {
				err = decodeGroupList(w, payload)
			}
		case secServices:
			if mode != decodeGroups {
				err = decodeServices(w, payload)
			}
		case secRollup:
			var n int
			if w.Capped, n = binary.Uvarint(payload); n <= 0 {
				err = corrupt("rollup: bad capped count")
			}
			// Bytes after the count are fields a later version appended.
		default:
			// A section added by a later version; it carries data this
			// version does not show, and the rest is still right.
		}
		if err != nil {
			return err
		}
	}
	if seen&(1<<secHeader) == 0 {
		return corrupt("no header section")
	}
	return nil
}

// hasSection reports whether the sections in rest include id.
func hasSection(rest []byte, id uint64) bool {
	for len(rest) > 0 {
		sid, n := binary.Uvarint(rest)
		if n <= 0 {
			return false
		}
		rest = rest[n:]
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return false
		}
		if sid == id {
			return true
		}
		rest = rest[n+int(l):]
	}
	return false
}

func decodeGroupList(w *window.Window, p []byte) error {
	count, n := binary.Uvarint(p)
	if n <= 0 {
		return corrupt("groups: bad count")
	}
	p = p[n:]
	if count > uint64(len(p)/(2+1+1+4)) {
		return corrupt("groups: %d groups cannot fit in %d bytes", count, len(p))
	}
	w.Groups = w.Groups[:0]
	for i := range count {
		var g window.Group
		if len(p) < 2 {
			return corrupt("group %d: truncated", i)
		}
		switch {
		case isUpper(p[0]) && isUpper(p[1]):
			g.Country = countries[int(p[0]-'A')*26+int(p[1]-'A')]
		case p[0] != 0 || p[1] != 0:
			return corrupt("group %d: country %q", i, p[:2])
		}
		p = p[2:]
		asn, n := uvarint(p)
		if n <= 0 || asn > 1<<32-1 {
			return corrupt("group %d: bad ASN", i)
		}
		g.ASN = uint32(asn)
		p = p[n:]
		rem, n := uvarint(p)
		if n <= 0 || rem > 1<<40 {
			return corrupt("group %d: bad remote count", i)
		}
		g.Remotes = int(rem)
		p = p[n:]
		var ok bool
		if g.Counts, p, ok = decodeCounts(p); !ok {
			return corrupt("group %d: bad count", i)
		}
		w.Groups = append(w.Groups, g)
	}
	if len(p) != 0 {
		return corrupt("groups: %d trailing bytes", len(p))
	}
	return nil
}

func decodeHeader(w *window.Window, p []byte) error {
	length, n := binary.Uvarint(p)
	if n <= 0 {
		return corrupt("header: bad length")
	}
	p = p[n:]
	// Longer than a time.Duration holds (292 years) would wrap negative.
	if length == 0 || length > uint64(math.MaxInt64/int64(time.Second)) {
		return corrupt("header: window length %d s", length)
	}
	w.Length = time.Duration(length) * time.Second
	geo, n := binary.Uvarint(p)
	if n <= 0 {
		return corrupt("header: bad geo build")
	}
	if geo > 1<<40 {
		return corrupt("header: geo build %d", geo)
	}
	if geo != 0 {
		w.GeoBuild = time.Unix(int64(geo), 0).UTC()
	}
	// Bytes after the known fields are fields a later version appended.
	return nil
}

func decodeStats(s *window.Stats, p []byte) error {
	var partial uint64
	defer func() { s.Partial = window.Partial(partial) }()
	fields := [...]*uint64{&s.Frames, &s.Tallied, &s.NonIP, &s.Transit, &s.Malformed,
		&s.Excluded, &s.Local, &s.Drops, &s.Late, &s.Folded, &s.Oversize, &s.Spoofed, &s.Overflow, &partial}
	for i, f := range fields {
		if len(p) == 0 {
			// A shorter section is from a version with fewer counters.
			return nil
		}
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return corrupt("stats: bad field %d", i)
		}
		if f == &partial && v > 0xff {
			return corrupt("stats: partial %#x", v)
		}
		*f = v
		p = p[n:]
	}
	return nil
}

func decodeCounts(p []byte) (c window.Counts, rest []byte, ok bool) {
	// Four varints as uvarint reads them, in one loop: the counts are most
	// of what a span decodes.
	var v [4]uint64
	for k := range v {
		if len(p) >= 8 {
			x := binary.LittleEndian.Uint64(p)
			if x&0x80 == 0 {
				v[k], p = x&0x7f, p[1:]
				continue
			}
			if stop := ^x & 0x8080808080808080; stop != 0 {
				var n int
				v[k], n = wordVarint(x, stop)
				p = p[n:]
				continue
			}
		}
		var n int
		if v[k], n = binary.Uvarint(p); n <= 0 {
			return c, nil, false
		}
		p = p[n:]
	}
	return window.Counts{TxPackets: v[0], TxBytes: v[1], RxPackets: v[2], RxBytes: v[3]}, p, true
}

// uvarint is binary.Uvarint, without its loop for a varint of up to 8
// bytes that has 8 bytes to read: a rollup's byte counts take 4 to 6, and
// decoding them a byte at a time was most of a month-wide span's decoding.
// The 8 bytes are read as one word; the first without the continuation
// bit ends the varint (wordVarint).
func uvarint(p []byte) (uint64, int) {
	if len(p) > 0 && p[0] < 0x80 {
		return uint64(p[0]), 1
	}
	if len(p) >= 8 {
		x := binary.LittleEndian.Uint64(p)
		if stop := ^x & 0x8080808080808080; stop != 0 {
			return wordVarint(x, stop)
		}
	}
	return binary.Uvarint(p)
}

// wordVarint is the varint at the start of x, 8 bytes read little-endian,
// and its length; stop is ^x & 0x8080808080808080, not 0: its lowest bit
// is the end of the varint's last byte. The bytes after it are masked off,
// then the 7-bit groups are joined in pairs, fours and eights.
func wordVarint(x, stop uint64) (uint64, int) {
	x &= stop ^ (stop - 1)
	x = x&0x007f007f007f007f | x&0x7f007f007f007f00>>1
	x = x&0x00003fff00003fff | x&0x3fff00003fff0000>>2
	x = x&0x000000000fffffff | x&0x0fffffff00000000>>4
	return x, (bits.TrailingZeros64(stop) + 1) >> 3
}

// countries holds every upper-case two-letter string, so decoding a large
// window does not allocate a string per remote.
var countries = func() (t [26 * 26]string) {
	for i := range t {
		t[i] = string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
	}
	return t
}()

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func decodeRemotes(w *window.Window, p []byte, orgs *orgFill) error {
	count, n := binary.Uvarint(p)
	if n <= 0 {
		return corrupt("remotes: bad count")
	}
	p = p[n:]
	if count > uint64(len(p)/minRemoteLen) {
		return corrupt("remotes: %d remotes cannot fit in %d bytes", count, len(p))
	}
	if count == 0 {
		return nil
	}
	if uint64(cap(w.Remotes)) >= count {
		w.Remotes = w.Remotes[:count]
	} else {
		w.Remotes = make([]window.Remote, count)
	}
	for i := range w.Remotes {
		r := &w.Remotes[i] // every field is set below: no zeroing first
		if len(p) < 1 {
			return corrupt("remote %d: truncated", i)
		}
		switch p[0] {
		case family4:
			if len(p) < 1+4+2 {
				return corrupt("remote %d: truncated", i)
			}
			r.Addr = netip.AddrFrom4([4]byte(p[1:5]))
			p = p[5:]
		case family6:
			if len(p) < 1+16+2 {
				return corrupt("remote %d: truncated", i)
			}
			r.Addr = netip.AddrFrom16([16]byte(p[1:17]))
			if r.Addr.Is4In6() {
				// The encoder unmaps; a mapped address here would
				// merge apart from its IPv4 twin.
				return corrupt("remote %d: IPv4-mapped address in the IPv6 family", i)
			}
			p = p[17:]
		default:
			return corrupt("remote %d: address family %d", i, p[0])
		}
		switch {
		case isUpper(p[0]) && isUpper(p[1]):
			r.Country = countries[int(p[0]-'A')*26+int(p[1]-'A')]
		case p[0] != 0 || p[1] != 0:
			return corrupt("remote %d: country %q", i, p[:2])
		default:
			r.Country = ""
		}
		p = p[2:]
		asn, n := uvarint(p)
		if n <= 0 || asn > 1<<32-1 {
			return corrupt("remote %d: bad ASN", i)
		}
		r.ASN, r.ASOrg = uint32(asn), ""
		if orgs != nil && asn != 0 {
			r.ASOrg = orgs.c.org(orgs.db, orgs.tx, r.ASN)
		}
		p = p[n:]
		var ok bool
		if r.Counts, p, ok = decodeCounts(p); !ok {
			return corrupt("remote %d: bad count", i)
		}
	}
	if len(p) != 0 {
		return corrupt("remotes: %d trailing bytes", len(p))
	}
	return nil
}

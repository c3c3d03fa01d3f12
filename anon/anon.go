// Package anon owns the anonymisation of remote addresses before they are
// stored or logged, for privacy rules that forbid keeping full addresses.
// It runs on closed windows, after GeoIP, so countries and ASNs come from
// the real address while the DB and the record log never hold it.
//
// Two modes:
//   - truncate keeps a prefix (by default /24 for IPv4, /48 for IPv6) and
//     zeroes the rest: 203.0.113.77 becomes 203.0.113.0. Remotes in one
//     prefix become one row.
//   - hash replaces each address with a keyed pseudonym: HMAC-SHA256 of the
//     address under a secret key, shown as an IPv6 address in fd04::/16
//     (it was IPv4) or fd06::/16 (it was IPv6) with 112 bits of the MAC.
//     The same remote gets the same pseudonym for as long as the key is
//     kept, so it can be followed over time; without the key it cannot be
//     turned back into the address, and 112 bits make two remotes sharing
//     a pseudonym practically impossible.
package anon

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/dstwatch/dstwatch/window"
)

// Anonymizer maps one real remote address to what is stored.
type Anonymizer interface {
	Addr(netip.Addr) netip.Addr
}

// Truncate keeps the first Bits4 bits of IPv4 and Bits6 bits of IPv6 addresses.
type Truncate struct{ Bits4, Bits6 int }

func (t Truncate) Addr(a netip.Addr) netip.Addr {
	bits := t.Bits6
	if a.Is4() {
		bits = t.Bits4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a
	}
	return p.Addr()
}

// Hash pseudonymises addresses with HMAC-SHA256 under Key.
type Hash struct{ Key []byte }

func (h Hash) Addr(a netip.Addr) netip.Addr {
	m := hmac.New(sha256.New, h.Key)
	b := a.AsSlice()
	m.Write(b)
	sum := m.Sum(nil)
	var out [16]byte
	out[0] = 0xfd
	out[1] = 0x06
	if len(b) == 4 {
		out[1] = 0x04
	}
	copy(out[2:], sum)
	return netip.AddrFrom16(out)
}

// minKey is the shortest key accepted: a short key could be found by trying
// keys against known addresses.
const minKey = 16

// Errors of Parse about how mode and key file go together. The CLI says
// them in its flags' names.
var (
	ErrKeyNotHash = errors.New("a key file goes with mode hash only")
	ErrNoKey      = errors.New("mode hash needs a key file (e.g. head -c 32 /dev/urandom > key)")
	ErrHashArg    = errors.New("mode hash takes no argument") // wrapped in a ModeError
)

// ModeError is a mode Parse does not understand, and why.
type ModeError struct {
	Mode, Problem string
	Err           error // ErrHashArg, or nil
}

func (e *ModeError) Error() string { return fmt.Sprintf("anonymize mode %q: %s", e.Mode, e.Problem) }
func (e *ModeError) Unwrap() error { return e.Err }

// Parse reads a mode: "truncate", "truncate:/24,/48" (or
// "truncate:24,48"), or "hash" with the key read from keyFile.
func Parse(mode, keyFile string) (Anonymizer, error) {
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "truncate":
		t := Truncate{Bits4: 24, Bits6: 48}
		if arg != "" {
			f4, f6, ok := strings.Cut(arg, ",")
			var e4, e6 error
			t.Bits4, e4 = strconv.Atoi(strings.TrimPrefix(f4, "/"))
			t.Bits6, e6 = strconv.Atoi(strings.TrimPrefix(f6, "/"))
			if !ok || e4 != nil || e6 != nil || t.Bits4 < 0 || t.Bits4 > 32 || t.Bits6 < 0 || t.Bits6 > 128 {
				return nil, &ModeError{Mode: mode, Problem: "want truncate:/V4BITS,/V6BITS, e.g. truncate:/24,/48"}
			}
		}
		if keyFile != "" {
			return nil, ErrKeyNotHash
		}
		return t, nil
	case "hash":
		if arg != "" {
			return nil, &ModeError{Mode: mode, Problem: "hash takes no argument; the key comes from the key file", Err: ErrHashArg}
		}
		if keyFile == "" {
			return nil, ErrNoKey
		}
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("anonymize key: %w", err)
		}
		if len(key) < minKey {
			return nil, fmt.Errorf("anonymize key %s: %d bytes, want at least %d", keyFile, len(key), minKey)
		}
		return Hash{Key: key}, nil
	}
	return nil, &ModeError{Mode: mode, Problem: "want truncate, truncate:/V4BITS,/V6BITS or hash"}
}

// Apply replaces every remote address of w and merges remotes that map to
// the same value (a truncated prefix), summing their counts (see Remotes).
func Apply(a Anonymizer, w *window.Window) { w.Remotes = Remotes(a, w.Remotes) }

// Remotes replaces the addresses of rs, heaviest first, in place and merges
// rows that map to the same value, summing their counts. A merged row keeps
// the country and ASN of its heaviest member. The result is re-sorted
// heaviest first (bytes, then address) and shares rs's array.
func Remotes(a Anonymizer, rs []window.Remote) []window.Remote {
	idx := make(map[netip.Addr]int, len(rs))
	out := rs[:0]
	for _, r := range rs {
		// The first member of a group is its heaviest, so its geo answers
		// stand for the group.
		r.Addr = a.Addr(r.Addr)
		if i, ok := idx[r.Addr]; ok {
			out[i].Counts.Add(r.Counts)
			continue
		}
		idx[r.Addr] = len(out)
		out = append(out, r)
	}
	clear(rs[len(out):])
	slices.SortStableFunc(out, func(x, y window.Remote) int {
		switch bx, by := x.Bytes(), y.Bytes(); {
		case bx > by:
			return -1
		case bx < by:
			return 1
		}
		return x.Addr.Compare(y.Addr)
	})
	return out
}

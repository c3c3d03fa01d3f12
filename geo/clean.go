package geo

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings in a .mmdb file are whatever its maker wrote: a damaged or hostile
// file can carry newlines that forge record-log lines, terminal escapes,
// invalid UTF-8 that makes Prometheus label values fail, or a country such as
// "--output=/tmp/x" that an action's program takes for an option. They are
// cleaned here, once, when a record or the metadata is decoded, so that
// stored windows, the record log, metrics, alerts and every output agree.

// MaxNameLen bounds an organisation name or metadata string, in bytes. Real
// AS organisation names stay well under it; longer ones are cut at a rune
// boundary.
const MaxNameLen = 128

// CleanCountry returns cc as an ISO 3166-1 alpha-2 code: two ASCII letters,
// upper-cased. Anything else, and the codes that mark unknown space ("ZZ"),
// is "" (unknown).
func CleanCountry(cc string) string {
	if len(cc) != 2 {
		return ""
	}
	b := [2]byte{cc[0], cc[1]}
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
		default:
			return ""
		}
	}
	if b == [2]byte{'Z', 'Z'} {
		return ""
	}
	return string(b[:])
}

// CleanName returns s as printable UTF-8 of at most MaxNameLen bytes:
// invalid bytes and non-printable runes (control characters, escapes,
// bidirectional overrides) become U+FFFD, other white space a plain space,
// and the ends are trimmed. A string that is already clean is returned as
// is, without allocating.
func CleanName(s string) string {
	if isClean(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // invalid bytes arrive as utf8.RuneError
		switch {
		case r == ' ' || r != utf8.RuneError && unicode.IsPrint(r):
		case unicode.IsSpace(r):
			r = ' '
		default:
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > MaxNameLen {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

func isClean(s string) bool {
	if len(s) > MaxNameLen || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r == utf8.RuneError || r != ' ' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

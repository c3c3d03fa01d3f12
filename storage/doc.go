// Package storage owns dstwatch's database: one bbolt file that keeps every
// closed window, and the on-disk format of that file. It knows bbolt and
// bytes; it does not know packets, sockets or .mmdb files. Windows come
// from the sink (rotate's window plus geo answers) and go to queries.
//
// # Opening
//
// A file storage is pointed at is never damaged by it. An absent or
// zero-length file is new and gets initialised. Any other file is checked
// before bbolt may write to it: its first bbolt meta page is read by hand
// (magic 0xED0CDAED, bbolt format 2, checksum, and a file long enough for
// every page the meta page counts, because bbolt would map a truncated file
// and die of SIGBUS reading past its end); then bbolt opens it read-only,
// tx.Check runs, and the meta bucket and format version are read. Only then
// is the file reopened read-write. Every open passes a lock timeout, and
// NoSync is never set.
//
// # Layout
//
// All integers in keys and meta values are big-endian; "uvarint" is
// encoding/binary's unsigned varint (7 bits per byte, low group first).
//
//	bucket "meta"
//	    "format"   4 bytes: uint32 format version, currently 1
//	    "created"  RFC 3339 UTC time the file was initialised
//	bucket "windows"
//	    key    8 bytes: uint64 Unix seconds of the window start (UTC),
//	           so keys sort by time and cursor Seek gives ranges
//	    value  an encoded window, below
//	bucket "asn"
//	    key    4 bytes: uint32 AS number
//	    value  the organisation's name, UTF-8, as last reported by geo
//
// A window value is one encoding version byte (1) followed by sections
// until the end of the value:
//
//	uvarint  section id
//	uvarint  payload length in bytes
//	bytes    payload
//
// The encoder writes sections in id order; the decoder takes them in any
// order but each known id at most once. The header is required; a missing
// stats, other or remotes section means zero values.
//
//	id 1  header
//	      uvarint  window length in seconds (> 0)
//	      uvarint  GeoIP database build time, Unix seconds; 0 = none
//	id 2  stats: one uvarint per rotate.Stats field, in this order:
//	      Frames, Tallied, NonIP, Transit, Malformed, Excluded, Local,
//	      Drops, Late, Folded
//	id 3  other: the counts of remotes folded by the cardinality cap
//	      uvarint TxPackets, TxBytes, RxPackets, RxBytes
//	id 4  remotes
//	      uvarint  number of remotes
//	      then per remote, heaviest first (bytes both ways descending,
//	      then address ascending):
//	      1 byte     address family: 4 or 6
//	      4/16 bytes address, network order (IPv4 is never stored mapped)
//	      2 bytes    ISO 3166-1 alpha-2 country, upper-case ASCII;
//	                 0x00 0x00 = unknown
//	      uvarint    AS number; 0 = unknown (its name is in bucket "asn")
//	      uvarint    TxPackets, TxBytes, RxPackets, RxBytes
//
// A typical IPv4 remote takes 15-25 bytes, an IPv6 remote 12 more.
//
// # Compatibility
//
// The format version in the meta bucket is the contract. A file with a
// higher version than this code knows is refused with ErrTooNew and left
// untouched: old code never misreads or rewrites new data (Put merges by
// decoding and re-encoding, so an old writer would silently drop sections
// it does not know). A file with a lower version is upgraded by Open, which
// runs every step from the file's version up in one read-write transaction;
// a read-only open of an older file asks for a read-write open first.
// Adding format 2 means bumping formatVersion and appending one function to
// upgrades.
//
// The value encoding keeps those steps small. The decoder skips sections
// whose id it does not know and ignores bytes after the fields it knows at
// the end of a header, stats or other section, and a missing section means
// zero values. So a new dimension (per-service-port counts, say) is a new
// section id, or a new bucket for rollup tiers, and existing values need no
// rewrite: they simply lack it. Per-remote data goes in a new section that
// follows the remotes' order, since one remote's encoding cannot grow.
// Section ids, field orders and key layouts are never reused or changed in
// meaning.
package storage

// Package storage owns dstwatch's database: one bbolt file that keeps every
// closed window, hourly and daily rollups of them, and the on-disk format of
// that file. It knows bbolt and bytes; it does not know packets, sockets or
// .mmdb files. The windows it keeps are package window's (window.Window:
// rotate's window plus geo answers, put by the sink) and go to queries as
// such; storage owns their encoding, not their shape.
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
//	    "format"   4 bytes: uint32 format version, currently 3
//	    "created"  RFC 3339 UTC time the file was initialised
//	    "sealed"   8 bytes: uint64 Unix seconds of a whole UTC hour: every
//	               window starting before it is in the rollups; absent = 0
//	    "pruned.windows", "pruned.hours", "pruned.days"
//	               8 bytes: uint64 Unix seconds: a prune deleted every unit
//	               of that tier starting before it; absent = 0
//	    "lost." + an 8-byte window key
//	               the decoder's error text: that raw window's value did not
//	               decode when its hour was rolled up, so its counts are in
//	               neither rollup (damage.go); deleted with the daily rollup
//	bucket "windows"
//	    key    8 bytes: uint64 Unix seconds of the window start (UTC),
//	           so keys sort by time and cursor Seek gives ranges
//	    value  an encoded window, below
//	bucket "hours"
//	    key    8 bytes: uint64 Unix seconds of a whole UTC hour
//	    value  an encoded window of length 3600 s: the hourly rollup
//	bucket "days"
//	    key    8 bytes: uint64 Unix seconds of a UTC midnight
//	    value  an encoded window of length 86400 s: the daily rollup
//	bucket "asn"
//	    key    4 bytes: uint32 AS number
//	    value  the organisation's name, UTF-8, as last reported by geo
//	bucket "outbox" (only once an export was enabled; see outbox.go)
//	    key    8 bytes: uint64 sequence, in the order windows were stored
//	    value  8 bytes: uint64 Unix seconds of the stored window's start
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
//	id 2  stats: one uvarint per window.Stats field, in this order:
//	      Frames, Tallied, NonIP, Transit, Malformed, Excluded, Local,
//	      Drops, Late, Folded, Oversize, Spoofed, Overflow, Partial (the
//	      last four were appended later; a shorter section from an older
//	      version reads them as 0, and no format bump is needed). Partial
//	      is a bit set, not a count: 1 the daemon started inside the
//	      window, 2 it stopped inside it, 4 a capture source was down
//	      during it; at most 0xff. Merged windows and rollups join the sets.
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
//	id 5  rollup (rollups only; written when the count is not 0)
//	      uvarint  Capped: remote entries (one per remote per raw window)
//	               that the rollup's cap folded into other
//	id 6  groups (rollups only; written when there are remotes)
//	      uvarint  number of groups
//	      then per (country, ASN) pair of the remotes section, ordered by
//	      country (bytes, unknown first) then ASN:
//	      2 bytes    country, as in remotes
//	      uvarint    AS number
//	      uvarint    how many remotes of the remotes section it sums
//	      uvarint    TxPackets, TxBytes, RxPackets, RxBytes: their sums
//	id 7  services (format 3; written when there are services)
//	      uvarint  number of services
//	      then per service, heaviest first (bytes both ways descending,
//	      then the packed key ascending):
//	      1 byte     protocol: 0 other, 1 TCP, 2 UDP, 3 ICMP (and ICMPv6)
//	      1 byte     side: 0 none (no port: ICMP, other protocols,
//	                 non-first fragments, cut-off headers), 1 in (a
//	                 local service: the local port), 2 out (a service
//	                 this host uses: the remote port), 3 scan (probes of
//	                 closed ports, port 0; written since format 3's
//	                 services first were, an older reader calls it corrupt)
//	      uvarint    port (0 when the side is none or scan)
//	      uvarint    distinct remotes that used it (see Tiers)
//	      uvarint    TxPackets, TxBytes, RxPackets, RxBytes: all of its
//	                 traffic
//	      uvarint    number of remote rows that follow
//	      then per remote row, heaviest first, exactly as one remote of
//	      section 4 (family, address, country, ASN, four counts)
//	      A service's "other" is its counts minus its rows' sums; rows
//	      that add up to more than the counts make the value corrupt.
//
// A typical IPv4 remote takes 15-25 bytes, an IPv6 remote 12 more.
//
// # Tiers
//
// A rollup is an encoded window whose start is a whole UTC hour (day) and
// whose length is 3600 (86400) s. It holds the sums of the raw windows
// starting in its hour (day): per remote the four counts (country and ASN
// as in a merge: the newer known answer wins), other, every statistic, and
// the newest GeoIP build. Windows belong to a rollup by their start, as a
// range selects them, so a rollup is exactly the windows a range over its
// hour (day) would select, whatever the window length.
//
// Rollups are written in the windows' own transaction, so they can never
// disagree with the windows or count anything twice, also across a crash.
// Put stores the windows; then (1) a window starting before "sealed" is
// added to its hourly and daily rollups (its own counts, not the stored
// window it was merged with, so a window stored twice adds each count once,
// as in bucket "windows"), and (2) "sealed" moves to the start of the
// newest window's hour: the raw windows of every hour in between are read
// once and summed into new hourly rollups and into their days. A live
// daemon so writes each hourly rollup once, when the first window of the
// next hour arrives, and each daily rollup once an hour; the windows of the
// current hour are in no rollup yet. Pruning raw windows seals their hours
// first. Upgrading a format 1 file is the same sealing, up to the newest
// window's hour, in the transaction that writes format 2.
//
// Each tier caps the remote rows of one rollup (Options.HourCap, DayCap).
// The rule is "first come, first kept": while a rollup has fewer rows than
// its cap, a new remote gets a row (of one window, heaviest first); once
// full, its set of rows never changes, and every remote without a row is
// added to other and counted in Capped. So a row always holds exactly its
// remote's sum over the raw windows, other holds the rest, and totals are
// exact. Hourly and daily rollups are both built from raw windows, each
// with its own cap.
//
// Services (section 7) are summed per service (protocol, side, port) into
// both tiers, so a service's counts in a rollup are exact. Its remote rows
// are the sums of the rows its windows kept (each window keeps the
// heaviest --service-top, 20 by default), cut to the RollupServiceTop
// (100) heaviest for each of the RollupServices (200) heaviest services;
// lighter services keep their counts only. A remote that was in some
// windows' rows but in others' "other" has a row that holds at least,
// not exactly, its traffic. A rollup's distinct remotes are a lower bound:
// the largest count of its windows, or its number of rows if larger. A
// window stored twice (merged) follows the same rules.
//
// DB.Span answers a range [from, to) with the coarsest units that are
// exact: daily rollups for whole UTC days, hourly ones for whole hours, raw
// windows for the rest. A rollup is used only when its unit lies within the
// range, is sealed and was not pruned. Where raw windows were pruned, a
// unit that starts inside the range stands for them, one that starts
// before it is left out, and Span reports the coarsest unit an edge was
// rounded to.
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
// Format 2 added the rollup tiers (buckets "hours" and "days", meta
// "sealed" and "pruned.*", and sections 5 and 6, which only rollups carry);
// windows are encoded as in format 1. Format 3 added section 7
// (services) to windows and rollups; the upgrade from format 2 only writes
// the new version: older windows and rollups have no services section and
// are not rewritten, so per-service answers start with the first window
// stored by a format 3 dstwatch. Adding format 4 means bumping
// formatVersion and appending one function to upgrades.
//
// The value encoding keeps those steps small. The decoder skips sections
// whose id it does not know and ignores bytes after the fields it knows at
// the end of a header, stats or other section, and a missing section means
// zero values. So a new dimension (as the services of format 3) is a new
// section id, or a new bucket for rollup tiers, and existing values need no
// rewrite: they simply lack it. Per-remote data goes in a new section that
// follows the remotes' order, since one remote's encoding cannot grow.
// Section ids, field orders and key layouts are never reused or changed in
// meaning.
package storage

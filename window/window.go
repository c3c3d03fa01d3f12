package window

import (
	"fmt"
	"net/netip"
	"time"
)

// Window is one closed window as stored: rotate's window plus what the sink
// resolved for each remote.
type Window struct {
	Start    time.Time     // UTC, epoch-aligned
	Length   time.Duration // whole seconds
	Remotes  []Remote      // heaviest first: by Bytes() desc, then address asc
	Other    Counts        // remotes folded by the cardinality cap
	Stats    Stats
	GeoBuild time.Time // build time of the country database used; zero when none

	// Capped is set in rollups only (Length of an hour or a day): how many
	// remote entries (one per remote per raw window) the rollup's cap
	// folded into Other. Zero means every remote of the rollup's raw
	// windows has its own row. A row always holds exactly its remote's sum
	// over those windows; the folded remotes are wholly in Other.
	Capped uint64

	// Groups is set in rollups only: the rows of Remotes summed per
	// (Country, ASN) pair, ordered by country then ASN. Other is not in
	// any group. Span with SpanOptions.Groups delivers rollups with Groups
	// and without Remotes, for answers by country or AS that need not
	// decode every remote.
	Groups []Group

	// Services are the traffic per service, heaviest first (service.go);
	// none in windows stored before format 3.
	Services []Service
}

// Group is the sum of a rollup's remote rows that share a country and an
// AS number.
type Group struct {
	Country string // "" unknown
	ASN     uint32 // 0 unknown
	ASOrg   string
	Remotes int // remote rows in this group, in this rollup
	Counts
}

// End is the first instant after the window.
func (w *Window) End() time.Time { return w.Start.Add(w.Length) }

// Remote is one remote address with its counts and what geo knew about it.
type Remote struct {
	Addr    netip.Addr // IPv4 unmapped
	Country string     // ISO 3166-1 alpha-2, "" when unknown
	ASN     uint32     // 0 when unknown
	ASOrg   string     // organisation of ASN, "" when unknown
	Counts
}

// Resolution is a tier of stored history: raw windows, hourly rollups or
// daily rollups (UTC days).
type Resolution int

const (
	Raw    Resolution = iota // the windows as stored (e.g. 20 s)
	Hourly                   // rollups of [h, h+1h), h a whole UTC hour
	Daily                    // rollups of [d, d+24h), d a UTC midnight
)

func (r Resolution) String() string {
	switch r {
	case Raw:
		return "window"
	case Hourly:
		return "hour"
	case Daily:
		return "day"
	}
	return fmt.Sprintf("Resolution(%d)", int(r))
}

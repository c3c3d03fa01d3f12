package query

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

// The JSON shapes below are a stable interface, documented in the README:
// fields may be added, never renamed or removed. Counts are exact integers;
// times are UTC RFC 3339.

// CountsJSON is a pair of tallies each way. Bytes are IP total length.
type CountsJSON struct {
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
}

// ToCounts converts counts to their JSON shape.
func ToCounts(c rotate.Counts) CountsJSON {
	return CountsJSON{c.TxPackets, c.TxBytes, c.RxPackets, c.RxBytes}
}

func (c CountsJSON) counts() rotate.Counts {
	return rotate.Counts{TxPackets: c.TxPackets, TxBytes: c.TxBytes, RxPackets: c.RxPackets, RxBytes: c.RxBytes}
}

// RemoteJSON is one remote: in a window, or a --by remote row (where Addr
// is "other" for the folded rest).
type RemoteJSON struct {
	Addr    string `json:"addr"`
	Country string `json:"country"`
	ASN     uint32 `json:"asn"`
	ASOrg   string `json:"as_org,omitempty"`
	CountsJSON
}

// CountryJSON is a --by country row; Country is "" for unknown and "other"
// for the folded rest.
type CountryJSON struct {
	Country string `json:"country"`
	Remotes int    `json:"remotes"`
	CountsJSON
}

// ASNJSON is a --by asn row; ASN 0 is unknown, Other marks the folded rest.
type ASNJSON struct {
	ASN     uint32 `json:"asn"`
	ASOrg   string `json:"as_org,omitempty"`
	Other   bool   `json:"other,omitempty"`
	Remotes int    `json:"remotes"`
	CountsJSON
}

// StatsJSON is how a window's numbers came about (see rotate.Stats).
type StatsJSON struct {
	Frames    uint64 `json:"frames"`
	Tallied   uint64 `json:"tallied"`
	NonIP     uint64 `json:"skipped_non_ip"`
	Transit   uint64 `json:"skipped_transit"`
	Malformed uint64 `json:"skipped_malformed"`
	Excluded  uint64 `json:"skipped_excluded"`
	Local     uint64 `json:"skipped_local"`
	Drops     uint64 `json:"drops"`
	Late      uint64 `json:"late"`
	Folded    uint64 `json:"folded"`
	GeoBuild  string `json:"geoip_build,omitempty"`
}

// WindowJSON is one stored window. With every remote it carries all that
// storage holds, so FromWindowJSON gives the window back exactly.
type WindowJSON struct {
	Start   string       `json:"start"`
	End     string       `json:"end"`
	Remotes []RemoteJSON `json:"remotes"`
	Other   CountsJSON   `json:"other"`
	Stats   StatsJSON    `json:"stats"`
}

// ToWindowJSON converts w, all of its remotes, to its JSON shape.
func ToWindowJSON(w *storage.Window) WindowJSON {
	s := w.Stats
	out := WindowJSON{
		Start: w.Start.UTC().Format(time.RFC3339), End: w.End().UTC().Format(time.RFC3339),
		Remotes: make([]RemoteJSON, 0, len(w.Remotes)),
		Other:   ToCounts(w.Other),
		Stats: StatsJSON{s.Frames, s.Tallied, s.NonIP, s.Transit, s.Malformed, s.Excluded, s.Local,
			s.Drops, s.Late, s.Folded, ""},
	}
	if !w.GeoBuild.IsZero() {
		out.Stats.GeoBuild = w.GeoBuild.UTC().Format(time.RFC3339)
	}
	for _, r := range w.Remotes {
		out.Remotes = append(out.Remotes, RemoteJSON{r.Addr.String(), r.Country, r.ASN, r.ASOrg, ToCounts(r.Counts)})
	}
	return out
}

// FromWindowJSON is the inverse of ToWindowJSON.
func FromWindowJSON(j *WindowJSON) (*storage.Window, error) {
	start, err := time.Parse(time.RFC3339, j.Start)
	if err != nil {
		return nil, fmt.Errorf("window start: %w", err)
	}
	end, err := time.Parse(time.RFC3339, j.End)
	if err != nil {
		return nil, fmt.Errorf("window end: %w", err)
	}
	if !end.After(start) {
		return nil, errors.New("window ends before it starts")
	}
	s := j.Stats
	w := &storage.Window{
		Start: start.UTC(), Length: end.Sub(start), Other: j.Other.counts(),
		Remotes: make([]storage.Remote, 0, len(j.Remotes)),
		Stats: rotate.Stats{Frames: s.Frames, Tallied: s.Tallied, NonIP: s.NonIP, Transit: s.Transit,
			Malformed: s.Malformed, Excluded: s.Excluded, Local: s.Local, Drops: s.Drops, Late: s.Late, Folded: s.Folded},
	}
	if s.GeoBuild != "" {
		if w.GeoBuild, err = time.Parse(time.RFC3339, s.GeoBuild); err != nil {
			return nil, fmt.Errorf("window geoip_build: %w", err)
		}
		w.GeoBuild = w.GeoBuild.UTC()
	}
	for _, r := range j.Remotes {
		a, err := netip.ParseAddr(r.Addr)
		if err != nil {
			return nil, fmt.Errorf("window %s: remote %q: %w", j.Start, r.Addr, err)
		}
		w.Remotes = append(w.Remotes, storage.Remote{Addr: a, Country: r.Country, ASN: r.ASN, ASOrg: r.ASOrg, Counts: r.CountsJSON.counts()})
	}
	return w, nil
}

// RowsJSON converts aggregate rows to the JSON shape of their grouping:
// []RemoteJSON, []CountryJSON or []ASNJSON.
func RowsJSON(rows []Row, by By) any {
	switch by {
	case ByCountry:
		out := make([]CountryJSON, 0, len(rows))
		for _, r := range rows {
			c := r.Country
			if r.IsOther() {
				c = OtherKey
			}
			out = append(out, CountryJSON{c, r.Remotes, ToCounts(r.Counts)})
		}
		return out
	case ByASN:
		out := make([]ASNJSON, 0, len(rows))
		for _, r := range rows {
			out = append(out, ASNJSON{r.ASN, r.ASOrg, r.IsOther(), r.Remotes, ToCounts(r.Counts)})
		}
		return out
	}
	out := make([]RemoteJSON, 0, len(rows))
	for _, r := range rows {
		out = append(out, RemoteJSON{r.Key, r.Country, r.ASN, r.ASOrg, ToCounts(r.Counts)})
	}
	return out
}

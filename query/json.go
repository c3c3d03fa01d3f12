package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// The JSON shapes below are a stable interface, documented in docs/cli.md:
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
func ToCounts(c window.Counts) CountsJSON {
	return CountsJSON{c.TxPackets, c.TxBytes, c.RxPackets, c.RxBytes}
}

func (c CountsJSON) counts() window.Counts {
	return window.Counts{TxPackets: c.TxPackets, TxBytes: c.TxBytes, RxPackets: c.RxPackets, RxBytes: c.RxBytes}
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

// PrefixJSON is a --by prefix row: a network (198.51.100.0/24,
// 2001:db8:1::/48), or "other" for the folded rest.
type PrefixJSON struct {
	Prefix  string `json:"prefix"`
	Remotes int    `json:"remotes"`
	CountsJSON
}

// PeriodJSON is a --by hour, day, week or month row: the period [start,
// end) in UTC RFC 3339; remotes_exact is false when remotes is only a
// lower bound (remotes folded by a cap have no address to count).
type PeriodJSON struct {
	Start        string `json:"start"`
	End          string `json:"end"`
	Remotes      int    `json:"remotes"`
	RemotesExact bool   `json:"remotes_exact"`
	CountsJSON
}

// StatsJSON is how a window's numbers came about (see window.Stats).
type StatsJSON struct {
	Frames    uint64 `json:"frames"`
	Tallied   uint64 `json:"tallied"`
	NonIP     uint64 `json:"skipped_non_ip"`
	Transit   uint64 `json:"skipped_transit"`
	Malformed uint64 `json:"skipped_malformed"`
	Excluded  uint64 `json:"skipped_excluded"`
	Local     uint64 `json:"skipped_local"`
	Oversize  uint64 `json:"skipped_oversize"`
	Spoofed   uint64 `json:"skipped_spoofed"`
	Drops     uint64 `json:"drops"`
	Late      uint64 `json:"late"`
	Folded    uint64 `json:"folded"`
	Overflow  uint64 `json:"overflow_frames"` // frames over --max-open-remotes, summed into other
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
	// Partial says why the window was watched for only part of its time
	// (start, stop, outage); absent when it was watched whole.
	Partial []string `json:"partial,omitempty"`
	// Services is absent for a window without any (stored before format 3).
	Services []WindowServiceJSON `json:"services,omitempty"`
}

// WindowServiceJSON is one service of a window: its --by service row, its
// heaviest remotes (Top, heaviest first) and the rest of its traffic.
type WindowServiceJSON struct {
	ServiceJSON
	Top   []RemoteJSON `json:"top"`
	Other CountsJSON   `json:"other"`
}

func toRemoteJSON(r *window.Remote) RemoteJSON {
	return RemoteJSON{r.Addr.String(), r.Country, r.ASN, r.ASOrg, ToCounts(r.Counts)}
}

func (j *RemoteJSON) remote() (window.Remote, error) {
	a, err := netip.ParseAddr(j.Addr)
	if err != nil {
		return window.Remote{}, fmt.Errorf("remote %q: %w", j.Addr, err)
	}
	return window.Remote{Addr: a, Country: j.Country, ASN: j.ASN, ASOrg: j.ASOrg, Counts: j.CountsJSON.counts()}, nil
}

// ToWindowJSON converts w, all of its remotes, to its JSON shape.
func ToWindowJSON(w *window.Window) WindowJSON {
	s := w.Stats
	out := WindowJSON{
		Start: w.Start.UTC().Format(time.RFC3339), End: w.End().UTC().Format(time.RFC3339),
		Remotes: make([]RemoteJSON, 0, len(w.Remotes)),
		Other:   ToCounts(w.Other),
		Stats: StatsJSON{s.Frames, s.Tallied, s.NonIP, s.Transit, s.Malformed, s.Excluded, s.Local,
			s.Oversize, s.Spoofed, s.Drops, s.Late, s.Folded, s.Overflow, ""},
	}
	if !w.GeoBuild.IsZero() {
		out.Stats.GeoBuild = w.GeoBuild.UTC().Format(time.RFC3339)
	}
	out.Partial = w.Stats.Partial.Names()
	for i := range w.Remotes {
		out.Remotes = append(out.Remotes, toRemoteJSON(&w.Remotes[i]))
	}
	if len(w.Services) > 0 {
		out.Services = make([]WindowServiceJSON, 0, len(w.Services))
	}
	for i := range w.Services {
		s := &w.Services[i]
		js := WindowServiceJSON{
			ServiceJSON: ToServiceJSON(ServiceRow{Key: s.Key, Remotes: s.Remotes, Counts: s.Counts}),
			Top:         make([]RemoteJSON, 0, len(s.Top)),
			Other:       ToCounts(s.Other),
		}
		for k := range s.Top {
			js.Top = append(js.Top, toRemoteJSON(&s.Top[k]))
		}
		out.Services = append(out.Services, js)
	}
	return out
}

// FromWindowJSON is the inverse of ToWindowJSON.
func FromWindowJSON(j *WindowJSON) (*window.Window, error) {
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
	w := &window.Window{
		Start: start.UTC(), Length: end.Sub(start), Other: j.Other.counts(),
		Remotes: make([]window.Remote, 0, len(j.Remotes)),
		Stats: window.Stats{Frames: s.Frames, Tallied: s.Tallied, NonIP: s.NonIP, Transit: s.Transit,
			Malformed: s.Malformed, Excluded: s.Excluded, Local: s.Local, Drops: s.Drops, Late: s.Late, Folded: s.Folded,
			Oversize: s.Oversize, Spoofed: s.Spoofed, Overflow: s.Overflow},
	}
	if w.Stats.Partial, err = window.ParsePartial(j.Partial); err != nil {
		return nil, fmt.Errorf("window %s: %w", j.Start, err)
	}
	if s.GeoBuild != "" {
		if w.GeoBuild, err = time.Parse(time.RFC3339, s.GeoBuild); err != nil {
			return nil, fmt.Errorf("window geoip_build: %w", err)
		}
		w.GeoBuild = w.GeoBuild.UTC()
	}
	for i := range j.Remotes {
		r, err := j.Remotes[i].remote()
		if err != nil {
			return nil, fmt.Errorf("window %s: %w", j.Start, err)
		}
		w.Remotes = append(w.Remotes, r)
	}
	if len(j.Services) > 0 {
		w.Services = make([]window.Service, 0, len(j.Services))
	}
	for i := range j.Services {
		js := &j.Services[i]
		row, err := FromServiceJSON(js.ServiceJSON)
		if err != nil {
			return nil, fmt.Errorf("window %s: service %q: %w", j.Start, js.Service, err)
		}
		if js.Remotes < 0 {
			return nil, fmt.Errorf("window %s: service %q: %d remotes", j.Start, js.Service, js.Remotes)
		}
		s := window.Service{Key: row.Key, Remotes: row.Remotes, Counts: row.Counts, Other: js.Other.counts()}
		if len(js.Top) > 0 {
			s.Top = make([]window.Remote, 0, len(js.Top))
		}
		for k := range js.Top {
			r, err := js.Top[k].remote()
			if err != nil {
				return nil, fmt.Errorf("window %s: service %q: %w", j.Start, js.Service, err)
			}
			s.Top = append(s.Top, r)
		}
		w.Services = append(w.Services, s)
	}
	return w, nil
}

// RowsJSON converts aggregate rows to the JSON shape of their grouping:
// []RemoteJSON, []CountryJSON, []ASNJSON, []PrefixJSON or []PeriodJSON.
func RowsJSON(rows []Row, by By) any {
	if by.IsPeriod() {
		out := make([]PeriodJSON, 0, len(rows))
		for _, r := range rows {
			out = append(out, PeriodJSON{r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), r.Remotes, !r.Inexact, ToCounts(r.Counts)})
		}
		return out
	}
	switch by {
	case ByPrefix:
		out := make([]PrefixJSON, 0, len(rows))
		for _, r := range rows {
			out = append(out, PrefixJSON{r.Key, r.Remotes, ToCounts(r.Counts)})
		}
		return out
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

// SummaryJSON is what an aggregate was read from (Summary); the API sends
// it with /v1/aggregate?summary=1.
type SummaryJSON struct {
	Windows       int       `json:"windows"`        // raw windows read
	HourlyRollups int       `json:"hourly_rollups"` // hourly rollups read
	DailyRollups  int       `json:"daily_rollups"`  // daily rollups read
	First         string    `json:"first,omitempty"`
	End           string    `json:"end,omitempty"`
	Stats         StatsJSON `json:"stats"`
	DropUnits     int       `json:"units_with_drops"`
	FoldUnits     int       `json:"units_with_folds"`
	PartialUnits  int       `json:"units_partial,omitempty"` // watched for only part of their time
	Capped        uint64    `json:"capped"`
	Resolution    string    `json:"resolution"`         // window, hour or day
	RawFrom       string    `json:"raw_from,omitempty"` // with resolution hour or day: the oldest raw window kept

	// Stored values skipped because they do not decode.
	Damaged []DamageJSON `json:"damaged,omitempty"`
}

// DamageJSON is one damaged window or rollup (storage.Damage).
type DamageJSON struct {
	Resolution string `json:"resolution"` // window, hour or day
	Start      string `json:"start"`
	Error      string `json:"error"`
}

func fmtOptTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func parseOptTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("summary %s: %w", name, err)
	}
	return t.UTC(), nil
}

// ToSummaryJSON converts s to its JSON shape.
func ToSummaryJSON(s Summary) SummaryJSON {
	st := s.Stats
	return SummaryJSON{
		Windows: s.Windows, HourlyRollups: s.Hours, DailyRollups: s.Days,
		First: fmtOptTime(s.First), End: fmtOptTime(s.Last),
		Stats:     StatsJSON{st.Frames, st.Tallied, st.NonIP, st.Transit, st.Malformed, st.Excluded, st.Local, st.Oversize, st.Spoofed, st.Drops, st.Late, st.Folded, st.Overflow, ""},
		DropUnits: s.DropUnits, FoldUnits: s.FoldUnits, PartialUnits: s.PartialUnits, Capped: s.Capped,
		Resolution: s.Resolution.String(), RawFrom: fmtOptTime(s.RawFrom),
		Damaged: damageJSON(s.Damaged),
	}
}

func damageJSON(ds []storage.Damage) []DamageJSON {
	var out []DamageJSON
	for _, d := range ds {
		out = append(out, DamageJSON{Resolution: d.Tier.String(), Start: fmtOptTime(d.Start), Error: d.Err})
	}
	return out
}

func damageFromJSON(js []DamageJSON) ([]storage.Damage, error) {
	var out []storage.Damage
	for _, j := range js {
		d := storage.Damage{Err: j.Error}
		switch j.Resolution {
		case window.Raw.String():
			d.Tier = window.Raw
		case window.Hourly.String():
			d.Tier = window.Hourly
		case window.Daily.String():
			d.Tier = window.Daily
		default:
			return nil, fmt.Errorf("summary damaged resolution %q: want window, hour or day", j.Resolution)
		}
		var err error
		if d.Start, err = parseOptTime("damaged start", j.Start); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// FromSummaryJSON is the inverse of ToSummaryJSON.
func FromSummaryJSON(j *SummaryJSON) (Summary, error) {
	st := j.Stats
	s := Summary{
		Windows: j.Windows, Hours: j.HourlyRollups, Days: j.DailyRollups,
		Stats: window.Stats{Frames: st.Frames, Tallied: st.Tallied, NonIP: st.NonIP, Transit: st.Transit,
			Malformed: st.Malformed, Excluded: st.Excluded, Local: st.Local, Drops: st.Drops, Late: st.Late, Folded: st.Folded,
			Oversize: st.Oversize, Spoofed: st.Spoofed, Overflow: st.Overflow},
		DropUnits: j.DropUnits, FoldUnits: j.FoldUnits, PartialUnits: j.PartialUnits, Capped: j.Capped,
	}
	switch j.Resolution {
	case "", window.Raw.String():
		s.Resolution = window.Raw
	case window.Hourly.String():
		s.Resolution = window.Hourly
	case window.Daily.String():
		s.Resolution = window.Daily
	default:
		return s, fmt.Errorf("summary resolution %q: want window, hour or day", j.Resolution)
	}
	var err error
	if s.First, err = parseOptTime("first", j.First); err != nil {
		return s, err
	}
	if s.Last, err = parseOptTime("end", j.End); err != nil {
		return s, err
	}
	if s.RawFrom, err = parseOptTime("raw_from", j.RawFrom); err != nil {
		return s, err
	}
	if s.Damaged, err = damageFromJSON(j.Damaged); err != nil {
		return s, err
	}
	return s, nil
}

// RowsFromJSON is the inverse of RowsJSON: it reads the JSON array of rows
// of grouping by. What the shapes leave out (a by-remote other row's count
// of folded remotes) no output shows.
func RowsFromJSON(data []byte, by By) ([]Row, error) {
	var rows []Row
	if by.IsPeriod() {
		var js []PeriodJSON
		if err := json.Unmarshal(data, &js); err != nil {
			return nil, err
		}
		for _, j := range js {
			start, err1 := time.Parse(time.RFC3339, j.Start)
			end, err2 := time.Parse(time.RFC3339, j.End)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("period row: %w", err)
			}
			rows = append(rows, Row{Key: j.Start, Start: start, End: end, Remotes: j.Remotes, Inexact: !j.RemotesExact, Counts: j.CountsJSON.counts()})
		}
		return rows, nil
	}
	switch by {
	case ByPrefix:
		var js []PrefixJSON
		if err := json.Unmarshal(data, &js); err != nil {
			return nil, err
		}
		for _, j := range js {
			r := Row{Key: j.Prefix, Remotes: j.Remotes, Counts: j.CountsJSON.counts()}
			if j.Prefix != OtherKey {
				p, err := netip.ParsePrefix(j.Prefix)
				if err != nil {
					return nil, fmt.Errorf("row %q: %w", j.Prefix, err)
				}
				r.Prefix = p
			}
			rows = append(rows, r)
		}
	case ByCountry:
		var js []CountryJSON
		if err := json.Unmarshal(data, &js); err != nil {
			return nil, err
		}
		for _, j := range js {
			r := Row{Key: j.Country, Country: j.Country, Remotes: j.Remotes, Counts: j.CountsJSON.counts()}
			if j.Country == OtherKey {
				r.Country = ""
			}
			rows = append(rows, r)
		}
	case ByASN:
		var js []ASNJSON
		if err := json.Unmarshal(data, &js); err != nil {
			return nil, err
		}
		for _, j := range js {
			r := Row{Key: strconv.FormatUint(uint64(j.ASN), 10), ASN: j.ASN, ASOrg: j.ASOrg, Remotes: j.Remotes, Counts: j.CountsJSON.counts()}
			if j.Other {
				r.Key = OtherKey
			}
			rows = append(rows, r)
		}
	case ByRemote:
		var js []RemoteJSON
		if err := json.Unmarshal(data, &js); err != nil {
			return nil, err
		}
		for _, j := range js {
			r := Row{Key: j.Addr, Country: j.Country, ASN: j.ASN, ASOrg: j.ASOrg, Counts: j.CountsJSON.counts()}
			if j.Addr != OtherKey {
				a, err := netip.ParseAddr(j.Addr)
				if err != nil {
					return nil, fmt.Errorf("row %q: %w", j.Addr, err)
				}
				r.Addr = a
			}
			rows = append(rows, r)
		}
	default:
		return nil, fmt.Errorf("cannot read rows by %q", by)
	}
	return rows, nil
}

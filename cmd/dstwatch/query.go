package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

const queryHelp = `Usage: dstwatch query [flags]

Answers questions over the stored windows: per window, or added up over the
range per remote or per country. Tables are for people (local time unless
--utc, human units); json and csv carry exact integers and UTC RFC 3339 times.

Times (--from, --to) are RFC 3339 (2026-11-22T14:00:00+01:00), a date
(2026-11-22, local midnight), a local date and time (2026-11-22 14:00),
relative to now (-1h, -30m, -2d, +1h), or now, today, yesterday.

Examples:
  dstwatch query                                   # last hour, per remote
  dstwatch query --by country --from today
  dstwatch query --by window --from -10m --format json
  dstwatch query --by remote --top 20 --from 2026-11-01 --to 2026-11-02 --format csv
`

type queryOpts struct {
	by, format string
	top        int
	utc        bool
	from, to   time.Time
}

func cmdQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("query", queryHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	from := fs.String("from", "-1h", "start of the range, inclusive: a `time` (see above)")
	to := fs.String("to", "now", "end of the range, exclusive: a `time`")
	var o queryOpts
	fs.StringVar(&o.by, "by", "remote", "group by: window, remote or country")
	fs.IntVar(&o.top, "top", -1, "show the `N` heaviest rows and sum the rest as 'other' (remotes within each window for --by window); 0: all (default: 25 in tables, all in json and csv)")
	fs.StringVar(&o.format, "format", "table", "output: table, json or csv")
	fs.BoolVar(&o.utc, "utc", false, "show times in UTC instead of local time (tables)")
	if err := parse(fs, args); err != nil {
		return err
	}
	now := time.Now()
	var err error
	if o.from, err = parseTime("--from", *from, now, time.Local); err != nil {
		return err
	}
	if o.to, err = parseTime("--to", *to, now, time.Local); err != nil {
		return err
	}
	if !o.to.After(o.from) {
		return fmt.Errorf("%w: --to must be after --from", errUsage)
	}
	switch o.by {
	case "window", "remote", "country":
	default:
		return fmt.Errorf("%w: --by %q: want window, remote or country", errUsage, o.by)
	}
	switch o.format {
	case "table", "json", "csv":
	default:
		return fmt.Errorf("%w: --format %q: want table, json or csv", errUsage, o.format)
	}
	if o.top < -1 {
		return fmt.Errorf("%w: --top must not be negative", errUsage)
	}
	if o.top == -1 {
		o.top = 0
		if o.format == "table" {
			o.top = 25
		}
	}
	d, err := storage.Open(*db, storage.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer d.Close()
	var ws []*storage.Window
	if err := d.Windows(o.from, o.to, func(w *storage.Window) error {
		ws = append(ws, w)
		return nil
	}); err != nil {
		return err
	}
	if len(ws) == 0 && o.format == "table" {
		first, last, n, err := d.Bounds()
		if err != nil {
			return err
		}
		loc := o.loc()
		fmt.Fprintf(stdout, "no stored window from %s to %s", fmtTime(o.from, loc), fmtTime(o.to, loc))
		if n > 0 {
			fmt.Fprintf(stdout, "; the database holds %d windows, the first starting %s, the last %s\n", n, fmtTime(first, loc), fmtTime(last, loc))
		} else {
			fmt.Fprintln(stdout, "; the database holds no windows yet")
		}
		return nil
	}
	return writeQuery(stdout, ws, o)
}

func (o queryOpts) loc() *time.Location {
	if o.utc {
		return time.UTC
	}
	return time.Local
}

func fmtTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// parseTime reads the time forms --from and --to accept; now and loc are
// parameters so that tests pin them (including across a DST change).
func parseTime(flagName, s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	day := func(t time.Time) time.Time {
		y, m, d := t.In(loc).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
	switch s {
	case "now":
		return now, nil
	case "today":
		return day(now), nil
	case "yesterday":
		t := day(now)
		y, m, d := t.Date()
		return time.Date(y, m, d-1, 0, 0, 0, 0, loc), nil
	}
	if s != "" && (s[0] == '-' || s[0] == '+') {
		d, err := parseSpan(flagName, s[1:])
		if err != nil {
			return time.Time{}, err
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %s %q: not a time (examples: 2026-11-22T14:00:00Z, 2026-11-22, \"2026-11-22 14:00\", -1h, today)", errUsage, flagName, s)
}

// group is one row of an aggregate: a remote, a country, or the folded rest.
type group struct {
	Key     string
	Addr    netip.Addr
	Country string
	ASN     uint32
	ASOrg   string
	Remotes int // distinct remotes, for countries
	rotate.Counts
}

// aggregate adds the windows up per remote or per country. Remotes folded by
// the cardinality cap stay one "other" row, so the totals are exact.
func aggregate(ws []*storage.Window, by string) []group {
	idx := map[string]int{}
	var out []group
	seen := map[string]map[netip.Addr]bool{}
	add := func(key string, proto group, c rotate.Counts, addr netip.Addr) {
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			proto.Key = key
			out = append(out, proto)
		}
		out[i].Counts.Add(c)
		if addr.IsValid() {
			// Newer windows carry newer GeoIP answers.
			out[i].Country, out[i].ASN, out[i].ASOrg = proto.Country, proto.ASN, proto.ASOrg
			if by == "country" {
				if seen[key] == nil {
					seen[key] = map[netip.Addr]bool{}
				}
				if !seen[key][addr] {
					seen[key][addr] = true
					out[i].Remotes++
				}
			}
		}
	}
	for _, w := range ws {
		for _, r := range w.Remotes {
			g := group{Addr: r.Addr, Country: r.Country, ASN: r.ASN, ASOrg: r.ASOrg}
			key := r.Addr.String()
			if by == "country" {
				g = group{Country: r.Country}
				key = r.Country
			}
			add(key, g, r.Counts, r.Addr)
		}
		if !w.Other.IsZero() {
			add("other", group{}, w.Other, netip.Addr{})
		}
	}
	slices.SortFunc(out, func(a, b group) int {
		if (a.Key == "other") != (b.Key == "other") {
			if a.Key == "other" {
				return 1
			}
			return -1
		}
		if n := cmp.Compare(b.Bytes(), a.Bytes()); n != 0 {
			return n
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// topGroups keeps the n heaviest rows and folds the rest into "other".
func topGroups(gs []group, n int) []group {
	if n <= 0 || len(gs) <= n {
		return gs
	}
	rest := group{Key: "other"}
	for _, g := range gs[n:] {
		rest.Counts.Add(g.Counts)
		rest.Remotes += g.Remotes
	}
	return append(gs[:n:n], rest)
}

func writeQuery(w io.Writer, ws []*storage.Window, o queryOpts) error {
	if o.by == "window" {
		switch o.format {
		case "json":
			return writeWindowsJSON(w, ws, o.top)
		case "csv":
			return writeWindowsCSV(w, ws, o.top)
		}
		return writeWindowsTable(w, ws, o)
	}
	gs := topGroups(aggregate(ws, o.by), o.top)
	switch o.format {
	case "json":
		return writeGroupsJSON(w, gs, o.by)
	case "csv":
		return writeGroupsCSV(w, gs, o.by)
	}
	return writeGroupsTable(w, ws, gs, o)
}

// JSON shapes: documented in the README; field names are a stable interface.

type countsJSON struct {
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
}

func toCounts(c rotate.Counts) countsJSON {
	return countsJSON{c.TxPackets, c.TxBytes, c.RxPackets, c.RxBytes}
}

type remoteJSON struct {
	Addr    string `json:"addr"`
	Country string `json:"country"`
	ASN     uint32 `json:"asn"`
	ASOrg   string `json:"as_org,omitempty"`
	countsJSON
}

type statsJSON struct {
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

type windowJSON struct {
	Start   string       `json:"start"`
	End     string       `json:"end"`
	Remotes []remoteJSON `json:"remotes"`
	Other   countsJSON   `json:"other"`
	Stats   statsJSON    `json:"stats"`
}

func toWindowJSON(w *storage.Window, top int) windowJSON {
	s := w.Stats
	out := windowJSON{
		Start: w.Start.UTC().Format(time.RFC3339), End: w.End().UTC().Format(time.RFC3339),
		Remotes: []remoteJSON{},
		Stats: statsJSON{s.Frames, s.Tallied, s.NonIP, s.Transit, s.Malformed, s.Excluded, s.Local,
			s.Drops, s.Late, s.Folded, ""},
	}
	if !w.GeoBuild.IsZero() {
		out.Stats.GeoBuild = w.GeoBuild.UTC().Format(time.RFC3339)
	}
	other := w.Other
	for i, r := range w.Remotes {
		if top > 0 && i >= top {
			other.Add(r.Counts)
			continue
		}
		out.Remotes = append(out.Remotes, remoteJSON{r.Addr.String(), r.Country, r.ASN, r.ASOrg, toCounts(r.Counts)})
	}
	out.Other = toCounts(other)
	return out
}

func writeWindowsJSON(w io.Writer, ws []*storage.Window, top int) error {
	out := make([]windowJSON, 0, len(ws))
	for _, win := range ws {
		out = append(out, toWindowJSON(win, top))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

var countsHeader = []string{"tx_packets", "tx_bytes", "rx_packets", "rx_bytes"}

func countsRecord(c rotate.Counts) []string {
	return []string{
		strconv.FormatUint(c.TxPackets, 10), strconv.FormatUint(c.TxBytes, 10),
		strconv.FormatUint(c.RxPackets, 10), strconv.FormatUint(c.RxBytes, 10),
	}
}

func writeWindowsCSV(w io.Writer, ws []*storage.Window, top int) error {
	cw := csv.NewWriter(w)
	cw.Write(append([]string{"start", "end", "addr", "country", "asn"}, countsHeader...))
	for _, win := range ws {
		start, end := win.Start.UTC().Format(time.RFC3339), win.End().UTC().Format(time.RFC3339)
		other := win.Other
		for i, r := range win.Remotes {
			if top > 0 && i >= top {
				other.Add(r.Counts)
				continue
			}
			cw.Write(append([]string{start, end, r.Addr.String(), r.Country, strconv.FormatUint(uint64(r.ASN), 10)}, countsRecord(r.Counts)...))
		}
		if !other.IsZero() {
			cw.Write(append([]string{start, end, "other", "", "0"}, countsRecord(other)...))
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeGroupsJSON(w io.Writer, gs []group, by string) error {
	type countryJSON struct {
		Country string `json:"country"`
		Remotes int    `json:"remotes"`
		countsJSON
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if by == "country" {
		out := make([]countryJSON, 0, len(gs))
		for _, g := range gs {
			c := g.Country
			if g.Key == "other" {
				c = "other"
			}
			out = append(out, countryJSON{c, g.Remotes, toCounts(g.Counts)})
		}
		return enc.Encode(out)
	}
	out := make([]remoteJSON, 0, len(gs))
	for _, g := range gs {
		out = append(out, remoteJSON{g.Key, g.Country, g.ASN, g.ASOrg, toCounts(g.Counts)})
	}
	return enc.Encode(out)
}

func writeGroupsCSV(w io.Writer, gs []group, by string) error {
	cw := csv.NewWriter(w)
	if by == "country" {
		cw.Write(append([]string{"country", "remotes"}, countsHeader...))
		for _, g := range gs {
			c := g.Country
			if g.Key == "other" {
				c = "other"
			}
			cw.Write(append([]string{c, strconv.Itoa(g.Remotes)}, countsRecord(g.Counts)...))
		}
	} else {
		cw.Write(append([]string{"addr", "country", "asn"}, countsHeader...))
		for _, g := range gs {
			cw.Write(append([]string{g.Key, g.Country, strconv.FormatUint(uint64(g.ASN), 10)}, countsRecord(g.Counts)...))
		}
	}
	cw.Flush()
	return cw.Error()
}

func cc(c string) string {
	if c == "" {
		return "--"
	}
	return c
}

func pct(part, total uint64) string {
	if total == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(part)/float64(total), 'f', 1, 64) + "%"
}

func writeGroupsTable(w io.Writer, ws []*storage.Window, gs []group, o queryOpts) error {
	var total rotate.Counts
	for _, g := range gs {
		total.Add(g.Counts)
	}
	loc := o.loc()
	fmt.Fprintf(w, "%d windows from %s to %s\n\n", len(ws), fmtTime(ws[0].Start, loc), fmtTime(ws[len(ws)-1].End(), loc))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if o.by == "country" {
		fmt.Fprintln(tw, "COUNTRY\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
		for _, g := range gs {
			name := cc(g.Country)
			if g.Key == "other" {
				name = "other"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, g.Remotes, units.Bytes(g.TxBytes), units.Count(g.TxPackets),
				units.Bytes(g.RxBytes), units.Count(g.RxPackets), pct(g.Bytes(), total.Bytes()))
		}
		fmt.Fprintf(tw, "total\t\t%s\t%s\t%s\t%s\t\t\n", units.Bytes(total.TxBytes), units.Count(total.TxPackets), units.Bytes(total.RxBytes), units.Count(total.RxPackets))
	} else {
		fmt.Fprintln(tw, "REMOTE\tCC\tASN\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
		for _, g := range gs {
			asn := ""
			if g.ASN != 0 {
				asn = "AS" + strconv.FormatUint(uint64(g.ASN), 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", g.Key, cc(g.Country), asn, units.Bytes(g.TxBytes), units.Count(g.TxPackets),
				units.Bytes(g.RxBytes), units.Count(g.RxPackets), pct(g.Bytes(), total.Bytes()))
		}
		fmt.Fprintf(tw, "total\t\t\t%s\t%s\t%s\t%s\t\t\n", units.Bytes(total.TxBytes), units.Count(total.TxPackets), units.Bytes(total.RxBytes), units.Count(total.RxPackets))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeQualityNotes(w, ws)
}

func writeWindowsTable(w io.Writer, ws []*storage.Window, o queryOpts) error {
	loc := o.loc()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WINDOW\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tTOP REMOTE\tDROPS\t")
	var total rotate.Counts
	for _, win := range ws {
		var sum rotate.Counts
		for _, r := range win.Remotes {
			sum.Add(r.Counts)
		}
		sum.Add(win.Other)
		total.Add(sum)
		topName := ""
		if len(win.Remotes) > 0 {
			topName = win.Remotes[0].Addr.String() + " " + cc(win.Remotes[0].Country)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t\n", win.Start.In(loc).Format("2006-01-02 15:04:05"),
			len(win.Remotes)+int(win.Stats.Folded), units.Bytes(sum.TxBytes), units.Count(sum.TxPackets),
			units.Bytes(sum.RxBytes), units.Count(sum.RxPackets), topName, win.Stats.Drops)
	}
	fmt.Fprintf(tw, "total\t\t%s\t%s\t%s\t%s\t\t\t\n", units.Bytes(total.TxBytes), units.Count(total.TxPackets), units.Bytes(total.RxBytes), units.Count(total.RxPackets))
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeQualityNotes(w, ws)
}

// writeQualityNotes says under a table when its numbers are incomplete.
func writeQualityNotes(w io.Writer, ws []*storage.Window) error {
	var s rotate.Stats
	dropWins, foldWins := 0, 0
	for _, win := range ws {
		s.Add(win.Stats)
		if win.Stats.Drops > 0 {
			dropWins++
		}
		if win.Stats.Folded > 0 {
			foldWins++
		}
	}
	if s.Drops > 0 {
		fmt.Fprintf(w, "note: the kernel dropped %d frames in %d of these windows; the counts above miss them\n", s.Drops, dropWins)
	}
	if s.Folded > 0 {
		fmt.Fprintf(w, "note: %d remotes in %d windows were over --max-remotes and are summed in 'other'\n", s.Folded, foldWins)
	}
	if s.Late > 0 {
		fmt.Fprintf(w, "note: %d frames arrived after their window closed and were counted in the next one\n", s.Late)
	}
	return nil
}

package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstwatch/dstwatch/fleet"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// writeQuery prints ws (oldest first, as stored) as o asks. Both ways of
// reading, API and file, end here, so their output cannot differ.
func writeQuery(w io.Writer, ws []*window.Window, o queryOpts) error {
	if o.by == query.ByWindow {
		shown := make([]*window.Window, len(ws))
		for i, win := range ws {
			win = o.filter.Apply(win)
			if o.sort != query.SortBytes {
				c := *win
				c.Remotes = append([]window.Remote(nil), win.Remotes...)
				query.SortRemotes(&c, o.sort)
				win = &c
			}
			if o.format != "table" { // the table shows each window's counts, not its remotes
				win = query.TopRemotes(win, o.top)
			}
			shown[i] = win
		}
		switch o.format {
		case "json":
			out := make([]query.WindowJSON, 0, len(shown))
			for _, win := range shown {
				out = append(out, query.ToWindowJSON(win))
			}
			return encodeJSON(w, out)
		case "csv":
			return writeWindowsCSV(w, shown)
		}
		return writeWindowsTable(w, shown, o)
	}
	a, err := query.NewAggregatorFor(query.Question{By: o.by, Loc: o.location(), Prefix4: o.prefix4, Prefix6: o.prefix6})
	if err != nil {
		return err
	}
	for _, win := range ws {
		a.Add(o.filter.Apply(win))
	}
	return writeAnswer(w, io.Discard, query.Top(a.Rows(o.sort), o.top), a.Summary(), o)
}

// writeAnswer prints aggregate rows and the summary of what they were read
// from. The daemon's /v1/aggregate and a read of the file both end here.
// Where the range was answered at a coarser resolution than raw windows,
// a table says so under it; json and csv keep their shape and say it on
// stderr.
func writeAnswer(w, stderr io.Writer, rows []query.Row, sum query.Summary, o queryOpts) error {
	switch o.format {
	case "json", "csv":
		if note := resolutionNote(sum, o.location()); note != "" {
			fmt.Fprintf(stderr, "dstwatch query: %s\n", note)
		}
		if note := damageNote(sum); note != "" {
			fmt.Fprintf(stderr, "dstwatch query: %s\n", note)
		}
		if o.format == "json" && o.by == fleet.ByHost {
			return encodeJSON(w, hostRowsJSON(rows)) // fleet.go
		}
		if o.format == "json" {
			return encodeJSON(w, query.RowsJSON(rows, o.by))
		}
		return writeRowsCSV(w, rows, o.by)
	}
	return writeRowsTable(w, sum, rows, o)
}

// damageNote names the damaged windows and rollups an answer skipped; ""
// when there were none.
func damageNote(sum query.Summary) string {
	if len(sum.Damaged) == 0 {
		return ""
	}
	const show = 3
	var names []string
	for _, d := range sum.Damaged[:min(len(sum.Damaged), show)] {
		names = append(names, d.String())
	}
	more := ""
	if n := len(sum.Damaged) - show; n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	return fmt.Sprintf("damaged in the database and left out, its counts are missing: %s%s (dstwatch compact drops damaged values)",
		strings.Join(names, ", "), more)
}

// resolutionNote is "" for an answer that is exactly the raw windows'.
func resolutionNote(sum query.Summary, loc *time.Location) string {
	if sum.Resolution == window.Raw {
		return ""
	}
	if sum.RawFrom.IsZero() {
		return fmt.Sprintf("answered at %s resolution: no raw windows are kept", sum.Resolution)
	}
	return fmt.Sprintf("answered at %s resolution: raw windows before %s were pruned", sum.Resolution, fmtTime(sum.RawFrom, loc))
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var countsHeader = []string{"tx_packets", "tx_bytes", "rx_packets", "rx_bytes"}

func countsRecord(c window.Counts) []string {
	return []string{
		strconv.FormatUint(c.TxPackets, 10), strconv.FormatUint(c.TxBytes, 10),
		strconv.FormatUint(c.RxPackets, 10), strconv.FormatUint(c.RxBytes, 10),
	}
}

func writeWindowsCSV(w io.Writer, ws []*window.Window) error {
	cw := csv.NewWriter(w)
	cw.Write(append([]string{"start", "end", "addr", "country", "asn"}, countsHeader...))
	for _, win := range ws {
		start, end := win.Start.UTC().Format(time.RFC3339), win.End().UTC().Format(time.RFC3339)
		for _, r := range win.Remotes {
			cw.Write(append([]string{start, end, r.Addr.String(), r.Country, strconv.FormatUint(uint64(r.ASN), 10)}, countsRecord(r.Counts)...))
		}
		if !win.Other.IsZero() {
			cw.Write(append([]string{start, end, query.OtherKey, "", "0"}, countsRecord(win.Other)...))
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeRowsCSV(w io.Writer, rows []query.Row, by query.By) error {
	cw := csv.NewWriter(w)
	switch by {
	case query.ByHour, query.ByDay, query.ByWeek, query.ByMonth:
		cw.Write(append([]string{"start", "end", "remotes", "remotes_exact"}, countsHeader...))
		for _, r := range rows {
			cw.Write(append([]string{r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339),
				strconv.Itoa(r.Remotes), strconv.FormatBool(!r.Inexact)}, countsRecord(r.Counts)...))
		}
	case query.ByPrefix:
		cw.Write(append([]string{"prefix", "remotes"}, countsHeader...))
		for _, r := range rows {
			cw.Write(append([]string{r.Key, strconv.Itoa(r.Remotes)}, countsRecord(r.Counts)...))
		}
	case query.ByCountry:
		cw.Write(append([]string{"country", "remotes"}, countsHeader...))
		for _, r := range rows {
			c := r.Country
			if r.IsOther() {
				c = query.OtherKey
			}
			cw.Write(append([]string{c, strconv.Itoa(r.Remotes)}, countsRecord(r.Counts)...))
		}
	case fleet.ByHost:
		cw.Write(append([]string{"host", "remotes"}, countsHeader...))
		for _, r := range rows {
			cw.Write(append([]string{r.Key, strconv.Itoa(r.Remotes)}, countsRecord(r.Counts)...))
		}
	case query.ByASN:
		cw.Write(append([]string{"asn", "as_org", "remotes"}, countsHeader...))
		for _, r := range rows {
			asn := strconv.FormatUint(uint64(r.ASN), 10)
			if r.IsOther() {
				asn = query.OtherKey
			}
			cw.Write(append([]string{asn, r.ASOrg, strconv.Itoa(r.Remotes)}, countsRecord(r.Counts)...))
		}
	default:
		cw.Write(append([]string{"addr", "country", "asn"}, countsHeader...))
		for _, r := range rows {
			cw.Write(append([]string{r.Key, r.Country, strconv.FormatUint(uint64(r.ASN), 10)}, countsRecord(r.Counts)...))
		}
	}
	cw.Flush()
	return cw.Error()
}

func asName(asn uint32) string {
	if asn == 0 {
		return ""
	}
	return "AS" + strconv.FormatUint(uint64(asn), 10)
}

// describeFilter is the line that says what a table leaves out; "" for none.
func describeFilter(f query.Filter) string {
	var parts []string
	if len(f.Remotes) > 0 {
		var ps []string
		for _, p := range f.Remotes {
			ps = append(ps, p.String())
		}
		parts = append(parts, "remote "+strings.Join(ps, ", "))
	}
	if len(f.Countries) > 0 {
		parts = append(parts, "country "+strings.Join(f.Countries, ", "))
	}
	if len(f.ASNs) > 0 {
		var as []string
		for _, a := range f.ASNs {
			as = append(as, "AS"+strconv.FormatUint(uint64(a), 10))
		}
		parts = append(parts, "asn "+strings.Join(as, ", "))
	}
	switch f.Direction {
	case query.Tx:
		parts = append(parts, "tx only")
	case query.Rx:
		parts = append(parts, "rx only")
	}
	if len(parts) == 0 {
		return ""
	}
	return "only " + strings.Join(parts, "; ")
}

func writeHeader(w io.Writer, sum query.Summary, o queryOpts) {
	loc := o.location()
	fmt.Fprintf(w, "%s from %s to %s\n", describeUnits(sum), fmtTime(sum.First, loc), fmtTime(sum.Last, loc))
	if d := describeFilter(o.filter); d != "" {
		fmt.Fprintln(w, d)
	}
	fmt.Fprintln(w)
}

// describeUnits says what an answer was read from: "N windows", or the
// rollups and windows when rollups were read.
func describeUnits(sum query.Summary) string {
	if !sum.Rollups() {
		return fmt.Sprintf("%d windows", sum.Windows)
	}
	var parts []string
	plural := func(n int, one, many string) {
		if n == 1 {
			parts = append(parts, "1 "+one)
		} else if n > 1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	plural(sum.Days, "daily rollup", "daily rollups")
	plural(sum.Hours, "hourly rollup", "hourly rollups")
	plural(sum.Windows, "window", "windows")
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func totalsLine(lead string, t window.Counts) string {
	return fmt.Sprintf("%s%s\t%s\t%s\t%s\t", lead, units.Bytes(t.TxBytes), units.Count(t.TxPackets), units.Bytes(t.RxBytes), units.Count(t.RxPackets))
}

func (o queryOpts) weight(c window.Counts) uint64 {
	if o.sort == query.SortPackets {
		return c.Packets()
	}
	return c.Bytes()
}

func writeRowsTable(w io.Writer, sum query.Summary, rows []query.Row, o queryOpts) error {
	var total window.Counts
	for _, r := range rows {
		total.Add(r.Counts)
	}
	writeHeader(w, sum, o)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(lead string, r query.Row) {
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t\n", lead, units.Bytes(r.TxBytes), units.Count(r.TxPackets),
			units.Bytes(r.RxBytes), units.Count(r.RxPackets), pct(o.weight(r.Counts), o.weight(total)))
	}
	switch o.by {
	case query.ByHour, query.ByDay, query.ByWeek, query.ByMonth:
		fmt.Fprintf(tw, "%s\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t\n", strings.ToUpper(string(o.by)))
		for _, r := range rows {
			line(fmt.Sprintf("%s\t%s\t", periodName(o.by, r.Start, o.location()), remotesCell(r)), r)
		}
		fmt.Fprintln(tw, totalsLine("total\t\t", total)+"\t")
	case query.ByPrefix:
		fmt.Fprintln(tw, "PREFIX\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
		for _, r := range rows {
			line(fmt.Sprintf("%s\t%d\t", r.Key, r.Remotes), r)
		}
		fmt.Fprintln(tw, totalsLine("total\t\t", total)+"\t")
	case query.ByCountry:
		fmt.Fprintln(tw, "COUNTRY\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
		for _, r := range rows {
			name := cc(r.Country)
			if r.IsOther() {
				name = query.OtherKey
			}
			line(fmt.Sprintf("%s\t%d\t", name, r.Remotes), r)
		}
		fmt.Fprintln(tw, totalsLine("total\t\t", total)+"\t")
	case query.ByASN:
		fmt.Fprintln(tw, "ASN\tORGANISATION\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
		for _, r := range rows {
			name := asName(r.ASN)
			switch {
			case r.IsOther():
				name = query.OtherKey
			case r.ASN == 0:
				name = "unknown"
			}
			line(fmt.Sprintf("%s\t%s\t%d\t", name, r.ASOrg, r.Remotes), r)
		}
		fmt.Fprintln(tw, totalsLine("total\t\t\t", total)+"\t")
	case fleet.ByHost:
		fmt.Fprintln(tw, "HOST\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
		for _, r := range rows {
			line(fmt.Sprintf("%s\t%d\t", r.Key, r.Remotes), r)
		}
		fmt.Fprintln(tw, totalsLine("total\t\t", total)+"\t")
	case query.ByRemote:
		if o.names != nil {
			return writeNamedRemotes(w, tw, sum, rows, total, o, line)
		}
		fallthrough
	default:
		fmt.Fprintln(tw, "REMOTE\tCC\tASN\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
		for _, r := range rows {
			country := cc(r.Country)
			if r.IsOther() {
				country = ""
			}
			line(fmt.Sprintf("%s\t%s\t%s\t", r.Key, country, asName(r.ASN)), r)
		}
		fmt.Fprintln(tw, totalsLine("total\t\t\t", total)+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeQualityNotes(w, sum, o)
}

func writeWindowsTable(w io.Writer, ws []*window.Window, o queryOpts) error {
	loc := o.location()
	var total window.Counts
	sums := make([]window.Counts, len(ws))
	for i, win := range ws {
		for _, r := range win.Remotes {
			sums[i].Add(r.Counts)
		}
		sums[i].Add(win.Other)
		total.Add(sums[i])
	}
	sum := query.Summarize(ws)
	writeHeader(w, sum, o)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WINDOW\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\tTOP REMOTE\tDROPS\tPARTIAL\t")
	for i, win := range ws {
		sum := sums[i]
		topName := ""
		if len(win.Remotes) > 0 {
			topName = win.Remotes[0].Addr.String() + " " + cc(win.Remotes[0].Country)
		}
		// With a filter, folded remotes are not shown, so they are not counted.
		remotes := len(win.Remotes)
		if !o.filter.SelectsRemotes() {
			remotes += int(win.Stats.Folded)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", win.Start.In(loc).Format("2006-01-02 15:04:05 MST"),
			remotes, units.Bytes(sum.TxBytes), units.Count(sum.TxPackets),
			units.Bytes(sum.RxBytes), units.Count(sum.RxPackets), pct(o.weight(sum), o.weight(total)), topName, win.Stats.Drops, win.Stats.Partial)
	}
	fmt.Fprintln(tw, totalsLine("total\t\t", total)+"\t\t\t\t")
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeQualityNotes(w, sum, o)
}

// writeNamedRemotes is the remote table with a NAME column (--names): each
// remote's reverse-DNS name, looked up now (rdns bounds and times the
// lookups), shown, never stored.
func writeNamedRemotes(w io.Writer, tw *tabwriter.Writer, sum query.Summary, rows []query.Row, total window.Counts, o queryOpts, line func(string, query.Row)) error {
	addr := func(r *query.Row) netip.Addr {
		if r.Addr.IsValid() {
			return r.Addr
		}
		a, _ := netip.ParseAddr(r.Key) // rows read from the daemon carry the key only
		return a
	}
	var addrs []netip.Addr
	for i := range rows {
		if a := addr(&rows[i]); a.IsValid() && !rows[i].IsOther() {
			addrs = append(addrs, a)
		}
	}
	names := o.names.Names(context.Background(), addrs)
	fmt.Fprintln(tw, "REMOTE\tNAME\tCC\tASN\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
	for _, r := range rows {
		country, name := cc(r.Country), names[addr(&r)]
		if r.IsOther() {
			country, name = "", ""
		} else if name == "" {
			name = "-"
		}
		line(fmt.Sprintf("%s\t%s\t%s\t%s\t", r.Key, name, country, asName(r.ASN)), r)
	}
	fmt.Fprintln(tw, totalsLine("total\t\t\t\t", total)+"\t")
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeQualityNotes(w, sum, o)
}

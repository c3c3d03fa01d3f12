package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// TimeFormat is how reports print times.
const TimeFormat = "2006-01-02 15:04 MST"

// Title names the report's range.
func (r *Report) Title(loc *time.Location) string {
	return fmt.Sprintf("dstwatch report %s to %s", r.From.In(loc).Format(TimeFormat), r.To.In(loc).Format(TimeFormat))
}

// Notes are the data-quality notes: what the numbers miss or blur.
func (r *Report) Notes(loc *time.Location) []string {
	var out []string
	s := r.Summary
	if s.Stats.Drops > 0 {
		out = append(out, fmt.Sprintf("the kernel dropped %d frames in %d windows or rollups; the counts miss them", s.Stats.Drops, s.DropUnits))
	} else {
		out = append(out, "no frames dropped by the kernel")
	}
	if s.PartialUnits > 0 {
		out = append(out, fmt.Sprintf("%d windows or rollups were watched for only part of their time (the daemon started or stopped inside them, or a capture was down); their counts are not quiet traffic", s.PartialUnits))
	}
	if s.Stats.Folded > 0 {
		out = append(out, fmt.Sprintf("overflow: %d remotes in %d windows were over --max-remotes and are summed in 'other'", s.Stats.Folded, s.FoldUnits))
	}
	if s.Capped > 0 {
		out = append(out, fmt.Sprintf("overflow: %d remote entries were over the rollups' caps and are summed in 'other'", s.Capped))
	}
	if s.Stats.Oversize > 0 || s.Stats.Spoofed > 0 {
		out = append(out, fmt.Sprintf("not counted: %d frames whose IP length was larger than the wire carried (forged), %d received with this host's own address as source (spoofed)", s.Stats.Oversize, s.Stats.Spoofed))
	}
	if s.Stats.Late > 0 {
		out = append(out, fmt.Sprintf("%d frames arrived after their window closed and were counted in the next one", s.Stats.Late))
	}
	if n := len(s.Damaged); n > 0 {
		out = append(out, fmt.Sprintf("%d stored windows or rollups are damaged and left out, their counts are missing (the first: %s); dstwatch compact drops them", n, s.Damaged[0]))
	}
	if s.Resolution != window.Raw {
		out = append(out, fmt.Sprintf("answered at %s resolution: raw windows before %s were pruned", s.Resolution, s.RawFrom.In(loc).Format(TimeFormat)))
	}
	if r.Windows > 0 && r.RawFrom.After(r.From) && s.Resolution == window.Raw && len(r.Gaps) > 0 && r.Gaps[0].From.Equal(r.From) && r.Gaps[0].To.Equal(r.RawFrom) {
		// said by the gap itself
	} else if r.Windows > 0 && r.RawFrom.After(r.From.Add(r.Window)) {
		out = append(out, fmt.Sprintf("raw windows begin %s: the chart and the busiest windows cover only the time from then", r.RawFrom.In(loc).Format(TimeFormat)))
	}
	if st := r.Stored; st != nil {
		// What a fresh install's "yesterday" needs to say: where the data is.
		if st.Windows > 0 {
			out = append(out, fmt.Sprintf("nothing is stored in this range: the database holds %d windows, the first starting %s, the last %s",
				st.Windows, st.First.In(loc).Format(TimeFormat), st.Last.In(loc).Format(TimeFormat)))
		} else {
			out = append(out, "nothing is stored in this range: the database holds no windows yet")
		}
	}
	switch n := len(r.Gaps); {
	case n == 0 && r.Stored != nil:
	case n == 0:
		out = append(out, "no gaps: windows cover the whole range")
	default:
		out = append(out, fmt.Sprintf("%d gaps without windows (the daemon was not running), %s in all", n, Duration(r.GapTime())))
	}
	return out
}

// Duration prints d to the second: 1d2h, 1d2h3m, 3h4m, 7h14m40s, 5m6s or
// 7s. Smaller units are shown when not zero rather than cut off, so the
// gaps listed add up to their total (which once read 7h14m for the only
// gap but 7h15m in all).
func Duration(d time.Duration) string {
	d = d.Round(time.Second)
	day := 24 * time.Hour
	h, m, sec := (d%day)/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	var s string
	switch {
	case d >= day:
		s = fmt.Sprintf("%dd%dh", d/day, h)
		if m > 0 || sec > 0 {
			s += fmt.Sprintf("%dm", m)
		}
	case d >= time.Hour:
		s = fmt.Sprintf("%dh%dm", d/time.Hour, m)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", m, sec)
	default:
		return fmt.Sprintf("%ds", sec)
	}
	if sec > 0 {
		s += fmt.Sprintf("%ds", sec)
	}
	return s
}

// CC prints a country code, -- for unknown.
func CC(c string) string {
	if c == "" {
		return "--"
	}
	return c
}

// RowName is what a row of grouping by is called in a table.
func RowName(row query.Row, by query.By) string {
	if row.IsOther() {
		return query.OtherKey
	}
	switch by {
	case query.ByCountry:
		return CC(row.Country)
	case query.ByASN:
		if row.ASN == 0 {
			return "unknown"
		}
		return "AS" + strconv.FormatUint(uint64(row.ASN), 10)
	}
	return row.Key
}

// ServiceName is a service row's name; the folded rest is "other".
func ServiceName(s query.ServiceRow) string {
	if s.Remotes == query.OtherService {
		return query.OtherKey
	}
	name := s.Name()
	if side := s.Key.Side().String(); side != "" {
		name += " " + side
	}
	return name
}

func share(part, total uint64) string {
	if total == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(part)/float64(total), 'f', 1, 64) + "%"
}

// WriteText writes the report as plain text, for a terminal or a cron mail.
func (r *Report) WriteText(w io.Writer, loc *time.Location) error {
	fmt.Fprintln(w, r.Title(loc))
	fmt.Fprintln(w, strings.Repeat("=", len(r.Title(loc))))
	fmt.Fprintln(w)
	t := r.Total
	fmt.Fprintf(w, "Sent:     %s in %s packets\n", units.Bytes(t.TxBytes), units.Count(t.TxPackets))
	fmt.Fprintf(w, "Received: %s in %s packets\n", units.Bytes(t.RxBytes), units.Count(t.RxPackets))
	fmt.Fprintf(w, "Exact:    tx_bytes=%d tx_packets=%d rx_bytes=%d rx_packets=%d\n", t.TxBytes, t.TxPackets, t.RxBytes, t.RxPackets)
	fmt.Fprintf(w, "Read from %s\n", describeUnits(r.Summary))

	table := func(title, head string, rows [][]string, counts []window.Counts) {
		fmt.Fprintf(w, "\n%s\n\n", title)
		if len(rows) == 0 {
			fmt.Fprintln(w, "  (none)")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, head+"\tTX BYTES\tRX BYTES\tTX PKTS\tRX PKTS\tSHARE\t")
		for i, row := range rows {
			c := counts[i]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", strings.Join(row, "\t"), units.Bytes(c.TxBytes), units.Bytes(c.RxBytes),
				units.Count(c.TxPackets), units.Count(c.RxPackets), share(c.Bytes(), t.Bytes()))
		}
		tw.Flush()
	}
	var rows [][]string
	var cs []window.Counts
	for _, row := range r.Remotes {
		rows = append(rows, []string{RowName(row, query.ByRemote), CC(row.Country)})
		if row.IsOther() {
			rows[len(rows)-1][1] = ""
		}
		cs = append(cs, row.Counts)
	}
	table("Top remotes", "REMOTE\tCC", rows, cs)
	rows, cs = nil, nil
	for _, row := range r.Countries {
		rows = append(rows, []string{RowName(row, query.ByCountry), strconv.Itoa(row.Remotes)})
		cs = append(cs, row.Counts)
	}
	table("Top countries", "COUNTRY\tREMOTES", rows, cs)
	rows, cs = nil, nil
	for _, row := range r.ASNs {
		rows = append(rows, []string{RowName(row, query.ByASN), row.ASOrg})
		cs = append(cs, row.Counts)
	}
	table("Top ASes", "ASN\tORGANISATION", rows, cs)
	rows, cs = nil, nil
	for _, s := range r.Services {
		rows = append(rows, []string{ServiceName(s)})
		cs = append(cs, s.Counts)
	}
	table("Top services", "SERVICE", rows, cs)

	fmt.Fprintf(w, "\nBusiest windows\n\n")
	if len(r.Busiest) == 0 {
		fmt.Fprintln(w, "  (no raw windows in the range)")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Busiest) > 0 {
		fmt.Fprintln(tw, "WINDOW\tLENGTH\tTX BYTES\tRX BYTES\tTX RATE\tRX RATE\t")
	}
	for _, b := range r.Busiest {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", b.Start.In(loc).Format("2006-01-02 15:04:05"), Duration(b.Length),
			units.Bytes(b.TxBytes), units.Bytes(b.RxBytes), Rate(b.TxBytes, b.Length), Rate(b.RxBytes, b.Length))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nData quality\n\n")
	for _, n := range r.Notes(loc) {
		fmt.Fprintf(w, "- %s\n", n)
	}
	for i, g := range r.Gaps {
		if i == 20 {
			fmt.Fprintf(w, "  ... and %d more gaps\n", len(r.Gaps)-i)
			break
		}
		fmt.Fprintf(w, "  gap %s to %s (%s)\n", g.From.In(loc).Format("2006-01-02 15:04:05"), g.To.In(loc).Format("2006-01-02 15:04:05 MST"), Duration(g.To.Sub(g.From)))
	}
	_, err := fmt.Fprintf(w, "\nGenerated %s by dstwatch.\n", r.Generated.In(loc).Format(TimeFormat))
	return err
}

// Rate is bytes over d as a rate: 1.2 kB/s.
func Rate(b uint64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return units.Bytes(uint64(float64(b)/d.Seconds()+0.5)) + "/s"
}

func describeUnits(s query.Summary) string {
	parts := []string{}
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(s.Days, "daily rollup", "daily rollups")
	add(s.Hours, "hourly rollup", "hourly rollups")
	add(s.Windows, "window", "windows")
	if len(parts) == 0 {
		return "no stored windows"
	}
	return strings.Join(parts, ", ")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
)

const statusHelp = `Usage: dstwatch status [flags]

Prints the running daemon's state, asked over its API socket: version,
uptime, interfaces and local addresses, kernel drops, the writer's backlog,
the GeoIP databases' build dates and the database's size and extent, with
what each tier of history holds (raw windows, hourly and daily rollups).

When no daemon runs, status says so and answers what it can from the
database itself: its size, what each tier holds, and the newest window.

Exit status: 0 when the daemon answered, 3 when no daemon runs (nobody
listens on the socket; the database's part is still printed), 1 on other
errors.

Examples:
  dstwatch status
  dstwatch status --db /srv/dstwatch/dstwatch.db
  dstwatch status --format json
`

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", statusHelp, stdout)
	db := fs.String("db", defaultDB(), "the daemon's database `file`, to find its socket")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	format := fs.String("format", "text", "output: text or json")
	utc := fs.Bool("utc", false, "show times in UTC instead of local time")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("%w: --format %q: want text or json", errUsage, *format)
	}
	sock := socketFor(*socket, *db)
	loc := time.Local
	if *utc {
		loc = time.UTC
	}
	_, st, err := dialDaemon(ctx, sock)
	if errors.Is(err, api.ErrNotRunning) {
		// Still exit 3, but say what the database holds.
		return offlineStatus(stdout, *db, sock, *format, loc) // status_offline.go
	}
	if err != nil {
		return err
	}
	if *format == "json" {
		return encodeJSON(stdout, st)
	}
	writeStatus(stdout, st, loc)
	return nil
}

// describeTier is one tier's line under "database" in status.
func describeTier(s api.TierStats, unit string, loc *time.Location) string {
	if s.Units == 0 {
		return "no " + unit
	}
	return fmt.Sprintf("%d %s from %s to %s, %s", s.Units, unit, showTime(s.First, loc), showTime(s.Last, loc), units.Bytes(uint64(max(s.Bytes, 0))))
}

// showTime turns an API time into a local one; unparsable text is shown as is.
func showTime(s string, loc *time.Location) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return fmtTime(t, loc)
}

func writeStatus(w io.Writer, st api.Status, loc *time.Location) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	up := (time.Duration(st.UptimeSeconds) * time.Second).String()
	fmt.Fprintf(tw, "dstwatch\t%s, running since %s (up %s)\n", st.Version, showTime(st.Started, loc), up)
	from := strings.Join(st.Interfaces, ", ")
	if st.Read != "" {
		from = "file " + st.Read
	}
	fmt.Fprintf(tw, "capturing\t%s, %ds windows\n", from, st.WindowSeconds)
	fmt.Fprintf(tw, "local\t%s\n", strings.Join(st.Local, ", "))
	if st.Read == "" {
		fmt.Fprintf(tw, "kernel\t%d frames received, %d dropped\n", st.Kernel.Received, st.Kernel.Drops)
		if st.Capture.Gaps > 0 || len(st.Capture.Down) > 0 {
			fmt.Fprintf(tw, "outages\t%d since start", st.Capture.Gaps)
			if len(st.Capture.Down) > 0 {
				fmt.Fprintf(tw, "; not capturing now on %s", strings.Join(st.Capture.Down, ", "))
			}
			fmt.Fprintln(tw)
		}
	}
	last := "none yet"
	if st.Writer.LastStored != "" {
		last = "newest " + showTime(st.Writer.LastStored, loc)
	}
	fmt.Fprintf(tw, "writer\t%d windows stored (%s), backlog %d, %d store errors, %d windows dropped\n",
		st.Writer.WindowsStored, last, st.Writer.Backlog, st.Writer.Errors, st.Writer.Dropped)
	if st.Writer.Failing != "" {
		fmt.Fprintf(tw, "failing\t%s\n", st.Writer.Failing)
	}
	if al := st.Alerts; al != nil {
		fmt.Fprintf(tw, "alerts\t%s\n", describeAlerts(*al))
	}
	writeExportStatus(tw, st.Export) // fleet.go
	if len(st.GeoIP) == 0 {
		fmt.Fprintf(tw, "geoip\tnone: countries are off\n")
	}
	for _, g := range st.GeoIP {
		build := g.Build
		if t, err := time.Parse(time.RFC3339, g.Build); err == nil {
			build = t.Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "geoip\t%s (%s, built %s)\n", g.Path, g.Type, build)
	}
	writeDBStatus(tw, st, loc)
	tw.Flush()
}

// writeDBStatus is status's database part: the file, its tiers and damage.
func writeDBStatus(tw *tabwriter.Writer, st api.Status, loc *time.Location) {
	extent := "no windows yet"
	if st.DB.Windows > 0 {
		extent = fmt.Sprintf("%d windows from %s to %s", st.DB.Windows, showTime(st.DB.First, loc), showTime(st.DB.Last, loc))
	}
	fmt.Fprintf(tw, "database\t%s, %s, %s\n", st.DB.Path, units.Bytes(uint64(max(st.DB.SizeBytes, 0))), extent)
	if t := st.DB.Tiers; t != nil {
		for _, tier := range []struct {
			name, unit string
			s          api.TierStats
		}{{"raw", "windows", t.Windows}, {"hourly", "rollups", t.Hours}, {"daily", "rollups", t.Days}} {
			fmt.Fprintf(tw, "  %s\t%s\n", tier.name, describeTier(tier.s, tier.unit, loc))
		}
	}
	if len(st.DB.Damaged) > 0 {
		fmt.Fprintf(tw, "  damaged\t%d values skipped: %s (stop the daemon and run dstwatch compact to drop them)\n",
			len(st.DB.Damaged), strings.Join(st.DB.Damaged, ", "))
	}
}

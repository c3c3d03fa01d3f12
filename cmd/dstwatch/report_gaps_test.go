package main

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// windowsDB stores one-remote 20-second windows starting at starts.
func windowsDB(t *testing.T, starts ...time.Time) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gaps.db")
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ws []*window.Window
	for _, s := range starts {
		ws = append(ws, &window.Window{Start: s, Length: 20 * time.Second, Remotes: []window.Remote{
			{Addr: netip.MustParseAddr("198.51.100.7"), Country: "NL", Counts: counts(1, 100, 1, 100)}}})
	}
	if err := d.Put(ws); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Gap durations are shown to the second, so that they add up to the total
// the notes give (7h14m40s was listed as 7h14m).
func TestReportGapsAddUp(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		starts []time.Time
		to     time.Time
		want   []string
	}{
		{"the only gap", []time.Time{t0, t0.Add(7*time.Hour + 15*time.Minute)}, t0.Add(7*time.Hour + 15*time.Minute + 20*time.Second), []string{
			"- 1 gaps without windows (the daemon was not running), 7h14m40s in all\n",
			"  gap 2026-03-01 00:00:20 to 2026-03-01 07:15:00 UTC (7h14m40s)\n",
		}},
		{"two gaps", []time.Time{t0, t0.Add(time.Hour + time.Minute), t0.Add(2*time.Hour + 2*time.Minute)}, t0.Add(2*time.Hour + 2*time.Minute + 20*time.Second), []string{
			"- 2 gaps without windows (the daemon was not running), 2h1m20s in all\n",
			"  gap 2026-03-01 00:00:20 to 2026-03-01 01:01:00 UTC (1h0m40s)\n",
			"  gap 2026-03-01 01:01:20 to 2026-03-01 02:02:00 UTC (1h0m40s)\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := windowsDB(t, tc.starts...)
			code, out, stderr := runCmd(t, "report", "--db", db, "--utc", "--from", rfc(t0), "--to", rfc(tc.to))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("report lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// A report of a period with no data (a fresh install's yesterday) says
// what the database does hold, as query does.
func TestReportNoData(t *testing.T) {
	db := goldenDB(t)
	code, out, stderr := runCmd(t, "report", "--db", db, "--utc", "--from", "2026-10-24", "--to", "2026-10-25")
	want := "- nothing is stored in this range: the database holds 4 windows, the first starting 2026-10-25 00:00 UTC, the last 2026-10-25 01:30 UTC\n"
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "  gap 2026-10-24 00:00:00 to 2026-10-25 00:00:00 UTC (1d0h)\n") {
		t.Errorf("exit %d %s; want %q and the day as a gap:\n%s", code, stderr, want, out)
	}
	// Wide and empty: the title keeps the range asked for.
	code, out, stderr = runCmd(t, "report", "--db", db, "--utc", "--from", "2030-01-01", "--to", "2100-01-01")
	if code != 0 || !strings.Contains(out, want) || !strings.HasPrefix(out, "dstwatch report 2030-01-01 00:00 UTC to 2100-01-01 00:00 UTC\n") ||
		strings.Contains(out, "gap ") {
		t.Errorf("wide: exit %d %s:\n%s", code, stderr, out)
	}
	// Wide with data: the stored part, as asked exactly.
	code, wide, _ := runCmd(t, "report", "--db", db, "--utc", "--from", "2020-01-01", "--to", "2100-01-01")
	if code != 0 || !strings.Contains(wide, "Exact:    tx_bytes=101054620 tx_packets=72457") {
		t.Errorf("wide with data: exit %d:\n%s", code, wide)
	}
	empty := t.TempDir() + "/fresh.db"
	d, err := storage.Open(empty, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	code, out, _ = runCmd(t, "report", "--db", empty, "--utc", "--from", "2026-10-24", "--to", "2026-10-25")
	if code != 0 || !strings.Contains(out, "- nothing is stored in this range: the database holds no windows yet\n") {
		t.Errorf("fresh database: exit %d:\n%s", code, out)
	}
}

// Where raw windows were pruned, the rollups still show the daemon ran: a
// gap at the start of the range ends where the first rollup begins, not
// where the raw windows do.
func TestReportGapBeforeRollups(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "pruned.db")
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ws []*window.Window
	for s := t0; s.Before(t0.Add(72 * time.Hour)); s = s.Add(5 * time.Minute) {
		ws = append(ws, &window.Window{Start: s, Length: 5 * time.Minute, Remotes: []window.Remote{
			{Addr: netip.MustParseAddr("198.51.100.7"), Counts: counts(1, 100, 1, 100)}}})
	}
	if err := d.Put(ws); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PruneTiers(ws[len(ws)-1].Start, storage.Retention{Windows: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	code, out, stderr := runCmd(t, "report", "--db", path, "--utc", "--from", rfc(t0.Add(-2*time.Hour)), "--to", rfc(t0.Add(72*time.Hour)))
	for _, want := range []string{
		"- 1 gaps without windows (the daemon was not running), 2h0m in all\n",
		"  gap 2026-02-28 22:00:00 to 2026-03-01 00:00:00 UTC (2h0m)\n",
		"- raw windows begin 2026-03-02 23:00 UTC: the chart and the busiest windows cover only the time from then\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d %s: report lacks %q:\n%s", code, stderr, want, out)
		}
	}
}

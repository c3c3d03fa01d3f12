package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// runIn runs the real binary with TZ=zone. Setting time.Local in this
// process instead would race with goroutines that earlier tests' servers
// leave winding down (the race detector saw it).
func runIn(t *testing.T, zone string, args ...string) (int, string, string) {
	t.Helper()
	if _, err := time.LoadLocation(zone); err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "TZ="+zone)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// Totals per period as tables, json and csv, the same from the file and
// through the daemon's API, in local time across the end of summer time
// (the golden windows' 02:00-03:00 happens twice in Berlin).
func TestQueryPeriodsGolden(t *testing.T) {
	db := goldenDB(t)
	rng := []string{"--db", db, "--from", "2026-10-25T00:00:00Z", "--to", "2026-10-25T02:00:00Z"}
	cases := []struct {
		name string
		args []string
	}{
		{"hour", []string{"--by", "hour"}},
		{"hour-utc", []string{"--by", "hour", "--utc"}},
		{"day", []string{"--by", "day"}},
		{"week-rx", []string{"--by", "week", "--direction", "rx"}},
		{"month-csv", []string{"--by", "month", "--format", "csv"}},
		{"day-json", []string{"--by", "day", "--format", "json"}},
		{"prefix", []string{"--by", "prefix"}},
		{"prefix-16-32", []string{"--by", "prefix", "--prefix4", "16", "--prefix6", "32", "--utc"}},
		{"prefix-json", []string{"--by", "prefix", "--format", "json", "--top", "2"}},
	}
	type result struct {
		code     int
		out, err string
	}
	ask := func() []result {
		var rs []result
		for _, c := range cases {
			code, out, stderr := runIn(t, "Europe/Berlin", append(append([]string{"query"}, c.args...), rng...)...)
			rs = append(rs, result{code, out, stderr})
		}
		return rs
	}
	viaFile := ask()
	stop := serveDB(t, db)
	viaAPI := ask()
	stop()
	for i, c := range cases {
		f, a := viaFile[i], viaAPI[i]
		if f.code != 0 {
			t.Errorf("%s: exit %d: %s", c.name, f.code, f.err)
			continue
		}
		if a != f {
			t.Errorf("%s differs:\n--- api\n%d %s%s\n--- file\n%s%s", c.name, a.code, a.out, a.err, f.out, f.err)
		}
		golden(t, "query-by-"+c.name, f.out)
	}
}

func TestQueryGroupingFlags(t *testing.T) {
	db := goldenDB(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--by", "day", "--top", "3"}, "--top and --sort are for the other groupings"},
		{[]string{"--by", "month", "--sort", "packets"}, "--top and --sort are for the other groupings"},
		{[]string{"--by", "remote", "--prefix4", "16"}, "--prefix4 and --prefix6 are for --by prefix"},
		{[]string{"--by", "prefix", "--prefix4", "33"}, "--prefix4 33: want 1 to 32"},
		{[]string{"--by", "prefix", "--prefix6", "0"}, "--prefix6 0: want 1 to 128"},
		{[]string{"--by", "fortnight"}, "want window, remote, country, asn, prefix, service, hour, day, week or month"},
	} {
		code, out, stderr := runIn(t, "Europe/Berlin", append([]string{"query", "--db", db}, tc.args...)...)
		if code != 2 || out != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") > 3 {
			t.Errorf("%v: exit %d, %q %q; want exit 2 and %q", tc.args, code, out, stderr, tc.want)
		}
	}
}

// Three days of windows: per-day rows equal the raw windows' sums of each
// local day, and every period grouping prints the same from the file and
// through the API, also once raw windows were pruned and an edge is rounded.
func TestQueryPeriodsAPIEqualsFile(t *testing.T) {
	db := historyDB(t)
	from, to := historyStart, historyStart.Add(72*time.Hour)
	rng := []string{"--db", db, "--from", rfc(from), "--to", rfc(to)}
	code, out, stderr := runIn(t, "Europe/Berlin", append([]string{"query", "--by", "day", "--format", "json"}, rng...)...)
	if code != 0 {
		t.Fatal(stderr)
	}
	var rows []query.PeriodJSON
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 { // 01:00 CET on the first day to 01:00 on the fourth
		t.Fatalf("%d days:\n%s", len(rows), out)
	}
	for _, r := range rows {
		start, _ := time.Parse(time.RFC3339, r.Start)
		end, _ := time.Parse(time.RFC3339, r.End)
		var want window.Counts
		for _, w := range historyWindows() {
			if !w.Start.Before(start) && w.Start.Before(end) {
				for _, rm := range w.Remotes {
					want.Add(rm.Counts)
				}
				want.Add(w.Other)
			}
		}
		if r.CountsJSON.Counts() != want {
			t.Errorf("day %s: %+v, raw windows sum to %+v", r.Start, r.CountsJSON, want)
		}
	}

	d, err := storage.Open(db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PruneTiers(historyStart.Add(3*24*time.Hour), storage.Retention{Windows: 36 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	for _, zone := range []string{"Europe/Berlin", "Asia/Kolkata"} {
		cases := [][]string{{"--by", "hour", "--format", "csv"}, {"--by", "day"}, {"--by", "week", "--format", "json"}, {"--by", "month", "--utc"}}
		ask := func() []string {
			var rs []string
			for _, c := range cases {
				code, out, stderr := runIn(t, zone, append(append([]string{"query"}, c...), rng...)...)
				rs = append(rs, fmt.Sprint(code, "\n", out, stderr))
			}
			return rs
		}
		viaFile := ask()
		stop := serveDB(t, db)
		viaAPI := ask()
		stop()
		for i, c := range cases {
			if viaFile[i] != viaAPI[i] {
				t.Errorf("%s %v differs:\n--- file\n%s\n--- api\n%s", zone, c, viaFile[i], viaAPI[i])
			}
			if !strings.HasPrefix(viaFile[i], "0\n") {
				t.Errorf("%s %v: %s", zone, c, viaFile[i])
			}
		}
		if zone == "Asia/Kolkata" && !strings.Contains(viaFile[1], "answered at hour resolution") {
			t.Errorf("Kolkata days over pruned raw windows: want the hour-resolution note:\n%s", viaFile[1])
		}
	}
}

package main

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func counts(tp, tb, rp, rb uint64) window.Counts {
	return window.Counts{TxPackets: tp, TxBytes: tb, RxPackets: rp, RxBytes: rb}
}

// goldenStart is 00:00:00 UTC on the day Europe/Berlin leaves summer time:
// 01:00 UTC is 03:00 CEST turning into 02:00 CET.
var goldenStart = time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)

// goldenWindows are four 30-minute windows across the DST change, with
// exact content: kernel drops in one, remotes folded by the cap in two.
func goldenWindows() []*window.Window {
	geo := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
	nl := netip.MustParseAddr("198.51.100.2")
	jp := netip.MustParseAddr("203.0.113.9")
	de := netip.MustParseAddr("2001:db8::7")
	unk := netip.MustParseAddr("192.0.2.77")
	w := func(i int, rs []window.Remote, other window.Counts, st window.Stats) *window.Window {
		return &window.Window{Start: goldenStart.Add(time.Duration(i) * 30 * time.Minute), Length: 30 * time.Minute,
			Remotes: rs, Other: other, Stats: st, GeoBuild: geo}
	}
	return []*window.Window{
		w(0, []window.Remote{
			{Addr: nl, Country: "NL", ASN: 64496, ASOrg: "Example NL", Counts: counts(1200, 1_500_000, 3400, 52_000_000)},
			{Addr: jp, Country: "JP", ASN: 64500, ASOrg: "Example Transit", Counts: counts(10, 5_000, 12, 900)},
		}, window.Counts{}, window.Stats{Frames: 4622, Tallied: 4622}),
		w(1, []window.Remote{
			{Addr: de, Country: "DE", ASN: 64501, ASOrg: "Example Six", Counts: counts(70_000, 98_000_000, 35_000, 2_100_000)},
			{Addr: nl, Country: "NL", ASN: 64496, ASOrg: "Example NL", Counts: counts(300, 400_000, 900, 1_300_000)},
		}, counts(5, 500, 7, 700), window.Stats{Frames: 106_212, Tallied: 106_212, Drops: 4_321, Folded: 3}),
		w(2, []window.Remote{
			{Addr: unk, Counts: counts(2, 120, 2, 120)},
		}, window.Counts{}, window.Stats{Frames: 9, Tallied: 4, NonIP: 5}),
		w(3, []window.Remote{
			{Addr: jp, Country: "JP", ASN: 64500, ASOrg: "Example Transit", Counts: counts(800, 1_100_000, 800, 64_000)},
			{Addr: nl, Country: "NL", ASN: 64496, ASOrg: "Example NL", Counts: counts(100, 9_000, 100, 9_000)},
		}, counts(40, 40_000, 40, 40_000), window.Stats{Frames: 1880, Tallied: 1880, Folded: 12}),
	}
}

// goldenDB stores goldenWindows in a fresh database file.
func goldenDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "golden.db")
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(goldenWindows()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// The CLI's tables, from a database with exact content, through the whole
// command (--utc keeps the golden files independent of the machine's zone).
func TestQueryTablesGolden(t *testing.T) {
	db := goldenDB(t)
	rng := []string{"--db", db, "--utc", "--from", "2026-10-25T00:00:00Z", "--to", "2026-10-25T02:00:00Z"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"remote", []string{"--by", "remote"}},
		{"remote-top2", []string{"--by", "remote", "--top", "2"}},
		{"country", []string{"--by", "country"}},
		{"asn", []string{"--by", "asn"}},
		{"window", []string{"--by", "window"}},
		{"remote-tx-nl", []string{"--by", "remote", "--direction", "tx", "--country", "nl", "--remote", "198.51.100.0/24"}},
		{"remote-packets", []string{"--by", "remote", "--sort", "packets"}},
		{"country-csv", []string{"--by", "country", "--format", "csv"}},
		{"asn-json", []string{"--by", "asn", "--format", "json"}},
		{"window-json-top1", []string{"--by", "window", "--format", "json", "--top", "1"}},
		{"last2-window", []string{"--by", "window", "--last", "2"}},
		{"empty", []string{"--from", "2026-10-26T00:00:00Z", "--to", "2026-10-26T01:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"query"}, tc.args...)
			if tc.name == "last2-window" {
				args = append(args, "--db", db, "--utc")
			} else if tc.name == "empty" {
				args = append(args, "--db", db, "--utc")
			} else {
				args = append(args, rng...)
			}
			code, out, stderr := runCmd(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden(t, "query-"+tc.name, out)
		})
	}
}

// A table in Europe/Berlin across the end of summer time: 02:00-03:00
// happens twice, and the zone tells the two apart.
func TestQueryTableAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	var buf bytes.Buffer
	o := queryOpts{by: query.ByWindow, sort: query.SortBytes, format: "table", loc: berlin}
	if err := writeQuery(&buf, goldenWindows(), o); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"2026-10-25 02:30:00 CEST", "2026-10-25 02:00:00 CET", "2026-10-25 02:30:00 CET"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	golden(t, "query-window-berlin", out)
}

func TestParseTimeAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		name, in string
		now      time.Time
		want     string // RFC 3339 with offset
	}{
		{"today on the day of change", "today", at("2026-10-25T12:00:00+01:00"), "2026-10-25T00:00:00+02:00"},
		{"yesterday the day after", "yesterday", at("2026-10-26T09:00:00+01:00"), "2026-10-25T00:00:00+02:00"},
		{"today the day after", "today", at("2026-10-26T09:00:00+01:00"), "2026-10-26T00:00:00+01:00"},
		{"yesterday on the day of change", "yesterday", at("2026-10-25T23:59:00+01:00"), "2026-10-24T00:00:00+02:00"},
		{"relative hours are elapsed time", "-3h", at("2026-10-25T03:30:00+01:00"), "2026-10-25T01:30:00+02:00"},
		{"relative minutes", "-30m", at("2026-10-25T10:00:00Z"), "2026-10-25T09:30:00Z"},
		{"relative days", "-2d", at("2026-10-25T10:00:00Z"), "2026-10-23T10:00:00Z"},
		{"plain date", "2026-10-25", at("2026-11-01T00:00:00Z"), "2026-10-25T00:00:00+02:00"},
		{"local time after the change", "2026-10-25 12:00", at("2026-11-01T00:00:00Z"), "2026-10-25T12:00:00+01:00"},
		{"rfc3339 keeps its offset", "2026-10-25T02:30:00+01:00", at("2026-11-01T00:00:00Z"), "2026-10-25T02:30:00+01:00"},
		{"now", "now", at("2026-10-25T02:30:00+01:00"), "2026-10-25T02:30:00+01:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTime("--from", tc.in, tc.now, berlin)
			if err != nil {
				t.Fatal(err)
			}
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("%q at %v: got %v, want %v", tc.in, tc.now, got.In(berlin), want.In(berlin))
			}
		})
	}
	// The day of the change is 25 hours long.
	now := at("2026-10-26T09:00:00+01:00")
	y, _ := parseTime("--from", "yesterday", now, berlin)
	td, _ := parseTime("--to", "today", now, berlin)
	if d := td.Sub(y); d != 25*time.Hour {
		t.Errorf("yesterday..today across the change is %v, want 25h", d)
	}
	for _, bad := range []string{"", "last tuesday", "-", "-1y", "2026-13-01"} {
		if _, err := parseTime("--from", bad, now, berlin); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

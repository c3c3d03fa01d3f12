package main

import (
	"strings"
	"testing"
	"time"
)

// The forms people type, with a fixed now, in Europe/Berlin around the
// end of summer time (2026-10-25 03:00 CEST becomes 02:00 CET) and in UTC
// as --utc asks.
func TestParseTimeForms(t *testing.T) {
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
		loc      *time.Location
		now      time.Time
		want     string
	}{
		{"now minus an hour", "now-1h", berlin, at("2026-10-25T03:30:00+01:00"), "2026-10-25T01:30:00Z"},
		{"now plus minutes", "now+30m", berlin, at("2026-10-25T10:00:00Z"), "2026-10-25T10:30:00Z"},
		{"now minus days is elapsed time", "now-2d", berlin, at("2026-10-26T12:00:00+01:00"), "2026-10-24T11:00:00Z"},
		{"bare days", "-2d", berlin, at("2026-10-26T12:00:00+01:00"), "2026-10-24T11:00:00Z"},
		{"time of day on the day of change", "07:15", berlin, at("2026-10-25T12:00:00+01:00"), "2026-10-25T07:15:00+01:00"},
		{"time of day the day before", "07:15", berlin, at("2026-10-24T12:00:00+02:00"), "2026-10-24T07:15:00+02:00"},
		{"time of day is today's even when later", "23:00", berlin, at("2026-10-25T12:00:00+01:00"), "2026-10-25T23:00:00+01:00"},
		{"time of day with seconds", "07:15:30", berlin, at("2026-10-25T12:00:00+01:00"), "2026-10-25T07:15:30+01:00"},
		{"today is local midnight (25 h long)", "today", berlin, at("2026-10-25T23:30:00+01:00"), "2026-10-25T00:00:00+02:00"},
		{"time of day with --utc", "07:15", time.UTC, at("2026-10-25T00:30:00+02:00"), "2026-10-24T07:15:00Z"},
		{"today with --utc", "today", time.UTC, at("2026-10-25T00:30:00+02:00"), "2026-10-24T00:00:00Z"},
		{"yesterday with --utc", "yesterday", time.UTC, at("2026-10-25T12:00:00Z"), "2026-10-24T00:00:00Z"},
		{"unix seconds", "@1790000000", berlin, at("2026-10-25T12:00:00Z"), "2026-09-21T14:13:20Z"},
		{"unix zero", "@0", time.UTC, at("2026-10-25T12:00:00Z"), "1970-01-01T00:00:00Z"},
		{"rfc 3339 keeps its offset", "2026-10-25T02:30:00+01:00", time.UTC, at("2026-10-25T12:00:00Z"), "2026-10-25T01:30:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTime("--from", tc.in, tc.now, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("%q at %v: got %v, want %v", tc.in, tc.now, got, want)
			}
		})
	}
	now := at("2026-10-25T12:00:00Z")
	for _, bad := range []string{"now-", "now-1y", "nowish", "@", "@-5", "@1.5", "@99999999999999", "25:00", "7:15pm", "07:15 tomorrow"} {
		if _, err := parseTime("--from", bad, now, berlin); err == nil {
			t.Errorf("%q parsed", bad)
		} else if !strings.Contains(err.Error(), "--from") {
			t.Errorf("%q: error does not name the flag: %v", bad, err)
		}
	}
}

// A range wider than what is stored is answered over what is stored: the
// same answer as the stored range asked exactly, from the file and through
// the daemon's API alike.
func TestQueryWideRange(t *testing.T) {
	db := goldenDB(t)
	exact := []string{"--db", db, "--utc", "--from", "2026-10-25T00:00:00Z", "--to", "2026-10-25T02:00:00Z"}
	wide := []string{"--db", db, "--utc", "--from", "2020-01-01", "--to", "2100-01-01"}
	ask := func(how string) {
		for _, by := range [][]string{{"--by", "remote"}, {"--by", "country", "--format", "json"}, {"--by", "window"}} {
			code, want, stderr := runCmd(t, append(append([]string{"query"}, by...), exact...)...)
			if code != 0 {
				t.Fatalf("%s %v: exit %d: %s", how, by, code, stderr)
			}
			code, got, stderr := runCmd(t, append(append([]string{"query"}, by...), wide...)...)
			if code != 0 {
				t.Fatalf("%s %v 2020..2100: exit %d: %s", how, by, code, stderr)
			}
			if got != want {
				t.Errorf("%s %v 2020..2100:\n%s\nwant the stored range's answer:\n%s", how, by, got, want)
			}
		}
		// Nothing stored in a wide range: said as for any empty range.
		code, out, stderr := runCmd(t, "query", "--db", db, "--utc", "--from", "2030-01-01", "--to", "2100-01-01")
		if code != 0 || !strings.HasPrefix(out, "no stored window from 2030-01-01 00:00:00 UTC to 2100-01-01 00:00:00 UTC; the database holds 4 windows") {
			t.Errorf("%s empty wide range: exit %d, %q %q", how, code, out, stderr)
		}
		code, out, stderr = runCmd(t, "value", "tx_bytes", "--db", db, "--from", "@0", "--to", "@4102444800")
		if code != 0 || out != "101054620\n" {
			t.Errorf("%s value over 1970..2100: exit %d, %q %q", how, code, out, stderr)
		}
	}
	ask("file")
	serveDB(t, db)
	ask("api")
}

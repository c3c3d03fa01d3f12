package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/internal/pcapgen"
)

const staleMsg = "geoip database is old"

// A GeoIP file built more than five weeks ago gets one warning at start,
// naming it and its build date; a fresh one gets none.
func TestGeoIPStaleWarningAtStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pcapgen.Mixed(1, 50, 5, testLocal, testStart, time.Minute, pcapgen.LinkEthernet)); err != nil {
		t.Fatal(err)
	}
	nets := map[string]string{"198.51.100.0/24": "NL"}
	old, fresh := filepath.Join(dir, "old.mmdb"), filepath.Join(dir, "fresh.mmdb")
	oldBuild := time.Now().Add(-40 * 24 * time.Hour).UTC()
	if err := mmdbtest.CountryBuilt(old, nets, oldBuild); err != nil {
		t.Fatal(err)
	}
	if err := mmdbtest.CountryBuilt(fresh, nets, time.Now().Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		geo  string
		warn bool
	}{{old, true}, {fresh, false}} {
		code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", filepath.Join(t.TempDir(), "s.db"), "--geoip", tc.geo)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var warns []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, staleMsg) {
				warns = append(warns, l)
			}
		}
		if !tc.warn {
			if len(warns) != 0 {
				t.Errorf("%s, built 30 days ago: %q, want no warning", tc.geo, warns)
			}
			continue
		}
		if len(warns) != 1 || !strings.Contains(warns[0], "level=WARN") || !strings.Contains(warns[0], "path="+old) ||
			!strings.Contains(warns[0], "build="+oldBuild.Format(time.DateOnly)) || !strings.Contains(warns[0], "age_days=40") {
			t.Errorf("%s, built 40 days ago: warnings %q, want one naming it, its build date and age", tc.geo, warns)
		}
	}
}

// A reload that swaps in an old file (geoipupdate failing and an old copy
// restored, say) warns too.
func TestGeoIPStaleWarningAtReload(t *testing.T) {
	p := netnstest.New(t)
	dir := t.TempDir()
	geoPath := filepath.Join(dir, "GeoLite2-Country.mmdb")
	nets := map[string]string{"198.51.100.0/24": "NL"}
	if err := mmdbtest.CountryBuilt(geoPath, nets, time.Now()); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", filepath.Join(dir, "g.db"), "--geoip", geoPath, "--socket", "none")
	if strings.Contains(d.stderr.String(), staleMsg) {
		t.Errorf("a fresh file warned:\n%s", d.stderr.String())
	}
	if err := mmdbtest.CountryBuilt(geoPath+".tmp", nets, time.Now().AddDate(0, -3, 0)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(geoPath+".tmp", geoPath); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "the stale warning after the reload", func() bool {
		s := d.stderr.String()
		return strings.Contains(s, "geoip database reloaded") && strings.Contains(s, staleMsg)
	})
	d.stop(t)
}

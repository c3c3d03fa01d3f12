package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The shipped systemd unit keeps its promises: only CAP_NET_RAW, a
// read-only system, readiness and a watchdog; systemd itself accepts it and
// rates its exposure low.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../packaging/systemd/dstwatch.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "AmbientCapabilities=CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_RAW",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=dstwatch", "DynamicUser=yes",
		"RuntimeDirectory=dstwatch", "RuntimeDirectoryMode=0750",
	} {
		if !strings.Contains(string(unit), "\n"+want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed: the directives were checked, systemd's own verification was not")
	}
	path := filepath.Join(t.TempDir(), "dstwatch.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/dstwatch", binary(t))), 0o644)
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Skipf("systemd-analyze security --offline unavailable: %v", err)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 3 {
		t.Errorf("exposure level %.1f, want 3 or lower", level)
	}
}

package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Without a daemon, status still exits 3 and says so, and answers from the
// database: its tiers and the newest window.
func TestStatusWithoutDaemon(t *testing.T) {
	db := goldenDB(t)
	code, out, stderr := runCmd(t, "status", "--db", db, "--utc")
	if code != 3 || !strings.Contains(stderr, "not running: no daemon answers on "+defaultSocket(db)) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	abs, _ := filepath.Abs(db)
	out = strings.ReplaceAll(strings.ReplaceAll(out, abs, "DB"), defaultSocket(db), "SOCKET")
	// Sizes follow the file's encoding, not what status says about them.
	out = regexp.MustCompile(`(, )\d+(\.\d+)? (B|KiB|MiB)\b`).ReplaceAllString(out, "${1}SIZE")
	golden(t, "status-offline", out)

	code, out, _ = runCmd(t, "status", "--db", db, "--format", "json")
	var j offlineStatusJSON
	if code != 3 || json.Unmarshal([]byte(out), &j) != nil || j.Running || j.DB == nil || j.DB.Windows != 4 || j.DB.Tiers == nil ||
		j.DB.Tiers.Hours.Units != 1 || j.LastWindow == nil || j.LastWindow.Start != "2026-10-25T01:30:00Z" ||
		j.LastWindow.Remotes != 14 || j.LastWindow.TxBytes != 1_149_000 {
		t.Errorf("json: exit %d\n%s", code, out)
	}

	missing := filepath.Join(t.TempDir(), "none.db")
	code, out, stderr = runCmd(t, "status", "--db", missing)
	if code != 3 || !strings.Contains(out, "no such file") || !strings.Contains(stderr, "not running") {
		t.Errorf("no database: exit %d, %q %q", code, out, stderr)
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// A usage error is one line on stderr and nothing on stdout, exit 2, for
// every subcommand: monitoring agents read 'value' and 'discover' from
// stdout and must not take the help for an answer. --help still prints the
// help on stdout, exit 0.
func TestUsageErrorOneLineEveryCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "none.db")
	for _, cmd := range [][]string{
		{"run"}, {"query"}, {"tail"}, {"status"}, {"value", "tx_bytes"}, {"value"}, {"discover", "services"},
		{"discover"}, {"top"}, {"report"}, {"compact"}, {"incidents"}, {"incidents", "expire", "1"},
	} {
		name := strings.Join(cmd, " ")
		t.Run(name, func(t *testing.T) {
			for _, bad := range [][]string{{"--foo"}, {"--db"}} { // unknown flag; flag without its value
				code, stdout, stderr := runCmd(t, append(append([]string{}, cmd...), bad...)...)
				if code != 2 || stdout != "" {
					t.Errorf("%s %s: exit %d, stdout %d bytes; want exit 2 and nothing on stdout:\n%s", name, bad[0], code, len(stdout), stdout)
				}
				sub := strings.Join(cmd[:1], "")
				if cmd[0] == "incidents" && len(cmd) > 1 {
					sub = "incidents expire"
				}
				want := "(see dstwatch " + sub + " --help)"
				if strings.Count(strings.TrimSuffix(stderr, "\n"), "\n") != 0 || !strings.HasPrefix(stderr, "dstwatch "+cmd[0]+": ") || !strings.Contains(stderr, want) {
					t.Errorf("%s %s: stderr %q, want one line naming the command and %q", name, bad[0], stderr, want)
				}
			}
			code, stdout, stderr := runCmd(t, append(append([]string{}, cmd...), "--help", "--db", db)...)
			if code != 0 || !strings.Contains(stdout, "\nFlags:\n") || stderr != "" {
				t.Errorf("%s --help: exit %d, stderr %q, stdout:\n%s", name, code, stderr, stdout)
			}
		})
	}
}

// Values no one means are refused as usage errors (exit 2, one line)
// instead of being accepted and wrapping or failing later.
func TestSmallValidations(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "v.db")
	replay := []string{"run", "--read", filepath.Join(dir, "none.pcap"), "--local", "198.51.100.1", "--db", db}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"retention NaN", append(replay, "--retention", "NaNd"), `--retention "NaNd"`},
		{"retention Inf", append(replay, "--retention-hours", "Infd"), `--retention-hours "Infd"`},
		{"retention 1e300d", append(replay, "--retention", "1e300d"), "too long (at most 36500d)"},
		{"retention-days huge weeks", append(replay, "--retention-days", "1e20w"), "too long"},
		{"retention huge hours", append(replay, "--retention", "2000000h"), "too long"},
		{"window 15000w", append(replay, "--window", "15000w"), "from 1s to 1h"},
		{"window 2h", append(replay, "--window", "2h"), "from 1s to 1h"},
		{"file-mode 0777", append(replay, "--file-mode", "0777"), `--file-mode "0777"`},
		{"file-mode world-writable", append(replay, "--file-mode", "0666"), `--file-mode "0666"`},
		{"file-mode executable", append(replay, "--file-mode", "0740"), `--file-mode "0740"`},
		{"file-mode setuid", append(replay, "--file-mode", "4640"), `--file-mode "4640"`},
		{"metrics port too big", append(replay, "--metrics", ":99999"), `--metrics ":99999"`},
		{"metrics port zero", append(replay, "--metrics", "127.0.0.1:0"), `--metrics "127.0.0.1:0"`},
		{"metrics no port", append(replay, "--metrics", "127.0.0.1:"), `--metrics "127.0.0.1:"`},
		{"query top -1", []string{"query", "--db", db, "--top", "-1"}, "--top must not be negative"},
		{"query from NaNd", []string{"query", "--db", db, "--from", "-NaNd"}, `--from "NaNd"`},
		{"query from 1e300d", []string{"query", "--db", db, "--from", "-1e300d"}, "too long"},
		{"top top -1", []string{"top", "--db", db, "--once", "--top", "-1"}, "--top"},
		{"report top -1", []string{"report", "--db", db, "--top", "-1"}, "--top"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
			}
			if !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSuffix(stderr, "\n"), "\n") != 0 {
				t.Errorf("stderr %q, want one line with %q", stderr, tc.want)
			}
		})
	}
	// What is allowed still is.
	for _, ok := range [][]string{{"--file-mode", "0600"}, {"--file-mode", "0664"}, {"--file-mode", "0644"}, {"--window", "1h"}, {"--retention", "36500d"}, {"--retention", "0"}} {
		if code, _, stderr := runCmd(t, append(replay, ok...)...); code == 2 {
			t.Errorf("%v refused: %s", ok, stderr)
		}
	}
}

// With --user the daemon gives up CAP_NET_RAW, so a capture lost in an
// interface bounce cannot be reopened; the log says so at warning level,
// once, and the daemon keeps running.
func TestUserBounceSaysWhyAtWarning(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := stateDir(t)
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", filepath.Join(dir, "bounce.db"), "--window", "1s",
		"--local", netnstest.A4.String(), "--user", "nobody")
	netnstest.IP(t, "-n", p.A, "link", "set", p.IfA, "down")
	await(t, 5*time.Second, "the outage in the log", func() bool { return strings.Contains(d.stderr.String(), "capture stopped") })
	netnstest.IP(t, "-n", p.A, "link", "set", p.IfA, "up")
	await(t, 10*time.Second, "a warning that the capture cannot be reopened", func() bool {
		for _, l := range strings.Split(d.stderr.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "CAP_NET_RAW") && strings.Contains(l, "--user") {
				return true
			}
		}
		return false
	})
	time.Sleep(2500 * time.Millisecond) // more reopen attempts: still one warning
	if n := strings.Count(d.stderr.String(), "cannot reopen the capture"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, d.stderr.String())
	}
	d.stop(t)
}

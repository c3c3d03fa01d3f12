package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// What the daemon's Config.Validate refuses, run says in its flags' words:
// one line, exit 2, nothing opened.
func TestRunConfigUsage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "v.db")
	replay := []string{"run", "--read", filepath.Join(dir, "none.pcap"), "--local", "198.51.100.1", "--db", db}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"read and interface", append(replay, "-i", "lo"), "dstwatch run: --read and --interface exclude each other\n"},
		{"socket group without socket", append(replay, "--socket", "none", "--socket-group", "adm"), "dstwatch run: --socket-group needs a socket (not --socket none)\n"},
		{"max remotes", append(replay, "--max-remotes", "-1"), "dstwatch run: --max-remotes, --max-open-remotes and --log-top must not be negative\n"},
		{"max open remotes", append(replay, "--max-open-remotes", "-1"), "dstwatch run: --max-remotes, --max-open-remotes and --log-top must not be negative\n"},
		{"log top", append(replay, "--log-top", "-1"), "dstwatch run: --max-remotes, --max-open-remotes and --log-top must not be negative\n"},
		{"asn top", append(replay, "--metrics-asn-top", "-1"), "dstwatch run: --metrics-asn-top must not be negative\n"},
		{"window 0", append(replay, "--window", "0s"), "dstwatch run: --window 0s: must be whole seconds, from 1s to 1h\n"},
		{"window too long for a span", append(replay, "--window", "1e300d"), "dstwatch run: --window 1e300d: must be whole seconds, from 1s to 1h\n"},
		{"metrics", append(replay, "--metrics", "localhost"), `dstwatch run: --metrics "localhost": want host:port with a port from 1 to 65535, e.g. 127.0.0.1:9750` + "\n"},
		{"file mode", append(replay, "--file-mode", "0700"), `dstwatch run: --file-mode "0700": want an octal mode within 0664 that lets the owner read and write (0600, 0640, 0660, 0644 or 0664)` + "\n"},
		{"read without local", []string{"run", "--read", filepath.Join(dir, "none.pcap"), "--db", db}, "dstwatch run: --read needs --local: a capture file does not say which addresses were the host's\n"},
		{"hour cap", append(replay, "--hour-cap", "-1"), "dstwatch run: --hour-cap and --day-cap must not be negative\n"},
		{"day cap", append(replay, "--day-cap", "-1"), "dstwatch run: --hour-cap and --day-cap must not be negative\n"},
		{"ring", append(replay, "--ring-mb", "1025"), "dstwatch run: --ring-mb 1025: want whole MiB from 2 to 1024\n"},
		{"service top", append(replay, "--service-top", "-1"), "dstwatch run: --service-top and --metrics-service-top must not be negative\n"},
		{"metrics service top", append(replay, "--metrics-service-top", "-1"), "dstwatch run: --service-top and --metrics-service-top must not be negative\n"},
		{"web config without listener", append(replay, "--web-config", filepath.Join(dir, "none.yml")), "dstwatch run: --web-config needs --metrics or --web\n"},
		{"web without auth", append(replay, "--web", "0.0.0.0:9751"), "dstwatch run: --web on an address beyond loopback needs --web-token-file or --web-user with --web-password-file, or a --web-config with basic_auth_users or client_auth_type RequireAndVerifyClientCert\n"},
		{"file mode not octal", append(replay, "--file-mode", "rw"), `dstwatch run: --file-mode "rw": want an octal mode within 0664 that lets the owner read and write (0600, 0640, 0660, 0644 or 0664)` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != 2 || stdout != "" || stderr != tc.want {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, stdout, stderr, tc.want)
			}
		})
	}
	if _, err := filepath.Glob(filepath.Join(dir, "*")); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("a refused start left %s", strings.Join(m, ", "))
	}
}

package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/internal/pcapgen"
)

// runBin runs the real binary and returns its exit code and output.
func runBin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// refused checks a refused command: a non-zero exit, one line on stderr
// saying why, and the victim file unchanged.
func refused(t *testing.T, what string, code int, stderr, want, victim string, before [32]byte) {
	t.Helper()
	if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
		t.Errorf("%s: exit %d, want non-zero and one line with %q; stderr:\n%s", what, code, want, stderr)
	}
	if sum(t, victim) != before {
		t.Errorf("%s: the victim %s was changed", what, victim)
	}
}

func smallCapture(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "in.pcap")
	pkts := pcapgen.Mixed(5, 300, 20, testLocal, testStart, 40*time.Second, pcapgen.LinkEthernet)
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	return file
}

// A state directory owned by the --user account lets that account plant
// links and files there; as root, dstwatch must neither write through a
// link nor write a file of another user.
func TestRootRefusesPlantedFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the checks are for files written as root")
	}
	capture := smallCapture(t)
	outside := t.TempDir()
	text := filepath.Join(outside, "passwd")
	if err := os.WriteFile(text, []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(outside, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runArgs := func(dir string, more ...string) []string {
		return append([]string{"run", "--read", capture, "--local", "198.51.100.1,2001:db8::1", "--db", filepath.Join(dir, "w.db"), "--socket", "none"}, more...)
	}
	link := func(t *testing.T, target, at string) {
		t.Helper()
		if err := os.Symlink(target, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		victim string
		plant  func(t *testing.T, dir string) // what the account put in dir
	}{
		{"record log", text, func(t *testing.T, dir string) { link(t, text, filepath.Join(dir, "records.log")) }},
		{"db", empty, func(t *testing.T, dir string) { link(t, empty, filepath.Join(dir, "w.db")) }},
		{"alerts.db", empty, func(t *testing.T, dir string) { link(t, empty, filepath.Join(dir, "alerts.db")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.plant(t, dir)
			before := sum(t, tc.victim)
			code, _, stderr := runBin(t, runArgs(dir)...)
			refused(t, tc.name, code, stderr, "is a symbolic link", tc.victim, before)
		})
	}
	// Files of another non-root user (nobody) are refused; root's are not.
	for _, name := range []string{"records.log", "w.db", "alerts.db"} {
		t.Run("nobody's "+name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, name)
			if err := os.WriteFile(f, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(f, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			before := sum(t, f)
			code, _, stderr := runBin(t, runArgs(dir)...)
			refused(t, name, code, stderr, "may belong to another user", f, before)
		})
	}

	// report -o: through a link never; another user's file never; a file
	// of root's is replaced whole (a new inode) and private.
	db := historyDB(t)
	rep := []string{"report", "--db", db, "--utc", "--from", rfc(historyStart), "--to", rfc(historyStart.Add(24 * time.Hour))}
	dir := t.TempDir()
	at := filepath.Join(dir, "report.txt")
	link(t, text, at)
	before := sum(t, text)
	code, _, stderr := runBin(t, append(rep, "-o", at)...)
	refused(t, "report -o link", code, stderr, "is a symbolic link", text, before)
	os.Remove(at)
	if err := os.WriteFile(at, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(at, 65534, 65534)
	before = sum(t, at)
	code, _, stderr = runBin(t, append(rep, "-o", at)...)
	refused(t, "report -o nobody's file", code, stderr, "may belong to another user", at, before)
	os.Chown(at, 0, 0)
	old, _ := os.Stat(at)
	if code, _, stderr := runBin(t, append(rep, "-o", at)...); code != 0 {
		t.Fatalf("report -o: exit %d: %s", code, stderr)
	}
	st, err := os.Stat(at)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(old, st) || st.Mode().Perm() != 0o640 {
		t.Errorf("report -o: same inode %v, mode %v; want a new file, 0640", os.SameFile(old, st), st.Mode().Perm())
	}
	if b, _ := os.ReadFile(at); !bytes.Contains(b, []byte("dstwatch report")) && len(b) < 100 {
		t.Errorf("report -o wrote %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".report.txt.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The alerts file is checked like the window database: neither may be
// the other, nor a device, nor someone else's bbolt file.
func TestAlertsDBCheckedLikeDB(t *testing.T) {
	capture := smallCapture(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	args := []string{"run", "--read", capture, "--local", "198.51.100.1,2001:db8::1", "--socket", "none"}
	if code, _, stderr := runBin(t, append(args, "--db", db)...); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	alerts := filepath.Join(dir, "alerts.db")
	e, err := alert.Open(alert.Options{Path: alerts})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()

	before := sum(t, db)
	code, _, stderr := runBin(t, append(args, "--db", filepath.Join(t.TempDir(), "x.db"), "--alerts-db", db)...)
	refused(t, "--alerts-db at the window database", code, stderr, "is a window database", db, before)

	code, _, stderr = runBin(t, append(args, "--db", db, "--alerts-db", db)...)
	refused(t, "--alerts-db the same as --db", code, stderr, "is the window database", db, before)

	before = sum(t, alerts)
	code, _, stderr = runBin(t, append(args, "--db", alerts, "--alerts-db", filepath.Join(t.TempDir(), "a.db"))...)
	refused(t, "--db at alerts.db", code, stderr, "an alerts file, not a window database", alerts, before)

	code, _, stderr = runBin(t, append(args, "--db", filepath.Join(t.TempDir(), "x.db"), "--alerts-db", "/dev/null")...)
	if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("--alerts-db /dev/null: exit %d: %s", code, stderr)
	}
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", st, err)
	}
}

// listDir lists every path under dir with its type and size, to compare a
// directory before and after a command.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			out = append(out, p+" "+err.Error())
			return nil
		}
		st, _ := os.Lstat(p)
		out = append(out, fmt.Sprintf("%s %v %d", p, st.Mode(), st.Size()))
		return nil
	})
	return out
}

// A start that fails (a flag, a group, a port, the socket path, a file
// refused) leaves the state directory exactly as it was: no new database,
// record log or directory. Everything that can be checked is checked
// before anything is created.
func TestFailedStartLeavesNoFiles(t *testing.T) {
	capture := smallCapture(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, state string) // state exists when setup is not nil
		args  []string
		want  string
	}{
		{"bad file mode", nil, []string{"--file-mode", "9"}, "--file-mode"},
		{"unknown socket group", nil, []string{"--socket-group", "no-such-group-here"}, "no such group"},
		{"metrics port taken", nil, []string{"--metrics", busy.Addr().String()}, "address already in use"},
		{"alerts file a device", nil, []string{"--alerts-db", "/dev/null"}, "not a regular file"},
		{"file at the socket path", func(t *testing.T, state string) {
			os.WriteFile(filepath.Join(state, socketName), []byte("mine\n"), 0o644)
		}, nil, "is not a socket"},
		{"daemon at the socket path", func(t *testing.T, state string) {
			l, err := net.Listen("unix", filepath.Join(state, socketName))
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}, nil, "another process is listening there"},
		{"record log refused", func(t *testing.T, state string) {
			os.Symlink(capture, filepath.Join(state, "records.log"))
		}, nil, "symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			state := filepath.Join(base, "state")
			if tc.setup != nil {
				os.Mkdir(state, 0o750)
				tc.setup(t, state)
			}
			before := listDir(t, base)
			args := append([]string{"run", "--read", capture, "--local", "198.51.100.1,2001:db8::1", "--db", filepath.Join(state, "w.db")}, tc.args...)
			code, _, stderr := runCmd(t, args...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want non-zero and %q: %s", code, tc.want, stderr)
			}
			if after := listDir(t, base); !slices.Equal(before, after) {
				t.Errorf("a failed start changed the directory:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// run with the default database (/var/lib/dstwatch as root) must not
// create that directory when it then refuses its flags.
func TestFailedStartCreatesNoStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the default state directory is /var/lib/dstwatch for root only")
	}
	t.Setenv("STATE_DIRECTORY", "")
	const def = "/var/lib/dstwatch"
	if _, err := os.Lstat(def); err == nil {
		t.Skipf("%s exists already", def)
	}
	capture := smallCapture(t)
	for _, bad := range [][]string{{"--file-mode", "9"}, {"--socket-group", "no-such-group-here"}, {"--user", "no-such-user-here"}} {
		code, _, stderr := runCmd(t, append([]string{"run", "--read", capture, "--local", "198.51.100.1"}, bad...)...)
		if code == 0 {
			t.Errorf("%v: exit 0", bad)
		}
		if _, err := os.Lstat(def); err == nil {
			os.RemoveAll(def)
			t.Fatalf("%v created %s before refusing: %s", bad, def, stderr)
		}
	}
}

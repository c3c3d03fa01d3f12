package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
)

const nobody = "65534"

// asNobody runs dstwatch in ns as user nobody, holding only the given
// ambient capabilities (none when caps is empty).
func asNobody(t *testing.T, ns, caps string, args ...string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		netnstest.Unable(t, "needs setpriv (util-linux)")
	}
	wrap := []string{"setpriv", "--reuid=" + nobody, "--regid=" + nobody, "--clear-groups"}
	if caps != "" {
		wrap = append(wrap, "--inh-caps=+"+caps, "--ambient-caps=+"+caps)
	}
	wrap = append(wrap, binary(t), "run")
	return netnstest.Command(ns, wrap[0], append(wrap[1:], args...)...)
}

// stateDir is a directory the nobody user may write to.
func stateDir(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	// t.TempDir's directories are 0700 root: let nobody through them.
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// The binary sits in a root-owned temp dir; nobody needs to reach it.
	os.Chmod(filepath.Dir(binary(t)), 0o755)
	return dir
}

func TestWithoutCapNetRawSaysHowToGrantIt(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := stateDir(t)
	out, err := asNobody(t, p.A, "", "-i", p.IfA, "--db", filepath.Join(dir, "x.db")).CombinedOutput()
	if err == nil {
		t.Fatal("capturing without CAP_NET_RAW succeeded")
	}
	msg := strings.TrimSpace(string(out))
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "CAP_NET_RAW") || !strings.Contains(msg, "setcap cap_net_raw+ep") {
		t.Fatalf("want one line saying how to grant CAP_NET_RAW, got (%v):\n%s", err, msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Error("a failed start left a database file behind")
	}
}

// The unprivileged way to run dstwatch: user nobody with CAP_NET_RAW only.
func TestCapturesAsNobodyWithOnlyCapNetRaw(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := stateDir(t)
	db := filepath.Join(dir, "nobody.db")
	d := startDaemonCmd(t, asNobody(t, p.A, "net_raw", "-i", p.IfA, "--db", db, "--window", "1h"))
	sink(t, p.A, netnstest.A4)
	send(t, p.B, netnstest.B4, netnstest.A4, 20, 72) // IP length 100
	time.Sleep(300 * time.Millisecond)
	d.stop(t)

	ws := readAll(t, db)
	if len(ws) != 1 || len(ws[0].Remotes) != 1 || ws[0].Remotes[0].RxPackets != 20 || ws[0].Remotes[0].RxBytes != 2000 {
		t.Fatalf("as nobody: %d windows %+v, want 20 packets / 2000 bytes", len(ws), ws)
	}
	for _, f := range []string{db, filepath.Join(dir, "records.log")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o027 != 0 {
			t.Errorf("%s has mode %v, want 0640 or stricter", f, st.Mode().Perm())
		}
	}
}

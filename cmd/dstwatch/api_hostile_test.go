package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// bigDB writes n one-minute windows of 40 remotes each, ending an hour
// ago, so that one /v1/windows answer is megabytes: far more than a unix
// socket buffers for a client that does not read.
func bigDB(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.db")
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now().Add(-time.Hour - time.Duration(n)*time.Minute).Truncate(time.Minute)
	var ws []*window.Window
	for i := range n {
		w := &window.Window{Start: start.Add(time.Duration(i) * time.Minute), Length: time.Minute}
		for j := range 40 {
			c := window.Counts{TxPackets: uint64(i + j + 1), TxBytes: uint64(1000 * (i + j + 1))}
			w.Remotes = append(w.Remotes, window.Remote{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(j + 1)}), Country: "NL", Counts: c})
			w.Stats.Tallied += c.TxPackets
		}
		ws = append(ws, w)
	}
	if err := d.Put(ws); err != nil {
		t.Fatal(err)
	}
	return path
}

// stalledClients opens n connections to sock that each ask for every
// window and never read the answer.
func stalledClients(t *testing.T, sock string, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("GET /v1/windows?last=100000 HTTP/1.1\r\nHost: dstwatch\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}
}

// Clients that ask for much and never read must not hold up anyone else:
// status and query answer within a second while they hang on.
func TestAPIStalledClients(t *testing.T) {
	p := netnstest.New(t)
	db := bigDB(t, 2500)
	sock := filepath.Join(filepath.Dir(db), "dstwatch.sock")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1m")
	defer d.stop(t)

	stalledClients(t, sock, 8)
	time.Sleep(300 * time.Millisecond) // let the server fill their buffers
	for _, args := range [][]string{
		{"status", "--db", db},
		{"query", "--db", db, "--last", "5", "--format", "json"},
		{"query", "--db", db, "--from", "-30h", "--by", "country"},
		{"status", "--db", db},
	} {
		start := time.Now()
		done := make(chan struct{})
		var code int
		var out, errs string
		go func() {
			code, out, errs = runCmd(t, args...)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: no answer within 10s while clients stall", args)
		}
		took := time.Since(start)
		if took > time.Second {
			t.Errorf("%v took %v while clients stall, want under a second", args, took)
		}
		t.Logf("%s %s: %v", args[0], args[len(args)-1], took.Round(time.Millisecond))
		if code != 0 || out == "" {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		if args[0] == "query" && strings.Contains(args[len(args)-1], "json") && !strings.Contains(out, "198.51.100.1") {
			t.Errorf("%v: answer lacks the stored remotes:\n%.300s", args, out)
		}
	}
}

// socketGroup makes a group for the test and removes it afterwards.
func socketGroup(t *testing.T) (name, gid string) {
	t.Helper()
	if _, err := exec.LookPath("groupadd"); err != nil {
		netnstest.Unable(t, "needs groupadd (passwd)")
	}
	name = fmt.Sprintf("dstwt%d", os.Getpid()%100000)
	if out, err := exec.Command("groupadd", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	return name, g.Gid
}

// asMember runs a dstwatch command as uid (not root, not the daemon's
// user) with gid as its one supplementary group: a monitoring agent's
// account that is a member of --socket-group.
func asMember(t *testing.T, uid, gid string, args ...string) (int, string, string) {
	t.Helper()
	os.Chmod(filepath.Dir(binary(t)), 0o755)
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + uid, "--regid=" + nobody, "--groups=" + gid, binary(t)}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// The documented set-up, run as root: a state directory the daemon makes
// itself and --socket-group. A member of the group reads (status, query,
// incidents) but cannot end an incident, which would run its undo as
// root; root can.
func TestSocketGroupReadsOnlyRootActs(t *testing.T) {
	group, gid := socketGroup(t)
	p := netnstest.New(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755) // like /var/lib: the group passes
	rules := liveRules(t, base)
	state := filepath.Join(base, "state") // made by the daemon
	db := filepath.Join(state, "dstwatch.db")
	sock := filepath.Join(state, "dstwatch.sock")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--rules", rules, "--socket-group", group)
	defer d.stop(t)
	sink(t, p.A, netnstest.A4)
	ctx, cancel := context.WithCancel(context.Background())
	wg := steadyTraffic(t, ctx, p)
	defer func() { cancel(); wg.Wait() }()
	if !waitFor(8*time.Second, func() bool { return fileLines(t, filepath.Join(base, "marked")) != nil }) {
		t.Fatalf("the rule did not fire:\n%s", d.stderr.String())
	}

	if code, out, errs := asMember(t, "65533", gid, "status", "--socket", sock); code != 0 || !strings.Contains(out, "windows stored") {
		t.Fatalf("status as a member of %s: exit %d\n%s%s", group, code, out, errs)
	}
	if code, out, errs := asMember(t, "65533", gid, "query", "--socket", sock, "--db", db, "--last", "3", "--format", "json"); code != 0 || !strings.Contains(out, netnstest.B4.String()) {
		t.Errorf("query as a member: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := asMember(t, "65533", gid, "incidents", "--socket", sock, "--db", db, "--state", "open"); code != 0 || !strings.Contains(out, "flood") {
		t.Errorf("incidents as a member: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := asMember(t, "65533", gid, "incidents", "expire", "1", "--socket", sock, "--db", db)
	if code != 1 || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "permission denied") || !strings.Contains(errs, "may only read") {
		t.Errorf("expire as a member: exit %d, want 1 and one line saying why\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if got := fileLines(t, filepath.Join(base, "unmarked")); got != nil {
		t.Fatalf("a member's expire ran the undo: %q", got)
	}
	// Someone outside the group cannot connect at all.
	if code, _, errs := asMember(t, "65533", nobody, "status", "--socket", sock); code == 0 || !strings.Contains(errs, "permission denied") {
		t.Errorf("status outside the group: exit %d %s", code, errs)
	}
	code, out, errs = runCmd(t, "incidents", "expire", "1", "--socket", sock, "--db", db)
	if code != 0 || !strings.Contains(out, "incident 1") {
		t.Fatalf("expire as root: exit %d\n%s%s", code, out, errs)
	}
	if got := fileLines(t, filepath.Join(base, "unmarked")); len(got) != 1 {
		t.Errorf("root's expire: unmarked %q, want the undo once", got)
	}
}

// The shipped unit's layout, emulated without systemd: the daemon runs as
// an unprivileged user with CAP_NET_RAW and the socket group as a
// supplementary group (DynamicUser=, AmbientCapabilities=,
// SupplementaryGroups=), its socket in the RuntimeDirectory= that systemd
// made 0750 for that user. The daemon opens that directory to the group;
// a member reads, and cannot act.
func TestSocketGroupSystemdLayout(t *testing.T) {
	group, gid := socketGroup(t)
	p := netnstest.New(t)
	state := stateDir(t)
	rt := filepath.Join(filepath.Dir(state), "run")
	if err := os.Mkdir(rt, 0o750); err != nil {
		t.Fatal(err)
	}
	os.Chown(rt, 65534, 65534)
	cmd := netnstest.Command(p.A, "setpriv", "--reuid="+nobody, "--regid="+nobody, "--groups="+gid,
		"--inh-caps=+net_raw", "--ambient-caps=+net_raw", binary(t), "run", "-i", p.IfA, "--db", filepath.Join(state, "dstwatch.db"),
		"--window", "1s", "--socket-group", group)
	cmd.Env = append(os.Environ(), "RUNTIME_DIRECTORY="+rt)
	d := startDaemonCmd(t, cmd)
	defer d.stop(t)
	sock := filepath.Join(rt, "dstwatch.sock")
	st, err := os.Stat(rt)
	if err != nil {
		t.Fatalf("no socket in RUNTIME_DIRECTORY: %v", err)
	}
	if g := st.Sys().(*syscall.Stat_t).Gid; fmt.Sprint(g) != gid || st.Mode().Perm()&0o010 == 0 {
		t.Errorf("runtime directory gid %d mode %v, want group %s with g+x", g, st.Mode().Perm(), gid)
	}
	if code, out, errs := asMember(t, "65533", gid, "status", "--socket", sock); code != 0 || !strings.Contains(out, "windows stored") {
		t.Fatalf("status as a member: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := asMember(t, "65533", gid, "incidents", "expire", "1", "--socket", sock); code != 1 || !strings.Contains(errs, "may only read") {
		t.Errorf("expire as a member: exit %d %s", code, errs)
	}
}

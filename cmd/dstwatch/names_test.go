package main

import (
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/dnstest"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/query"
)

// namesServer is a real DNS server (dnsmasq on loopback) that names two
// of historyWindows' remotes and no other.
func namesServer(t *testing.T) string {
	return dnstest.Start(t, map[netip.Addr]string{
		netip.MustParseAddr("198.51.100.2"): "web.example.org",
		netip.MustParseAddr("2001:db8::6"):  "six.example.net",
	})
}

// fields is a table line's columns.
func fieldsOf(out, first string) []string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return f
		}
	}
	return nil
}

// query --names adds each remote's reverse-DNS name to the remote table,
// asked of a real DNS server; a remote without one shows -, and the
// stored windows do not change.
func TestQueryNames(t *testing.T) {
	server := namesServer(t)
	db := historyDB(t)
	_, plain, _ := runCmd(t, "query", "--db", db, "--last", "30", "--utc")
	code, out, stderr := runCmd(t, "query", "--db", db, "--last", "30", "--utc", "--names", "--dns-server", server)
	if code != 0 {
		t.Fatal(stderr)
	}
	if f := fieldsOf(out, "REMOTE"); len(f) < 2 || f[1] != "NAME" {
		t.Errorf("no NAME column:\n%s", out)
	}
	for addr, want := range map[string]string{"198.51.100.2": "web.example.org", "2001:db8::6": "six.example.net", "198.51.100.1": "-"} {
		if f := fieldsOf(out, addr); len(f) < 2 || f[1] != want {
			t.Errorf("%s: want name %s, the row: %v\n%s", addr, want, f, out)
		}
	}
	// The rest of each row is query's without --names.
	for _, l := range strings.Split(plain, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		if _, err := netip.ParseAddr(f[0]); err != nil {
			continue
		}
		g := fieldsOf(out, f[0])
		if len(g) != len(f)+1 || strings.Join(g[2:], " ") != strings.Join(f[1:], " ") {
			t.Errorf("row %s differs beyond its name: %v vs %v", f[0], g, f)
		}
	}
	// Names are shown, never stored.
	_, js, _ := runCmd(t, "query", "--db", db, "--last", "30", "--by", "window", "--format", "json")
	if strings.Contains(js, "example.org") {
		t.Errorf("a name reached the stored windows")
	}
	// A server that does not answer costs the lookup timeout, not a hang.
	start := time.Now()
	code, out, _ = runCmd(t, "query", "--db", db, "--last", "30", "--names", "--dns-server", "127.0.0.1:9")
	if code != 0 || time.Since(start) > 10*time.Second || fieldsOf(out, "198.51.100.2")[1] != "-" {
		t.Errorf("with no DNS server: exit %d after %v:\n%s", code, time.Since(start), out)
	}
}

// top --names: plain lines get a NAME column, the terminal view shows each
// name beside its address once the background lookup answers.
func TestTopNames(t *testing.T) {
	server := namesServer(t)
	db := serviceDB(t)
	code, out, stderr := runCmd(t, "top", "--db", db, "--once", "--utc", "--names", "--dns-server", server)
	if code != 0 {
		t.Fatal(stderr)
	}
	if f := fieldsOf(out, "REMOTE"); len(f) < 2 || f[1] != "NAME" {
		t.Errorf("no NAME column:\n%s", out)
	}
	if f := fieldsOf(out, "198.51.100.2"); len(f) < 2 || f[1] != "web.example.org" {
		t.Errorf("198.51.100.2: %v\n%s", f, out)
	}
	if f := fieldsOf(out, "198.51.100.1"); len(f) < 2 || f[1] != "-" {
		t.Errorf("198.51.100.1: %v\n%s", f, out)
	}

	if _, err := exec.LookPath("tmux"); err != nil {
		netnstest.Unable(t, "needs tmux (apt-get install tmux; scripts/test installs it as root)")
	}
	_, js, _ := runCmd(t, "query", "--db", db, "--last", "30", "--format", "json")
	rows, _ := query.RowsFromJSON([]byte(js), query.ByRemote)
	sock := "dstwatch-test-names-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { exec.Command("tmux", "-L", sock, "kill-server").Run() })
	tmux(t, sock, "new-session", "-d", "-s", "top", "-x", "100", "-y", "40",
		"TZ=UTC "+binary(t)+" top --db "+db+" --utc --names --dns-server "+server+"; echo top-exited-$?; sleep 30")
	var pane string
	if !waitFor(10*time.Second, func() bool {
		pane = tmux(t, sock, "capture-pane", "-p", "-t", "top")
		return strings.Contains(pane, "198.51.100.2 web.example.org ") && strings.Contains(pane, "2001:db8::6 six.example.net ")
	}) {
		t.Fatalf("the names did not show:\n%s", pane)
	}
	for _, r := range rows {
		if r.IsOther() {
			continue
		}
		if f := fieldsOf(pane, r.Key); f == nil {
			t.Errorf("row %s is gone:\n%s", r.Key, pane)
		}
	}
	tmux(t, sock, "send-keys", "-t", "top", "q")
}

// Package dnstest starts a real DNS server for tests: dnsmasq on loopback,
// on a free high port, answering PTR (and forward) queries from a hosts
// file the test gives, and nothing else (no upstream, no system files).
package dnstest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// Start runs dnsmasq serving names (address -> host name) and returns its
// host:port. It is stopped when the test ends.
func Start(t testing.TB, names map[netip.Addr]string) string {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/dnsmasq"); err != nil {
			netnstest.Unable(t, "needs dnsmasq (apt-get install dnsmasq-base; scripts/test installs it as root)")
		}
		bin = "/usr/sbin/dnsmasq"
	}
	dir := t.TempDir()
	var hosts strings.Builder
	for a, n := range names {
		fmt.Fprintf(&hosts, "%s %s\n", a, n)
	}
	hostsFile := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsFile, []byte(hosts.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		port := freeUDPPort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		args := []string{"--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
			"--addn-hosts=" + hostsFile, "--listen-address=127.0.0.1", "--bind-interfaces",
			fmt.Sprintf("--port=%d", port), "--pid-file=", "--conf-file=/dev/null", "--log-facility=-"}
		if os.Getuid() == 0 {
			args = append(args, "--user=root") // no dnsmasq user is needed
		}
		cmd := exec.Command(bin, args...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		if ready(addr, names, done) {
			return addr
		}
		cmd.Process.Kill()
		<-done
		t.Logf("dnsmasq on %s did not answer (port taken?): %s", addr, out.String())
	}
	t.Fatal("dnsmasq did not start")
	return ""
}

// ready waits until the server answers one of names, or exits.
func ready(addr string, names map[netip.Addr]string, exited <-chan struct{}) bool {
	r := Resolver(addr)
	var probe netip.Addr
	for a := range names {
		probe = a
		break
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := r.LookupAddr(ctx, probe.String())
		cancel()
		if err == nil || !probe.IsValid() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Resolver is a net.Resolver that asks only the server at addr.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func freeUDPPort(t testing.TB) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

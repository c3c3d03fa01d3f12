package capture

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Test helpers for real network namespaces. Traffic in these tests goes only
// between namespaces the test creates, to documentation addresses.

// vethPair is two fresh network namespaces joined by a veth pair: interface
// IfA in namespace A, IfB in namespace B, both up with the given addresses.
type vethPair struct {
	A, B     string // namespace names
	IfA, IfB string // interface names inside them
}

// newVethPair creates the namespaces and link, or skips the test when the
// environment cannot (not root, no ip tool, no netns support). Everything is
// removed in t.Cleanup, also when the test fails halfway.
func newVethPair(t *testing.T, addrsA, addrsB []string) *vethPair {
	t.Helper()
	if os.Geteuid() != 0 {
		netnstest.Unable(t, "live capture test needs root (network namespaces, AF_PACKET)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		netnstest.Unable(t, "live capture test needs the ip tool (iproute2)")
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	v := &vethPair{
		A:   "dstw-cap-" + hex.EncodeToString(suffix) + "-a",
		B:   "dstw-cap-" + hex.EncodeToString(suffix) + "-b",
		IfA: "veth-a",
		IfB: "veth-b",
	}
	if out, err := exec.Command("ip", "netns", "add", v.A).CombinedOutput(); err != nil {
		netnstest.Unable(t, "cannot create a network namespace (%v: %s); live capture test needs root and netns support", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", v.A).Run() })
	ipCmd(t, "netns", "add", v.B)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", v.B).Run() })

	ipCmd(t, "-n", v.A, "link", "add", v.IfA, "type", "veth", "peer", "name", v.IfB, "netns", v.B)
	for _, side := range []struct {
		ns, ifc string
		addrs   []string
	}{{v.A, v.IfA, addrsA}, {v.B, v.IfB, addrsB}} {
		for _, a := range side.addrs {
			args := []string{"-n", side.ns, "addr", "add", a, "dev", side.ifc}
			if strings.Contains(a, ":") {
				args = append(args, "nodad")
			}
			ipCmd(t, args...)
		}
		ipCmd(t, "-n", side.ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", side.ns, "link", "set", side.ifc, "up")
	}
	return v
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread switched into the named namespace. Sockets
// fn opens stay in that namespace for life, whichever thread later uses
// them. The thread is switched back afterwards; if that fails, the goroutine
// exits still locked, and the runtime then discards the thread rather than
// reuse it in the wrong namespace.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", name, err)
			return // still locked: the thread dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

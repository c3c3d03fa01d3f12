// Package netnstest gives tests two real network namespaces joined by a veth
// pair, addressed from the documentation ranges, so that live capture is
// tested on real AF_PACKET sockets with traffic that never leaves them.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Fixed addresses: A is the host dstwatch watches, B its peers. B2 is a
// second peer address, handy as an excluded remote.
var (
	A4  = netip.MustParseAddr("198.51.100.1")
	B4  = netip.MustParseAddr("198.51.100.2")
	B4b = netip.MustParseAddr("198.51.100.3")
	A6  = netip.MustParseAddr("2001:db8:1::1")
	B6  = netip.MustParseAddr("2001:db8:1::2")
)

const (
	macA = "02:00:5e:00:53:01"
	macB = "02:00:5e:00:53:02"
)

// Pair is two namespaces, A and B, joined by veth IfA (in A) and IfB (in B).
type Pair struct {
	A, B     string // namespace names
	IfA, IfB string
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// New creates the pair and removes it when the test ends, also on failure.
// It skips the test, saying why, where namespaces cannot be made.
func New(t testing.TB) *Pair {
	t.Helper()
	if os.Geteuid() != 0 {
		Unable(t, "live test needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		Unable(t, "live test needs the ip command (apt-get install iproute2)")
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	p := &Pair{A: "dstw-" + id + "-a", B: "dstw-" + id + "-b", IfA: "dw" + id + "a", IfB: "dw" + id + "b"}
	if err := ip("netns", "add", p.A); err != nil {
		Unable(t, "cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() { ip("netns", "del", p.A) })
	if err := ip("netns", "add", p.B); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ip("netns", "del", p.B) })

	if err := p.link(); err != nil {
		t.Fatal(err)
	}
	return p
}

// link creates the veth pair with its addresses and neighbours.
func (p *Pair) link() error {
	steps := [][]string{
		{"link", "add", p.IfA, "netns", p.A, "address", macA, "type", "veth", "peer", "name", p.IfB, "netns", p.B, "address", macB},
		// No link-local addresses, router solicitations or DAD: the only
		// traffic on the wire is what a test sends.
		{"-n", p.A, "link", "set", p.IfA, "addrgenmode", "none"},
		{"-n", p.B, "link", "set", p.IfB, "addrgenmode", "none"},
		{"-n", p.A, "addr", "add", A4.String() + "/24", "dev", p.IfA},
		{"-n", p.A, "addr", "add", A6.String() + "/64", "dev", p.IfA, "nodad"},
		{"-n", p.B, "addr", "add", B4.String() + "/24", "dev", p.IfB},
		{"-n", p.B, "addr", "add", B4b.String() + "/24", "dev", p.IfB},
		{"-n", p.B, "addr", "add", B6.String() + "/64", "dev", p.IfB, "nodad"},
		// Static neighbours: no ARP or neighbour discovery to count around.
		{"-n", p.A, "neigh", "add", B4.String(), "lladdr", macB, "dev", p.IfA, "nud", "permanent"},
		{"-n", p.A, "neigh", "add", B4b.String(), "lladdr", macB, "dev", p.IfA, "nud", "permanent"},
		{"-n", p.A, "neigh", "add", B6.String(), "lladdr", macB, "dev", p.IfA, "nud", "permanent"},
		{"-n", p.B, "neigh", "add", A4.String(), "lladdr", macA, "dev", p.IfB, "nud", "permanent"},
		{"-n", p.B, "neigh", "add", A6.String(), "lladdr", macA, "dev", p.IfB, "nud", "permanent"},
		{"-n", p.A, "link", "set", "lo", "up"},
		{"-n", p.B, "link", "set", "lo", "up"},
		{"-n", p.A, "link", "set", p.IfA, "up"},
		{"-n", p.B, "link", "set", p.IfB, "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// Relink creates the veth pair again, deleting it first if it still
// exists, as when a VPN or a container restarts: same names and addresses,
// new interfaces.
func (p *Pair) Relink(t testing.TB) {
	t.Helper()
	ip("-n", p.A, "link", "del", p.IfA) // may be gone already
	if err := p.link(); err != nil {
		t.Fatal(err)
	}
}

// IP runs the ip command, failing the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if err := ip(args...); err != nil {
		t.Fatal(err)
	}
}

// Unable skips a live test that cannot run here, saying why, but fails it
// under CI (CI set in the environment): there the live tests are the point,
// and a run that skipped them all must not pass.
func Unable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set: a live test must run, not skip)", args...)
	}
	t.Skipf(format, args...)
}

// Do runs fn on an OS thread that has entered namespace ns. Sockets fn opens
// stay in that namespace after fn returns.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it may end up in a state that is
		// not worth restoring, and Go then retires it with the goroutine.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Command returns a command that runs inside namespace ns.
func Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// HwA and HwB are the MAC addresses of IfA and IfB.
var HwA, HwB = mustMAC(macA), mustMAC(macB)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// SendRaw sends frame n times, exactly as given (Ethernet header included),
// out of interface ifc in namespace ns through an AF_PACKET socket: the way
// to put on the wire what no socket API builds, such as forged IP lengths or
// a peer using the host's own address as its source.
func SendRaw(ns, ifc string, frame []byte, n int) error {
	return Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifc)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], frame[:6])
		for range n {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				return fmt.Errorf("send raw frame on %s: %w", ifc, err)
			}
		}
		return nil
	})
}

package main

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/window"
)

func rxFrom(t *testing.T, db, remote string) uint64 {
	t.Helper()
	var n uint64
	for _, w := range readAll(t, db) {
		for _, r := range w.Remotes {
			if r.Addr.String() == remote {
				n += r.RxPackets
			}
		}
	}
	return n
}

// The interface goes down and comes back, or is deleted and created again:
// the daemon keeps running, counts the outage, and captures again.
func TestInterfaceOutages(t *testing.T) {
	t.Parallel() // in namespaces of its own
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, p *netnstest.Pair)
		mend   func(t *testing.T, p *netnstest.Pair)
	}{
		{"down-up",
			func(t *testing.T, p *netnstest.Pair) { netnstest.IP(t, "-n", p.A, "link", "set", p.IfA, "down") },
			func(t *testing.T, p *netnstest.Pair) { netnstest.IP(t, "-n", p.A, "link", "set", p.IfA, "up") }},
		{"gone-and-back",
			func(t *testing.T, p *netnstest.Pair) { netnstest.IP(t, "-n", p.A, "link", "del", p.IfA) },
			func(t *testing.T, p *netnstest.Pair) { p.Relink(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := netnstest.New(t)
			dir := t.TempDir()
			db := filepath.Join(dir, "out.db")
			sock := filepath.Join(dir, "dstwatch.sock")
			// IPv4 only: IPv6 addresses leave with a downed link.
			d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--local", netnstest.A4.String())
			sink(t, p.A, netnstest.A4)
			send(t, p.B, netnstest.B4, netnstest.A4, 10, 72)
			time.Sleep(300 * time.Millisecond)

			tc.break_(t, p)
			await(t, 5*time.Second, "the outage in status", func() bool {
				st := daemonStatus(t, sock)
				return st.Capture.Gaps == 1 && len(st.Capture.Down) == 1
			})
			tc.mend(t, p)
			await(t, 10*time.Second, "capture to resume", func() bool { return strings.Contains(d.stderr.String(), "capture resumed") })
			send(t, p.B, netnstest.B4, netnstest.A4, 15, 72)
			time.Sleep(1500 * time.Millisecond)
			if st := daemonStatus(t, sock); len(st.Capture.Down) != 0 {
				t.Errorf("still reported down: %v", st.Capture.Down)
			}
			d.stop(t)
			if got := rxFrom(t, db, netnstest.B4.String()); got != 25 {
				t.Fatalf("counted %d packets from %v, want 10 before and 15 after the outage", got, netnstest.B4)
			}
			// The windows of the outage say so; the whole ones around it do not.
			var outage, whole int
			for _, w := range readAll(t, db) {
				switch {
				case w.Stats.Partial&window.PartialOutage != 0:
					outage++
				case w.Stats.Partial == 0:
					whole++
				}
			}
			if outage == 0 || whole == 0 {
				t.Errorf("%d windows marked partial for the outage, %d whole; want some of each", outage, whole)
			}
		})
	}
}

// A new address on the interface (DHCP, SLAAC) becomes local without a
// restart: traffic to it is ingress, not transit.
func TestAddressChangeFollowed(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "addr.db")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1h")
	netnstest.IP(t, "-n", p.A, "addr", "add", "198.51.100.50/24", "dev", p.IfA)
	netnstest.IP(t, "-n", p.B, "neigh", "add", "198.51.100.50", "lladdr", "02:00:5e:00:53:01", "dev", p.IfB, "nud", "permanent")
	await(t, 10*time.Second, "the new address to be noticed", func() bool {
		return strings.Contains(d.stderr.String(), "local addresses changed")
	})
	new50 := netip4("198.51.100.50")
	sink(t, p.A, new50)
	send(t, p.B, netnstest.B4, new50, 12, 72)
	time.Sleep(300 * time.Millisecond)
	d.stop(t)
	ws := readAll(t, db)
	if got := rxFrom(t, db, netnstest.B4.String()); got != 12 || ws[0].Stats.Transit != 0 {
		t.Fatalf("to the new address: %d ingress packets, %d transit; want 12 and 0", got, ws[0].Stats.Transit)
	}
}

func netip4(s string) netip.Addr { return netip.MustParseAddr(s) }

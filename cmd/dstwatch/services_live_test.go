package main

import (
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/rotate"
)

// tcpEcho listens on addr in ns and echoes every connection until the
// test ends.
func tcpEcho(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := netnstest.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

// tcpExchange connects from ns to addr, sends n bytes, reads the echo and
// closes.
func tcpExchange(t *testing.T, ns, addr string, n int) {
	t.Helper()
	err := netnstest.Do(ns, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(make([]byte, n)); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, n))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLiveServices runs a real TCP server in A (the watched host) and a
// client in B, a client in A fetching from a server in B on port 443, and
// a UDP exchange to a port above the ephemeral start that A listens on:
// 8080/tcp in, 443/tcp out, 45000/udp in. Per-service totals must add up to
// the per-remote totals exactly, and the UDP service must be exact.
func TestLiveServices(t *testing.T) {
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")

	tcpEcho(t, p.A, "198.51.100.1:8080")
	tcpEcho(t, p.B, "198.51.100.2:443")
	var u *net.UDPConn
	// Listening before the daemon starts: it reads the tables at start.
	if err := netnstest.Do(p.A, func() (err error) {
		u, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("198.51.100.1"), Port: 45000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go io.Copy(io.Discard, readerOf(u))

	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1h", "--ephemeral-start", "32768")
	tcpExchange(t, p.B, "198.51.100.1:8080", 3000)
	tcpExchange(t, p.A, "198.51.100.2:443", 5000)
	err := netnstest.Do(p.B, func() error {
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.ParseIP("198.51.100.1"), Port: 45000})
		if err != nil {
			return err
		}
		defer c.Close()
		for range 50 {
			if _, err := c.Write(make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	d.stop(t)

	ws := readAll(t, db)
	var remotes, services rotate.Counts
	got := map[string]rotate.Counts{}
	for _, w := range ws {
		for _, r := range w.Remotes {
			if r.Addr != netnstest.B4 {
				t.Errorf("unexpected remote %v", r.Addr)
			}
			remotes.Add(r.Counts)
		}
		for _, s := range w.Services {
			services.Add(s.Counts)
			name := s.Key.String() + " " + s.Key.Side().String()
			c := got[name]
			c.Add(s.Counts)
			got[name] = c
			if len(s.Top) != 1 || s.Top[0].Addr != netip.MustParseAddr("198.51.100.2") || s.Remotes != 1 {
				t.Errorf("%s: remotes %d, rows %+v", name, s.Remotes, s.Top)
			}
		}
	}
	if remotes != services || remotes.IsZero() {
		t.Errorf("services add up to %+v, remotes to %+v", services, remotes)
	}
	if len(got) != 3 {
		t.Errorf("services %v, want 8080/tcp in, 443/tcp out, 45000/udp in", got)
	}
	for _, name := range []string{"8080/tcp in", "443/tcp out"} {
		c := got[name]
		// Both ways carried at least the payload plus a handshake.
		if c.TxPackets < 3 || c.RxPackets < 3 || c.TxBytes < 3000 || c.RxBytes < 3000 {
			t.Errorf("%s: %+v", name, c)
		}
	}
	if c, want := got["45000/udp in"], (rotate.Counts{RxPackets: 50, RxBytes: 50 * 128}); c != want {
		t.Errorf("45000/udp in: %+v, want %+v", c, want)
	}
	if _, ok := got["8080/tcp in"]; !ok {
		t.Error("the local server's port is not a service 'in'")
	}
}

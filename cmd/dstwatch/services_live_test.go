package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/window"
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
	t.Parallel() // in namespaces of its own
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
	var remotes, services window.Counts
	got := map[string]window.Counts{}
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
	if c, want := got["45000/udp in"], (window.Counts{RxPackets: 50, RxBytes: 50 * 128}); c != want {
		t.Errorf("45000/udp in: %+v, want %+v", c, want)
	}
	if _, ok := got["8080/tcp in"]; !ok {
		t.Error("the local server's port is not a service 'in'")
	}
}

// udpEcho binds addr in ns and answers every datagram with itself until the
// test ends.
func udpEcho(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var u *net.UDPConn
	if err := netnstest.Do(ns, func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		u, err = net.ListenUDP("udp", a)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			u.WriteToUDP(buf[:n], from)
		}
	}()
	return u
}

// udpAsk sends one datagram from laddr (port 0: the kernel picks one) in
// ns to raddr over a connected socket and waits for the answer.
func udpAsk(ns string, laddr, raddr *net.UDPAddr) error {
	return netnstest.Do(ns, func() error {
		c, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(make([]byte, 60)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 2048))
		return err
	})
}

// TestLiveServicesOrdinaryClients is a host as a new user has it: its
// resolver asks from random ports (also below the ephemeral start), a QUIC
// client, an unconnected UDP client (sendto without connect, listed in the
// kernel's table like a server), UDP servers on 51820 (in the ephemeral
// range) and 5353, a TCP server on 8080, and a scan of closed TCP and UDP
// ports. The services must be exactly those it uses and runs, plus one
// scan bucket per protocol, and discover must list only the real ones.
func TestLiveServicesOrdinaryClients(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	a4 := net.IP(netnstest.A4.AsSlice())
	b4 := net.IP(netnstest.B4.AsSlice())

	for _, port := range []string{"53", "443", "3478"} {
		udpEcho(t, p.B, "198.51.100.2:"+port)
	}
	udpEcho(t, p.A, "198.51.100.1:51820")
	udpEcho(t, p.A, "0.0.0.0:5353")
	tcpEcho(t, p.A, "198.51.100.1:8080")
	// The unconnected client exists when the daemon reads the tables.
	var stun *net.UDPConn
	if err := netnstest.Do(p.A, func() (err error) {
		stun, err = net.ListenUDP("udp", &net.UDPAddr{IP: a4})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stun.Close() })

	target := fmt.Sprintf("127.0.0.1:%d", freePort(t, p.A))
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "2s", "--metrics", target)

	// The resolver: 20 queries, from ports below and in the ephemeral range.
	const queries = 20
	for i := range queries {
		port := 0 // the kernel picks one in the ephemeral range
		if i%4 != 3 {
			port = []int{1500, 5000, 20000}[i%4] + i
		}
		if err := udpAsk(p.A, &net.UDPAddr{IP: a4, Port: port}, &net.UDPAddr{IP: b4, Port: 53}); err != nil {
			t.Fatalf("dns query %d: %v", i, err)
		}
	}
	// QUIC: a connected socket on a kernel-picked port to :443.
	for range 5 {
		if err := udpAsk(p.A, &net.UDPAddr{IP: a4}, &net.UDPAddr{IP: b4, Port: 443}); err != nil {
			t.Fatal(err)
		}
	}
	// The unconnected client: sendto and recvfrom on its unconnected socket.
	for range 5 {
		if _, err := stun.WriteToUDP(make([]byte, 60), &net.UDPAddr{IP: b4, Port: 3478}); err != nil {
			t.Fatal(err)
		}
		stun.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := stun.ReadFromUDP(make([]byte, 2048)); err != nil {
			t.Fatal(err)
		}
	}
	// Peers of the host's servers write first.
	for range 5 {
		for _, port := range []int{51820, 5353} {
			if err := udpAsk(p.B, &net.UDPAddr{IP: b4}, &net.UDPAddr{IP: a4, Port: port}); err != nil {
				t.Fatalf("to %d: %v", port, err)
			}
		}
	}
	tcpExchange(t, p.B, "198.51.100.1:8080", 2000)
	// The scan: 200 closed TCP ports and 200 closed UDP ports.
	err := netnstest.Do(p.B, func() error {
		for i := range 200 {
			port := 1000 + i*293
			c, err := net.DialTimeout("tcp", net.JoinHostPort("198.51.100.1", strconv.Itoa(port)), time.Second)
			if err == nil {
				c.Close()
				return fmt.Errorf("port %d is open", port)
			}
			u, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: a4, Port: port + 7})
			if err != nil {
				return err
			}
			u.Write(make([]byte, 20))
			u.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The metric series: every window with traffic is stored 2.5 s after
	// it began at the latest.
	time.Sleep(3 * time.Second)
	var page []byte
	if err := netnstest.Do(p.A, func() error {
		// By hand: net/http dials on another thread, outside the namespace.
		c, err := net.Dial("tcp", target)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		page, err = io.ReadAll(c)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, m := range regexp.MustCompile(`dstwatch_service_traffic_packets_total\{direction="[a-z]+",service="([^"]+)",side="([a-z]+)"\}`).FindAllStringSubmatch(string(page), -1) {
		series[m[1]+" "+m[2]] = true
	}
	for s := range series {
		switch s {
		case "53/udp out", "443/udp out", "3478/udp out", "51820/udp in", "5353/udp in", "8080/tcp in", "0/tcp scan", "0/udp scan", "0/icmp none":
		default:
			t.Errorf("metric series for service %s", s)
		}
	}
	if !series["53/udp out"] || !series["0/tcp scan"] {
		t.Errorf("metric series %v lack 53/udp out or 0/tcp scan", series)
	}
	d.stop(t)

	got := map[string]window.Counts{}
	var remotes, services window.Counts
	for _, w := range readAll(t, db) {
		for _, r := range w.Remotes {
			remotes.Add(r.Counts)
		}
		for _, s := range w.Services {
			services.Add(s.Counts)
			name := s.Key.String() + " " + s.Key.Side().String()
			c := got[name]
			c.Add(s.Counts)
			got[name] = c
		}
	}
	if remotes != services {
		t.Errorf("services add up to %+v, remotes to %+v", services, remotes)
	}
	want := map[string]window.Counts{
		"53/udp out":   {TxPackets: queries, RxPackets: queries},
		"443/udp out":  {TxPackets: 5, RxPackets: 5},
		"3478/udp out": {TxPackets: 5, RxPackets: 5},
		"51820/udp in": {TxPackets: 5, RxPackets: 5},
		"5353/udp in":  {TxPackets: 5, RxPackets: 5},
		"8080/tcp in":  {},
		"0/tcp scan":   {RxPackets: 200, TxPackets: 200}, // each SYN and its RST
		"0/udp scan":   {RxPackets: 200},
	}
	for name, w := range want {
		c, ok := got[name]
		switch {
		case !ok:
			t.Errorf("no %s", name)
		case name == "8080/tcp in":
			if c.TxPackets < 3 || c.RxPackets < 3 {
				t.Errorf("%s: %+v", name, c)
			}
		case c.TxPackets != w.TxPackets || c.RxPackets != w.RxPackets:
			t.Errorf("%s: %d tx %d rx packets, want %d and %d", name, c.TxPackets, c.RxPackets, w.TxPackets, w.RxPackets)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && name != "0/icmp " {
			t.Errorf("unexpected service %s: %+v", name, got[name])
		}
	}

	code, out, stderr := runCmd(t, "discover", "services", "--db", db)
	if code != 0 {
		t.Fatalf("discover: exit %d: %s", code, stderr)
	}
	var disc struct{ Data []map[string]string }
	if err := json.Unmarshal([]byte(out), &disc); err != nil {
		t.Fatalf("discover: %v: %s", err, out)
	}
	var names []string
	for _, e := range disc.Data {
		if n := e["{#SERVICE}"] + " " + e["{#SIDE}"]; n != "0/icmp " {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if w := []string{"3478/udp out", "443/udp out", "51820/udp in", "53/udp out", "5353/udp in", "8080/tcp in"}; !slices.Equal(names, w) {
		t.Errorf("discover services lists %v, want %v", names, w)
	}
}

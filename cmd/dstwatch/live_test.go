package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
	"github.com/dstwatch/dstwatch/internal/netnstest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds dstwatch once per test run: live tests run the real daemon
// as its own process, so that it can be signalled like in production.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dstwatch-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dstwatch")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemon is a dstwatch process running inside a namespace.
type daemon struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs dstwatch in ns and waits until it captures.
func startDaemon(t *testing.T, ns string, args ...string) *daemon {
	t.Helper()
	return startDaemonCmd(t, netnstest.Command(ns, binary(t), append([]string{"run"}, args...)...))
}

// startDaemonCmd starts cmd, a dstwatch run however wrapped, and waits
// until it captures.
func startDaemonCmd(t *testing.T, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", d.stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.stderr.String(), "msg=capturing") {
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited early (%v):\n%s", err, d.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start capturing:\n%s", d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// stop sends SIGTERM and requires a clean exit within a few seconds.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("daemon did not stop within 5s of SIGTERM:\n%s", d.stderr.String())
	}
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
}

// sink listens for UDP in a namespace, so that datagrams sent there are not
// answered with ICMP port-unreachable (which would be traffic of its own).
func sink(t *testing.T, ns string, addr netip.Addr) {
	t.Helper()
	var c *net.UDPConn
	err := netnstest.Do(ns, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 9000)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go io.Copy(io.Discard, readerOf(c))
}

type udpReader struct{ c *net.UDPConn }

func (r udpReader) Read(p []byte) (int, error) { n, _, err := r.c.ReadFromUDP(p); return n, err }

func readerOf(c *net.UDPConn) io.Reader { return udpReader{c} }

// send sends n datagrams of size payload bytes from src to dst:9000, from ns.
func send(t *testing.T, ns string, src, dst netip.Addr, n, payload int) {
	t.Helper()
	err := netnstest.Do(ns, func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9000)))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, payload)
		for range n {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type remoteRow struct {
	Addr      string `json:"addr"`
	Country   string `json:"country"`
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
}

func queryRemotes(t *testing.T, db string) map[string]remoteRow {
	t.Helper()
	code, out, stderr := runCmd(t, "query", "--db", db, "--by", "remote", "--format", "json", "--from", "-1h", "--to", "+1h")
	if code != 0 {
		t.Fatalf("query: exit %d: %s", code, stderr)
	}
	var rows []remoteRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := map[string]remoteRow{}
	for _, r := range rows {
		m[r.Addr] = r
	}
	return m
}

func TestLiveCaptureExactCounts(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	country := filepath.Join(dir, "country.mmdb")
	if err := mmdbtest.Country(country, map[string]string{"198.51.100.0/24": "NL", "2001:db8::/32": "DE"}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "live.db")
	// A window longer than the test: what is stored is the partial window
	// that SIGTERM must keep.
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--geoip", country, "--exclude", netnstest.B4b.String(), "--window", "1h")

	sink(t, p.A, netnstest.A4)
	sink(t, p.A, netnstest.A6)
	sink(t, p.B, netnstest.B4)
	sink(t, p.B, netnstest.B6)
	send(t, p.B, netnstest.B4, netnstest.A4, 50, 100)  // rx, IP length 128
	send(t, p.A, netnstest.A4, netnstest.B4, 40, 300)  // tx, 328
	send(t, p.B, netnstest.B6, netnstest.A6, 30, 200)  // rx, 248
	send(t, p.A, netnstest.A6, netnstest.B6, 20, 1000) // tx, 1048
	send(t, p.B, netnstest.B4b, netnstest.A4, 25, 10)  // excluded
	time.Sleep(500 * time.Millisecond)                 // past the ring's block timeout
	d.stop(t)

	got := queryRemotes(t, db)
	want := map[string]remoteRow{
		"198.51.100.2":  {Addr: "198.51.100.2", Country: "NL", TxPackets: 40, TxBytes: 40 * 328, RxPackets: 50, RxBytes: 50 * 128},
		"2001:db8:1::2": {Addr: "2001:db8:1::2", Country: "DE", TxPackets: 20, TxBytes: 20 * 1048, RxPackets: 30, RxBytes: 30 * 248},
	}
	for addr, w := range want {
		if got[addr] != w {
			t.Errorf("%s: got %+v, want %+v", addr, got[addr], w)
		}
	}
	if r, ok := got[netnstest.B4b.String()]; ok {
		t.Errorf("excluded remote was tallied: %+v", r)
	}
	if len(got) != len(want) {
		t.Errorf("remotes %v, want only %v", got, want)
	}
	ws := readAll(t, db)
	if len(ws) != 1 || ws[0].Stats.Excluded != 25 || ws[0].Stats.Tallied != 140 {
		t.Errorf("want one window with 140 tallied and 25 excluded, got %d windows: %+v", len(ws), ws[0].Stats)
	}
	rec, _ := os.ReadFile(filepath.Join(dir, "records.log"))
	if !strings.Contains(string(rec), "NL 198.51.100.2") {
		t.Errorf("record log lacks the remote line:\n%s", rec)
	}
}

// Windows close on time, empty ones too, and nothing is lost or counted
// twice across boundaries.
func TestLiveWindowsRotate(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s")
	sink(t, p.A, netnstest.A4)
	const bursts, per = 8, 25
	for range bursts {
		send(t, p.B, netnstest.B4, netnstest.A4, per, 72) // IP length 100
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // at least one quiet window
	d.stop(t)

	ws := readAll(t, db)
	var packets, bytes uint64
	empty := 0
	for i, w := range ws {
		if i > 0 && !w.Start.Equal(ws[i-1].End()) {
			t.Errorf("gap between windows %v and %v while the daemon ran", ws[i-1].Start, w.Start)
		}
		if len(w.Remotes) == 0 {
			empty++
		}
		for _, r := range w.Remotes {
			packets += r.RxPackets
			bytes += r.RxBytes
		}
	}
	if packets != bursts*per || bytes != bursts*per*100 {
		t.Errorf("over %d windows: %d packets %d bytes, want %d and %d", len(ws), packets, bytes, bursts*per, bursts*per*100)
	}
	if len(ws) < 3 || empty == 0 {
		t.Errorf("want several windows including an empty one, got %d (%d empty)", len(ws), empty)
	}
	sc := bufio.NewScanner(strings.NewReader(d.stderr.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level=ERROR") {
			t.Errorf("daemon logged an error: %s", sc.Text())
		}
	}
}

// rawIPv4 is an Ethernet frame from HwB to HwA carrying an IPv4 UDP header
// to port 9000 with the given total length field, whatever the frame's real
// size: 42 bytes on the wire (14 Ethernet, 20 IP, 8 UDP) plus payload.
func rawIPv4(src, dst netip.Addr, totalLen uint16, payload int) []byte {
	f := make([]byte, 42+payload)
	copy(f[0:], netnstest.HwA)
	copy(f[6:], netnstest.HwB)
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0] = 0x45
	ip[2], ip[3] = byte(totalLen>>8), byte(totalLen)
	ip[8], ip[9] = 64, 17
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	udp := ip[20:]
	udp[0], udp[1] = 0x30, 0x39 // 12345
	udp[2], udp[3] = 0x23, 0x28 // 9000
	ul := 8 + payload
	udp[4], udp[5] = byte(ul>>8), byte(ul)
	return f
}

// Frames a peer forges must not become counts: 100 frames of 42 bytes whose
// IPv4 total length says 65535 (the kernel drops them; once they were stored
// as 6,553,500 rx bytes), and 50 frames arriving with the host's own address
// as source (once stored as tx to their destination, though the host sent
// nothing). Real traffic both ways around them stays exact, so the packet
// type read from the ring tells sent from received.
func TestLiveForgedAndSpoofedFrames(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1h")
	sink(t, p.A, netnstest.A4)
	sink(t, p.B, netnstest.B4)

	send(t, p.B, netnstest.B4, netnstest.A4, 10, 100) // rx, IP length 128
	send(t, p.A, netnstest.A4, netnstest.B4, 5, 300)  // tx, 328
	forged := rawIPv4(netnstest.B4, netnstest.A4, 65535, 0)
	if len(forged) != 42 {
		t.Fatalf("forged frame is %d bytes", len(forged))
	}
	if err := netnstest.SendRaw(p.B, p.IfB, forged, 100); err != nil {
		t.Fatal(err)
	}
	if err := netnstest.SendRaw(p.B, p.IfB, rawIPv4(netnstest.A4, netnstest.B4, 28, 0), 50); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // past the ring's block timeout
	d.stop(t)

	got := queryRemotes(t, db)
	want := remoteRow{Addr: "198.51.100.2", Country: "", TxPackets: 5, TxBytes: 5 * 328, RxPackets: 10, RxBytes: 10 * 128}
	if got["198.51.100.2"] != want || len(got) != 1 {
		t.Errorf("remotes %+v, want only %+v", got, want)
	}
	ws := readAll(t, db)
	if len(ws) != 1 {
		t.Fatalf("%d windows, want 1", len(ws))
	}
	if s := ws[0].Stats; s.Oversize != 100 || s.Spoofed != 50 || s.Tallied != 15 || s.Frames != s.Tallied+s.Skipped() {
		t.Errorf("stats %+v, want 15 tallied, 100 oversize, 50 spoofed", s)
	}
}

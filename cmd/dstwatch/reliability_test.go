package main

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

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/mmdbtest"
	"github.com/dstwatch/dstwatch/internal/netnstest"
)

func daemonStatus(t *testing.T, sock string) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := api.NewClient(sock).Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// await fails the test unless cond holds within d.
func await(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(d, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// peers gives namespace B n more addresses, 198.51.100.10 and up.
func peers(t *testing.T, p *netnstest.Pair, n int) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
		if b, err := exec.Command("ip", "-n", p.B, "addr", "add", a.String()+"/24", "dev", p.IfB).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		out = append(out, a)
	}
	return out
}

// burst sends one datagram of 72 bytes (IP length 100) from every address.
func burst(t *testing.T, p *netnstest.Pair, from []netip.Addr) {
	t.Helper()
	err := netnstest.Do(p.B, func() error {
		buf := make([]byte, 72)
		for _, a := range from {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(netnstest.A4, 9000)))
			if err != nil {
				return err
			}
			c.Write(buf)
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A full file system: counting goes on, windows wait in memory, status says
// so, and once space is back every window is stored; nothing sent is lost.
func TestDiskFullKeepsCountingAndCatchesUp(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		netnstest.Unable(t, "cannot mount a tmpfs here: %v: %s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	db := filepath.Join(dir, "full.db")
	sock := filepath.Join(dir, "dstwatch.sock")
	from := peers(t, p, 200)
	sink(t, p.A, netnstest.A4)
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--log-top", "1")

	sent := 0
	send := func() { burst(t, p, from); sent += len(from) }
	send()
	await(t, 5*time.Second, "a first stored window", func() bool { return daemonStatus(t, sock).Writer.WindowsStored > 0 })

	// Fill the file system to the last byte.
	filler := filepath.Join(dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run()
	for range 8 {
		send()
		time.Sleep(400 * time.Millisecond)
	}
	await(t, 10*time.Second, "store errors", func() bool {
		st := daemonStatus(t, sock)
		return st.Writer.Errors > 0 && st.Writer.Failing != "" && st.Writer.Backlog > 0
	})
	select {
	case err := <-d.done:
		t.Fatalf("daemon died on a full disk: %v", err)
	default:
	}

	os.Remove(filler)
	send()
	await(t, 20*time.Second, "the queue to drain", func() bool {
		st := daemonStatus(t, sock)
		return st.Writer.Backlog == 0 && st.Writer.Failing == ""
	})
	time.Sleep(1500 * time.Millisecond)
	d.stop(t)

	var got uint64
	for _, w := range readAll(t, db) {
		for _, r := range w.Remotes {
			got += r.RxPackets
		}
	}
	if got != uint64(sent) {
		t.Fatalf("stored %d packets, sent %d", got, sent)
	}
	if st := d.stderr.String(); !strings.Contains(st, "store windows failed") || !strings.Contains(st, "storing works again") {
		t.Errorf("logs do not tell the story:\n%s", st)
	}
}

// geoipupdate renames a new file into place: windows closed after the swap
// get the new answers, without a restart.
func TestGeoIPRenameTakesEffectLive(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	geoPath := filepath.Join(dir, "GeoLite2-Country.mmdb")
	if err := mmdbtest.Country(geoPath, map[string]string{"198.51.100.0/24": "NL"}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "geo.db")
	sink(t, p.A, netnstest.A4)
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--geoip", geoPath)
	send(t, p.B, netnstest.B4, netnstest.A4, 5, 72)
	time.Sleep(1500 * time.Millisecond)

	if err := mmdbtest.Country(geoPath+".tmp", map[string]string{"198.51.100.0/24": "BE"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(geoPath+".tmp", geoPath); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "the reload", func() bool { return strings.Contains(d.stderr.String(), "geoip database reloaded") })
	send(t, p.B, netnstest.B4, netnstest.A4, 5, 72)
	time.Sleep(1500 * time.Millisecond)
	d.stop(t)

	var countries []string
	for _, w := range readAll(t, db) {
		for _, r := range w.Remotes {
			countries = append(countries, r.Country)
		}
	}
	if len(countries) < 2 || countries[0] != "NL" || countries[len(countries)-1] != "BE" {
		t.Fatalf("countries over time %v, want NL first and BE after the swap", countries)
	}
}

func TestAnonymizeTruncateAndHash(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	geoPath := filepath.Join(dir, "c.mmdb")
	if err := mmdbtest.Country(geoPath, map[string]string{"198.51.100.0/25": "NL", "198.51.100.128/25": "BE"}); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	sink(t, p.A, netnstest.A4)
	for _, mode := range []struct{ name, arg, want string }{
		{"truncate", "truncate", "198.51.100.0"},
		{"hash", "hash", "fd04:"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			db := filepath.Join(dir, mode.name+".db")
			args := []string{"-i", p.IfA, "--db", db, "--window", "1h", "--geoip", geoPath, "--anonymize", mode.arg}
			if mode.name == "hash" {
				args = append(args, "--anonymize-key", key)
			}
			d := startDaemon(t, p.A, args...)
			send(t, p.B, netnstest.B4, netnstest.A4, 7, 72)
			time.Sleep(300 * time.Millisecond)
			d.stop(t)
			ws := readAll(t, db)
			if len(ws) != 1 || len(ws[0].Remotes) != 1 {
				t.Fatalf("windows %+v", ws)
			}
			r := ws[0].Remotes[0]
			if !strings.HasPrefix(r.Addr.String(), mode.want) || r.Country != "NL" || r.RxPackets != 7 {
				t.Errorf("stored %v %q %d packets, want %s..., NL (from the real address), 7", r.Addr, r.Country, r.RxPackets, mode.want)
			}
			// The services' top rows are stored anonymised too.
			var svcRx uint64
			for _, sv := range ws[0].Services {
				for _, tr := range sv.Top {
					if !strings.HasPrefix(tr.Addr.String(), mode.want) {
						t.Errorf("service %v keeps remote %v, want %s...", sv.Key, tr.Addr, mode.want)
					}
					svcRx += tr.RxPackets
				}
			}
			if svcRx != 7 {
				t.Errorf("service top rows hold %d received packets, want the 7 sent", svcRx)
			}
			logText, _ := os.ReadFile(filepath.Join(dir, "records.log"))
			if strings.Contains(string(logText), netnstest.B4.String()) || strings.Contains(string(ws[0].Remotes[0].Addr.String()), netnstest.B4.String()) {
				t.Errorf("the full address reached the record log or the DB")
			}
		})
	}
}

func TestUserDropsRootAfterOpening(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := stateDir(t)
	db := filepath.Join(dir, "user.db")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1h", "--user", "nobody")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			for _, id := range f[1:] {
				if id != nobody {
					t.Errorf("%s still holds id %s after --user nobody", line, id)
				}
			}
		}
		if strings.HasPrefix(line, "CapEff:") && strings.TrimSpace(strings.TrimPrefix(line, "CapEff:")) != "0000000000000000" {
			t.Errorf("capabilities left: %s", line)
		}
	}
	sink(t, p.A, netnstest.A4)
	send(t, p.B, netnstest.B4, netnstest.A4, 9, 72)
	time.Sleep(300 * time.Millisecond)
	d.stop(t)
	if ws := readAll(t, db); len(ws) != 1 || ws[0].Remotes[0].RxPackets != 9 {
		t.Fatalf("after dropping root the open socket must keep capturing: %+v", ws)
	}
}

// Under systemd (Type=notify, WatchdogSec) the daemon says READY=1, pets the
// watchdog while windows close, and says STOPPING=1.
func TestSystemdNotify(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := netnstest.Command(p.A, binary(t), "run", "-i", p.IfA, "--db", filepath.Join(dir, "n.db"), "--window", "1s")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath, "WATCHDOG_USEC=1000000")
	d := startDaemonCmd(t, cmd)
	// WATCHDOG_PID is not set: ip netns exec keeps the pid, so the daemon
	// takes the watchdog as its own.
	got := map[string]int{}
	buf := make([]byte, 256)
	l.SetReadDeadline(time.Now().Add(4 * time.Second))
	for got["WATCHDOG=1"] < 2 {
		n, err := l.Read(buf)
		if err != nil {
			t.Fatalf("got %v before: %v", got, err)
		}
		got[string(buf[:n])]++
	}
	d.stop(t)
	l.SetReadDeadline(time.Now().Add(2 * time.Second))
	for got["STOPPING=1"] == 0 {
		n, err := l.Read(buf)
		if err != nil {
			break
		}
		got[string(buf[:n])]++
	}
	if got["READY=1"] != 1 || got["STOPPING=1"] != 1 {
		t.Fatalf("notifications %v, want READY=1 once, watchdog pings, STOPPING=1 once", got)
	}
}

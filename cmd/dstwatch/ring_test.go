package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// --ring-mb takes whole MiB within the bounds; anything else is one line
// and exit 2 before any socket is opened.
func TestRingMBRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	for _, v := range []string{"0", "1", "1025", "-4", "x", "1.5"} {
		code, stdout, stderr := runCmd(t, "run", "-i", "lo", "--db", db, "--ring-mb", v)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "ring-mb") {
			t.Errorf("--ring-mb %s: exit %d, stdout %q, stderr %q; want exit 2 and one line naming --ring-mb", v, code, stdout, stderr)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a refused start created the database (%v)", err)
	}
}

// ringMapping returns the size and resident size, in kB, of the process's
// packet ring: the kernel maps it as a shared mapping of the socket.
func ringMapping(t *testing.T, pid int) (sizeKB, rssKB int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && !strings.HasSuffix(fields[0], ":") { // a mapping's header line
			in = len(fields) >= 6 && strings.HasPrefix(fields[5], "socket:[")
			continue
		}
		if !in || len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Size:":
			sizeKB += n
		case "Rss:":
			rssKB += n
		}
	}
	return sizeKB, rssKB
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// The ring is the size --ring-mb asks for, all of it resident, and it is
// most of an idle daemon's memory: with 40 remotes in the windows, the old
// default (64 MiB) costs ~48 MB more RSS than the new one (16 MiB). The
// three daemons run side by side on the one interface, each seeing the
// same traffic: the measure is of each process alone.
func TestLiveRingSize(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	netnstest.IP(t, "-n", p.A, "route", "add", "203.0.113.0/24", "dev", p.IfA)
	var remotes []netip.Addr
	for i := 10; i < 50; i++ {
		r := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		remotes = append(remotes, r)
		netnstest.IP(t, "-n", p.B, "addr", "add", r.String()+"/32", "dev", p.IfB)
		netnstest.IP(t, "-n", p.A, "neigh", "add", r.String(), "lladdr", netnstest.HwB.String(), "dev", p.IfA, "nud", "permanent")
	}
	sink(t, p.A, netnstest.A4)
	sizes := []int{64, 0, 4} // the old default, the default, a small one
	daemons := map[int]*daemon{}
	for _, mb := range sizes {
		args := []string{"-i", p.IfA, "--db", filepath.Join(t.TempDir(), "r.db"), "--window", "1s", "--socket", "none"}
		if mb != 0 {
			args = append(args, "--ring-mb", strconv.Itoa(mb))
		}
		daemons[mb] = startDaemon(t, p.A, args...)
	}
	// Three windows with all 40 remotes in each, then an idle one.
	for range 3 {
		for _, r := range remotes {
			send(t, p.B, r, netnstest.A4, 5, 100)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(1500 * time.Millisecond)
	rss := map[int]int{}
	for _, mb := range sizes {
		want := mb
		if want == 0 {
			want = capture.DefaultNumBlocks
		}
		t.Run(fmt.Sprintf("ring-mb=%d", want), func(t *testing.T) {
			d := daemons[mb]
			pid := d.cmd.Process.Pid
			size, res := ringMapping(t, pid)
			rss[want] = vmRSS(t, pid)
			t.Logf("--ring-mb %d: ring mapping %d kB (%d kB resident), idle VmRSS %d kB", want, size, res, rss[want])
			if size != want*1024 {
				t.Errorf("ring mapping is %d kB, want %d kB (%d MiB)", size, want*1024, want)
			}
			if res != size {
				t.Errorf("ring resident %d kB of %d kB: the kernel maps it whole at mmap, or the measure is off", res, size)
			}
			d.stop(t)
		})
	}
	if old, now := rss[64], rss[capture.DefaultNumBlocks]; old-now < 40*1024 {
		t.Errorf("idle RSS with a 64 MiB ring %d kB, with the default %d kB: want the default to save at least 40 MB", old, now)
	}
}

package main

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// steadyTraffic sends small datagrams from B to A until ctx is done.
func steadyTraffic(t *testing.T, ctx context.Context, p *netnstest.Pair) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		netnstest.Do(p.B, func() error {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netnstest.B4, 0)),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(netnstest.A4, 9000)))
			if err != nil {
				return err
			}
			defer c.Close()
			buf := make([]byte, 72)
			for ctx.Err() == nil {
				c.Write(buf)
				time.Sleep(2 * time.Millisecond)
			}
			return nil
		})
	}()
	return &wg
}

// announced returns the window starts the record log announced.
func announced(t *testing.T, path string) []time.Time {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ts, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(rest, "=== window") {
			continue
		}
		at, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			t.Fatalf("record log line %q: %v", sc.Text(), err)
		}
		out = append(out, at.UTC())
	}
	return out
}

// After kill -9 at random moments the DB opens, passes its integrity check
// (storage.Open runs it), and holds every window the record log announced.
func TestKill9LosesNothingAnnounced(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "crash.db")
	sink(t, p.A, netnstest.A4)
	ctx, cancel := context.WithCancel(context.Background())
	wg := steadyTraffic(t, ctx, p)
	defer func() { cancel(); wg.Wait() }()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range 4 {
		d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s")
		time.Sleep(time.Duration(1200+rng.IntN(1500)) * time.Millisecond)
		d.cmd.Process.Signal(syscall.SIGKILL)
		if err := <-d.done; err == nil {
			t.Fatalf("round %d: daemon survived SIGKILL", i)
		}
	}
	d, err := storage.Open(db, storage.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("DB after kill -9: %v", err)
	}
	stored := map[time.Time]bool{}
	var frames uint64
	d.Windows(context.Background(), time.Unix(0, 0), time.Now().Add(time.Hour), func(w *window.Window) error {
		stored[w.Start] = true
		frames += w.Stats.Frames
		return nil
	})
	d.Close()
	ann := announced(t, filepath.Join(dir, "records.log"))
	if len(ann) < 4 || frames == 0 {
		t.Fatalf("only %d windows announced, %d frames stored: the test did not exercise anything", len(ann), frames)
	}
	seen := map[time.Time]bool{}
	for _, at := range ann {
		if !stored[at] {
			t.Errorf("window %v was announced in the record log but is not in the DB", at)
		}
		if seen[at] {
			t.Errorf("window %v announced twice", at)
		}
		seen[at] = true
	}
}

// A stop and a start within one window store it once, with the counts of
// both runs merged.
func TestRestartWithinWindowMerges(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "merge.db")
	sink(t, p.A, netnstest.A4)
	for range 2 {
		d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1h")
		send(t, p.B, netnstest.B4, netnstest.A4, 30, 72) // IP length 100
		time.Sleep(300 * time.Millisecond)
		d.stop(t)
	}
	ws := readAll(t, db)
	if len(ws) != 1 {
		t.Fatalf("%d windows, want the one hour window once", len(ws))
	}
	r := ws[0].Remotes
	if len(r) != 1 || r[0].RxPackets != 60 || r[0].RxBytes != 6000 {
		t.Fatalf("merged window remotes %+v, want 60 packets and 6000 bytes from %v", r, netnstest.B4)
	}
}

package rdns

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/dnstest"
)

var (
	web   = netip.MustParseAddr("198.51.100.2")
	six   = netip.MustParseAddr("2001:db8::6")
	blank = netip.MustParseAddr("198.51.100.9")
)

// relay is a UDP DNS relay in front of a real server that counts the
// queries it sees and, while silent, answers none (a server that does not
// answer in time).
type relay struct {
	addr    string
	queries atomic.Int64
	silent  atomic.Bool
	mu      sync.Mutex
	seen    map[string]time.Time // question bytes -> first seen
}

func startRelay(t *testing.T, upstream string) *relay {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	r := &relay{addr: pc.LocalAddr().String(), seen: map[string]time.Time{}}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := append([]byte(nil), buf[:n]...)
			r.queries.Add(1)
			if len(q) > 12 {
				r.mu.Lock()
				if _, ok := r.seen[string(q[12:])]; !ok {
					r.seen[string(q[12:])] = time.Now()
				}
				r.mu.Unlock()
			}
			if r.silent.Load() {
				continue
			}
			go func() {
				c, err := net.Dial("udp", upstream)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				c.Write(q)
				ans := make([]byte, 4096)
				m, err := c.Read(ans)
				if err == nil {
					pc.WriteTo(ans[:m], from)
				}
			}()
		}
	}()
	return r
}

// seenBy is how many distinct questions came in by t.
func (r *relay) seenBy(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.seen {
		if at.Before(t) {
			n++
		}
	}
	return n
}

// Names come from a real DNS server (dnsmasq on loopback) and are
// remembered: asking again sends no query.
func TestNamesFromARealServer(t *testing.T) {
	server := dnstest.Start(t, map[netip.Addr]string{web: "web.example.org", six: "six.example.net"})
	rl := startRelay(t, server)
	r := New(Config{Server: rl.addr, Timeout: 2 * time.Second})
	got := r.Names(context.Background(), []netip.Addr{web, six, blank})
	if len(got) != 2 || got[web] != "web.example.org" || got[six] != "six.example.net" {
		t.Fatalf("names %v", got)
	}
	asked := rl.queries.Load()
	again := r.Names(context.Background(), []netip.Addr{web, six, blank})
	if len(again) != 2 || rl.queries.Load() != asked {
		t.Errorf("asked again: %v, %d queries, then %d", again, asked, rl.queries.Load())
	}
	// Expired answers are asked for again.
	r.now = func() time.Time { return time.Now().Add(DefaultTTL + time.Minute) }
	r.Names(context.Background(), []netip.Addr{web})
	if rl.queries.Load() == asked {
		t.Errorf("an expired name was not asked for again")
	}

	// Name does not wait: the first call starts the lookup, done says when
	// the answer is in.
	r2 := New(Config{Server: rl.addr})
	in := make(chan struct{}, 1)
	if n, ok := r2.Name(six, func() { in <- struct{}{} }); ok || n != "" {
		t.Errorf("first Name: %q %v", n, ok)
	}
	select {
	case <-in:
	case <-time.After(3 * time.Second):
		t.Fatal("the background lookup did not finish")
	}
	if n, ok := r2.Name(six, nil); !ok || n != "six.example.net" {
		t.Errorf("Name after the lookup: %q %v", n, ok)
	}
}

// A server that does not answer costs the timeout, with at most InFlight
// lookups at once, and gives no names.
func TestNamesTimeoutAndBound(t *testing.T) {
	server := dnstest.Start(t, map[netip.Addr]string{web: "web.example.org"})
	rl := startRelay(t, server)
	rl.silent.Store(true)
	const timeout = 400 * time.Millisecond
	r := New(Config{Server: rl.addr, Timeout: timeout, InFlight: 3})
	var addrs []netip.Addr
	for i := range 9 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}))
	}
	start := time.Now()
	got := r.Names(context.Background(), addrs)
	took := time.Since(start)
	if len(got) != 0 {
		t.Errorf("names from a silent server: %v", got)
	}
	// Three rounds of three: about 3 timeouts, never all nine at once.
	if took < 3*timeout-50*time.Millisecond || took > 3*timeout+time.Second {
		t.Errorf("took %v, want about %v (9 lookups, 3 at a time, %v each)", took, 3*timeout, timeout)
	}
	if n := rl.seenBy(start.Add(timeout - 100*time.Millisecond)); n > 3 {
		t.Errorf("%d lookups in flight at once, want at most 3", n)
	}
	if n := rl.seenBy(time.Now()); n != 9 {
		t.Errorf("%d distinct questions in all, want 9", n)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"web.example.org.": "web.example.org", "a_b-c.example": "a_b-c.example",
		"evil\x1b[2J.example.": "", "sp ace.example": "", "": "", ".": "",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

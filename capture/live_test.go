package capture

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type tallyKey struct {
	kind   Kind
	remote netip.Addr
	len    uint32
}

// TestLive captures real traffic on a veth in a namespace: known UDP
// datagrams both ways, IPv4 and IPv6, must come out as exact egress and
// ingress counts with exact IP lengths.
func TestLive(t *testing.T) {
	const (
		a4, b4 = "198.51.100.1", "198.51.100.2"
		a6, b6 = "2001:db8:1::1", "2001:db8:1::2"
		port   = 9999
	)
	v := newVethPair(t, []string{a4 + "/24", a6 + "/64"}, []string{b4 + "/24", b6 + "/64"})

	// Sockets opened inside a namespace stay there: one per family and
	// side, bound so they also receive (no ICMP port unreachable replies
	// to muddle the counts).
	var live *Live
	var local []netip.Addr
	var connA4, connA6, connB4, connB6 net.PacketConn
	err := inNetns(v.A, func() error {
		var err error
		if local, err = InterfaceAddrs(v.IfA); err != nil {
			return err
		}
		live, err = OpenLive(LiveConfig{Interface: v.IfA, Local: local, BlockTimeout: 10 * time.Millisecond, PollTimeout: 30 * time.Millisecond, NumBlocks: 4})
		if err != nil {
			return err
		}
		if connA4, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", a4, port)); err != nil {
			return err
		}
		connA6, err = net.ListenPacket("udp6", fmt.Sprintf("[%s]:%d", a6, port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close() })
	for _, c := range []net.PacketConn{connA4, connA6} {
		t.Cleanup(func() { c.Close() })
	}
	if err := inNetns(v.B, func() error {
		var err error
		if connB4, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", b4, port)); err != nil {
			return err
		}
		connB6, err = net.ListenPacket("udp6", fmt.Sprintf("[%s]:%d", b6, port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.PacketConn{connB4, connB6} {
		t.Cleanup(func() { c.Close() })
	}
	for _, c := range []net.PacketConn{connA4, connA6, connB4, connB6} {
		go func() { // drain receive queues
			buf := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
	}
	if !slices.Contains(local, netip.MustParseAddr(a4)) || !slices.Contains(local, netip.MustParseAddr(a6)) {
		t.Fatalf("InterfaceAddrs(%s) = %v, missing the test addresses", v.IfA, local)
	}
	if live.Interface() != v.IfA || live.Link() != LinkEthernet {
		t.Fatalf("interface %q link %d", live.Interface(), live.Link())
	}

	c := NewClassifier(local, nil)
	p := NewPipe(4)
	var mu sync.Mutex
	tally := map[tallyKey]int{}
	var drops uint64
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for b := range p.Full {
			mu.Lock()
			for _, ev := range b {
				if ev.Kind == Drops {
					drops += uint64(ev.Len)
					continue
				}
				tally[tallyKey{ev.Kind, ev.Addr(), ev.Len}]++
			}
			mu.Unlock()
			p.Put(b)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- live.Run(ctx, c, p) }()

	udp := func(ip string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: port} }
	send := func(conn net.PacketConn, to string, n, size int) {
		t.Helper()
		buf := make([]byte, size)
		for range n {
			if _, err := conn.WriteTo(buf, udp(to)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Resolve neighbours first, so no datagram waits in (or overflows)
	// the unresolved-neighbour queue. These warm-up sizes are not asserted.
	send(connB4, a4, 1, 11)
	send(connB6, a6, 1, 11)
	send(connA4, b4, 1, 11)
	send(connA6, b6, 1, 11)
	time.Sleep(100 * time.Millisecond)

	ra4, ra6 := netip.MustParseAddr(b4), netip.MustParseAddr(b6)
	want := map[tallyKey]int{
		{Ingress, ra4, 300 + 28}: 50,
		{Egress, ra4, 500 + 28}:  40,
		{Ingress, ra6, 700 + 48}: 30,
		{Egress, ra6, 900 + 48}:  20,
	}
	send(connB4, a4, 50, 300)
	send(connA4, b4, 40, 500)
	send(connB6, a6, 30, 700)
	send(connA6, b6, 20, 900)

	// Wait for the events (low-rate traffic reaches the pipe within about
	// the block plus poll timeout), then a little longer to catch extras.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		done := true
		for k, n := range want {
			if tally[k] < n {
				done = false
			}
		}
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	close(p.Full)
	<-consumed

	sizes := map[uint32]bool{}
	for k := range want {
		sizes[k.len] = true
	}
	for k, n := range tally {
		if sizes[k.len] && want[k] != n {
			t.Errorf("%v remote=%v len=%d: %d frames, want %d", k.kind, k.remote, k.len, n, want[k])
		}
	}
	for k, n := range want {
		if tally[k] != n {
			t.Errorf("%v remote=%v len=%d: %d frames, want %d", k.kind, k.remote, k.len, tally[k], n)
		}
	}
	received, dropped := live.Stats()
	if received < 140 || dropped != 0 || drops != 0 {
		t.Errorf("Stats() = %d received, %d dropped; drop events %d", received, dropped, drops)
	}
	if t.Failed() {
		for k, n := range tally {
			t.Logf("seen: %v remote=%v len=%d: %d", k.kind, k.remote, k.len, n)
		}
	}
	if err := live.Run(context.Background(), c, p); err == nil || !strings.Contains(err.Error(), "already run") {
		t.Errorf("second Run: %v", err)
	}
}

func TestOpenLiveUnknownInterface(t *testing.T) {
	_, err := OpenLive(LiveConfig{Interface: "dstw-nope0"})
	if err == nil || err.Error() != `unknown interface "dstw-nope0"` {
		t.Errorf("err = %v", err)
	}
	_, err = InterfaceAddrs("eth9-nope")
	if err == nil || err.Error() != `unknown interface "eth9-nope"` {
		t.Errorf("InterfaceAddrs: err = %v", err)
	}
}

func TestLinkForARPHRD(t *testing.T) {
	for typ, want := range map[uint16]LinkType{1: LinkEthernet, 772: LinkEthernet, 65534: LinkRaw, 512: LinkRaw, 519: LinkRaw, 776: LinkRaw} {
		if got, err := linkForARPHRD(typ); err != nil || got != want {
			t.Errorf("ARPHRD %d: %d, %v; want %d", typ, got, err, want)
		}
	}
	if _, err := linkForARPHRD(801); err == nil || !strings.Contains(err.Error(), "unsupported device type 801") {
		t.Errorf("ARPHRD 801 (802.11 radiotap): %v", err)
	}
}

func TestDefaultRouteParsing(t *testing.T) {
	route4 := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
wlan0	00000000	0100A8C0	0003	0	0	600	00000000	0	0	0
eth0	00000000	0101A8C0	0003	0	0	100	00000000	0	0	0
eth0	0001A8C0	00000000	0001	0	0	100	00FFFFFF	0	0	0
down0	00000000	0100A8C0	0002	0	0	1	00000000	0	0	0
`
	if got, err := parseRoute4(strings.NewReader(route4)); err != nil || got != "eth0" {
		t.Errorf("parseRoute4 = %q, %v", got, err)
	}
	route6 := `00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000200 00000001 00000000 00450003     eth2
`
	if got, err := parseRoute6(strings.NewReader(route6)); err != nil || got != "eth2" {
		t.Errorf("parseRoute6 = %q, %v", got, err)
	}
	if got, _ := parseRoute4(strings.NewReader("Iface\tDestination\n")); got != "" {
		t.Errorf("no default route: %q", got)
	}
}

// TestLiveDrops overflows a one-block ring before Run starts: Run must
// report the kernel's drops as Drops events and in Stats, and the events
// it did get plus the drops must account for every datagram.
func TestLiveDrops(t *testing.T) {
	const a4, b4, port, n = "198.51.100.1", "198.51.100.2", 9999, 300
	v := newVethPair(t, []string{a4 + "/24"}, []string{b4 + "/24"})
	var live *Live
	var conn net.PacketConn
	if err := inNetns(v.A, func() error {
		var err error
		live, err = OpenLive(LiveConfig{Interface: v.IfA, Local: []netip.Addr{netip.MustParseAddr(a4)},
			BlockSize: 4096, NumBlocks: 1, BlockTimeout: time.Millisecond, PollTimeout: 20 * time.Millisecond})
		if err != nil {
			return err
		}
		conn, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", a4, port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close(); conn.Close() })
	// A static neighbour entry with a MAC that is not B's: no ARP to muddle
	// the count, and B discards the frames (wrong destination MAC), so no
	// ICMP replies either.
	ipCmd(t, "-n", v.A, "neigh", "replace", b4, "lladdr", "02:00:00:00:00:0b", "dev", v.IfA)
	to := &net.UDPAddr{IP: net.ParseIP(b4), Port: port}
	for range n {
		if _, err := conn.WriteTo(make([]byte, 100), to); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)

	p := NewPipe(4)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- live.Run(ctx, NewClassifier([]netip.Addr{netip.MustParseAddr(a4)}, nil), p) }()
	var frames, dropEvents, dropped uint64
	deadline := time.After(5 * time.Second)
wait:
	for frames+dropped < n {
		select {
		case b := <-p.Full:
			for _, ev := range b {
				switch {
				case ev.Kind == Drops:
					dropEvents++
					dropped += uint64(ev.Len)
				case ev.Kind == Egress && ev.Len == 128:
					frames++
				}
			}
			p.Put(b)
		case <-deadline:
			break wait
		}
	}
	cancel()
	go func() {
		for b := range p.Full {
			p.Put(b)
		}
	}()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	close(p.Full)
	_, statDrops := live.Stats()
	if dropEvents == 0 || dropped == 0 || frames+dropped != n || statDrops != dropped {
		t.Errorf("frames %d + dropped %d (in %d events) != %d sent; Stats dropped %d", frames, dropped, dropEvents, n, statDrops)
	}
}

// On loopback every packet is seen leaving and arriving, so the arriving
// copy of the host's own packet carries a local source: it must not be
// taken for a spoofed one. Both copies count, as they always did.
func TestLiveLoopbackIsNotSpoofed(t *testing.T) {
	v := newVethPair(t, []string{"198.51.100.1/24"}, []string{"198.51.100.2/24"})
	const n = 20
	var live *Live
	var conn net.PacketConn
	err := inNetns(v.A, func() error {
		var err error
		live, err = OpenLive(LiveConfig{Interface: "lo", Local: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			BlockTimeout: 10 * time.Millisecond, PollTimeout: 30 * time.Millisecond, NumBlocks: 4})
		if err != nil {
			return err
		}
		if conn, err = net.ListenPacket("udp4", "127.0.0.2:9999"); err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := conn.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close(); conn.Close() })
	c := NewClassifier([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil)
	p := NewPipe(4)
	kinds := map[Kind]int{}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for b := range p.Full {
			for _, ev := range b {
				if ev.Len == 128 {
					kinds[ev.Kind]++
				}
			}
			p.Put(b)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- live.Run(ctx, c, p) }()
	if err := inNetns(v.A, func() error {
		s, err := net.Dial("udp4", "127.0.0.2:9999")
		if err != nil {
			return err
		}
		defer s.Close()
		for range n {
			if _, err := s.Write(make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	close(p.Full)
	<-consumed
	if kinds[Egress] != 2*n || len(kinds) != 1 {
		t.Errorf("frames of 128 bytes by kind %v, want %d egress (each seen twice) and nothing else", kinds, 2*n)
	}
}

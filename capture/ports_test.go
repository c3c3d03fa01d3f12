package capture

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"unsafe"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/window"
)

func TestEventSize(t *testing.T) {
	if n := unsafe.Sizeof(Event{}); n != 32 {
		t.Fatalf("Event is %d bytes; the service fields must fit its 32", n)
	}
}

// raw4 is an IPv4 packet (raw link) with a transport header's ports.
func raw4(src, dst string, proto byte, sport, dport uint16, fragOff uint16) []byte {
	b := make([]byte, 20+20)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 1000)
	binary.BigEndian.PutUint16(b[6:], fragOff)
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	return b
}

// raw6 is an IPv6 packet with the given extension headers (each 8 bytes:
// next header, length 0) before the transport.
func raw6(src, dst string, proto byte, exts []byte, sport, dport uint16) []byte {
	b := make([]byte, 40+8*len(exts)+8)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	next := proto
	if len(exts) > 0 {
		next = exts[0]
	}
	b[6] = next
	for i := range exts {
		n := proto
		if i+1 < len(exts) {
			n = exts[i+1]
		}
		b[40+8*i] = n
	}
	o := 40 + 8*len(exts)
	binary.BigEndian.PutUint16(b[o:], sport)
	binary.BigEndian.PutUint16(b[o+2:], dport)
	return b
}

func TestClassifyService(t *testing.T) {
	c := NewClassifier([]netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")}, nil)
	ps := NewPortSet(32768)
	ps.Add(window.ProtoTCP, 40000)
	c.SetServices(NewServices(ps))
	const l4, r4, l6, r6 = "198.51.100.1", "203.0.113.9", "2001:db8::1", "2001:db8::9"
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
		side  window.Side
	}{
		{"listening above ephemeral", raw4(r4, l4, 6, 50000, 40000, 0), "40000/tcp", window.SideIn},
		{"listening, udp not", raw4(r4, l4, 17, 50000, 40000, 0), "50000/udp", window.SideOut},
		{"below ephemeral", raw4(l4, r4, 17, 32767, 50000, 0), "32767/udp", window.SideIn},
		{"at ephemeral", raw4(l4, r4, 6, 32768, 443, 0), "443/tcp", window.SideOut},
		{"first fragment", raw4(l4, r4, 6, 32768, 443, 0x2000), "443/tcp", window.SideOut},
		{"later fragment", raw4(l4, r4, 6, 32768, 443, 185), "0/tcp", window.SideNone},
		{"icmp", raw4(l4, r4, 1, 8, 0, 0), "0/icmp", window.SideNone},
		{"gre", raw4(l4, r4, 47, 1, 2, 0), "0/other", window.SideNone},
		{"ipv6 plain", raw6(r6, l6, 6, nil, 443, 50000), "443/tcp", window.SideOut},
		{"ipv6 hop-by-hop, dest opts, routing", raw6(r6, l6, 17, []byte{0, 60, 43}, 53, 2000), "53/udp", window.SideOut},
		{"replay: below ephemeral, high remote", raw6(r6, l6, 17, []byte{0, 60, 43}, 5353, 2000), "2000/udp", window.SideIn},
		{"ipv6 icmpv6", raw6(r6, l6, 58, []byte{0}, 0, 0), "0/icmp", window.SideNone},
		{"ipv6 esp", raw6(r6, l6, 50, nil, 1, 2), "0/other", window.SideNone},
		{"ipv6 cut in the chain", raw6(r6, l6, 6, []byte{0, 60}, 443, 50000)[:49], "0/other", window.SideNone},
		{"ipv6 cut in the ports", raw6(r6, l6, 6, []byte{0, 60}, 443, 50000)[:58], "0/tcp", window.SideNone},
	} {
		var ev Event
		c.Classify(LinkRaw, tc.frame, 1<<17, DirUnknown, &ev)
		if ev.Kind != Egress && ev.Kind != Ingress {
			t.Errorf("%s: kind %v", tc.name, ev.Kind)
			continue
		}
		if s := ev.Service(); s.String() != tc.want || s.Side() != tc.side {
			t.Errorf("%s: %v %v, want %s %v", tc.name, s, s.Side(), tc.want, tc.side)
		}
	}
	// A later IPv6 fragment: the fragment header says TCP, no ports.
	f := raw6(r6, l6, 6, []byte{44}, 443, 50000)
	binary.BigEndian.PutUint16(f[42:], 185<<3)
	var ev Event
	c.Classify(LinkRaw, f, 1<<17, DirUnknown, &ev)
	if s := ev.Service(); s.String() != "0/tcp" || s.Side() != window.SideNone {
		t.Errorf("later ipv6 fragment: %v", s)
	}
	binary.BigEndian.PutUint16(f[42:], 1) // offset 0, more fragments: the first
	c.Classify(LinkRaw, f, 1<<17, DirUnknown, &ev)
	if s := ev.Service(); s.String() != "443/tcp" || s.Side() != window.SideOut {
		t.Errorf("first ipv6 fragment: %v", s)
	}
	if n := testing.AllocsPerRun(1000, func() { c.Classify(LinkRaw, f, 1<<17, DirUnknown, &ev) }); n != 0 {
		t.Errorf("Classify allocates %v times", n)
	}
}

// TestReadPortSet reads the real tables of a fresh network namespace in
// which the test listens: TCP listeners and unconnected UDP sockets are
// services; loopback-only ones, connected UDP and TCP clients are not.
func TestReadPortSet(t *testing.T) {
	p := netnstest.New(t)
	err := netnstest.Do(p.A, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("20000 30000"), 0o644); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "198.51.100.1:8080")
		if err != nil {
			return err
		}
		defer ln.Close()
		ln6, err := net.Listen("tcp", "[::]:45000")
		if err != nil {
			return err
		}
		defer ln6.Close()
		lo, err := net.Listen("tcp", "127.0.0.1:9090")
		if err != nil {
			return err
		}
		defer lo.Close()
		u, err := net.ListenPacket("udp", "0.0.0.0:5353")
		if err != nil {
			return err
		}
		defer u.Close()
		cu, err := net.Dial("udp", "198.51.100.2:53") // connected: a client
		if err != nil {
			return err
		}
		defer cu.Close()
		cl, err := net.Dial("tcp", "198.51.100.1:8080") // a TCP client socket
		if err != nil {
			return err
		}
		defer cl.Close()
		clientPort := uint16(cl.LocalAddr().(*net.TCPAddr).Port)
		udpClient := uint16(cu.LocalAddr().(*net.UDPAddr).Port)

		ps, err := ProcNet{}.ReadPortSet([]uint16{7777})
		if err != nil {
			return err
		}
		if ps.EphemeralStart != 20000 {
			t.Errorf("ephemeral start %d, want 20000", ps.EphemeralStart)
		}
		if got := ps.Ports(window.ProtoTCP); !equalPorts(got, 7777, 8080, 45000) {
			t.Errorf("tcp %v, want 7777 8080 45000 (not 9090 on loopback, not the client %d)", got, clientPort)
		}
		if got := ps.Ports(window.ProtoUDP); !equalPorts(got, 5353, 7777) {
			t.Errorf("udp %v, want 5353 7777 (not the connected %d)", got, udpClient)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func equalPorts(got []uint16, want ...uint16) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"0164A8C6:0035":                         "198.168.100.1:53",
		"00000000000000000000000001000000:01BB": "[::1]:443",
		"0000000000000000FFFF00000100007F:0050": "[::ffff:127.0.0.1]:80",
		"B80D0120000000000000000001000000:0016": "[2001:db8::1]:22",
	} {
		a, p, err := parseProcAddr(in)
		if err != nil || netip.AddrPortFrom(a, p).String() != want {
			t.Errorf("%s: %v:%d %v, want %s", in, a, p, err, want)
		}
	}
}

// withFlags sets the TCP flags of a raw4 frame.
func withFlags(b []byte, flags byte) []byte { b[20+13] = flags; return b }

// TestClassifyServiceLive checks the rules that use the socket tables and
// what the traffic said, in order: each case may depend on the ones before
// it (the first packet on a port decides its side).
func TestClassifyServiceLive(t *testing.T) {
	c := NewClassifier([]netip.Addr{netip.MustParseAddr("198.51.100.1")}, nil)
	ps := NewPortSet(32768)
	ps.Sockets = true
	ps.Add(window.ProtoTCP, 8080)
	ps.Add(window.ProtoUDP, 5353)  // mDNS server
	ps.Add(window.ProtoUDP, 51820) // WireGuard server, in the ephemeral range
	ps.Add(window.ProtoUDP, 45123) // an unconnected client socket: the table cannot tell
	ps.Add(window.ProtoUDP, 53)
	ps.addConnected(window.ProtoUDP, 40001)
	ps.addConnected(window.ProtoTCP, 40003)
	ps.AddService(40002)
	svc := NewServices(ps)
	c.SetServices(svc)
	const l, r = "198.51.100.1", "203.0.113.9"
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
		side  window.Side
	}{
		{"tcp server", raw4(r, l, 6, 50000, 8080, 0), "8080/tcp", window.SideIn},
		{"tcp client from a low port", raw4(l, r, 6, 2000, 9000, 0), "9000/tcp", window.SideOut},
		{"its answer", raw4(r, l, 6, 9000, 2000, 0), "9000/tcp", window.SideOut},
		{"an older connection of the host's", raw4(r, l, 6, 443, 40003, 0), "443/tcp", window.SideOut},
		{"spoofed ack to a closed port", withFlags(raw4(r, l, 6, 41234, 2345, 0), tcpACK), "0/tcp", window.SideScan},
		{"tcp syn to a closed port", withFlags(raw4(r, l, 6, 40000, 22, 0), tcpSYN), "0/tcp", window.SideScan},
		{"tcp syn to a closed high port", withFlags(raw4(r, l, 6, 40000, 2222, 0), tcpSYN), "0/tcp", window.SideScan},
		{"tcp refusal", withFlags(raw4(l, r, 6, 2222, 40000, 0), tcpRST|tcpACK), "0/tcp", window.SideScan},
		{"tcp syn-ack to the host's connect", withFlags(raw4(r, l, 6, 9000, 2000, 0), tcpSYN|tcpACK), "9000/tcp", window.SideOut},
		{"dns query from a random low port", raw4(l, r, 17, 1500, 53, 0), "53/udp", window.SideOut},
		{"dns answer to it", raw4(r, l, 17, 53, 1500, 0), "53/udp", window.SideOut},
		{"quic client", raw4(l, r, 17, 50123, 443, 0), "443/udp", window.SideOut},
		{"local dns server", raw4(r, l, 17, 40000, 53, 0), "53/udp", window.SideIn},
		{"mdns", raw4(l, "224.0.0.251", 17, 5353, 5353, 0), "5353/udp", window.SideIn},
		{"mdns from a peer's random port", raw4(r, l, 17, 41000, 5353, 0), "5353/udp", window.SideIn},
		{"wireguard: a peer writes first", raw4(r, l, 17, 41000, 51820, 0), "51820/udp", window.SideIn},
		{"wireguard: the answer", raw4(l, r, 17, 51820, 41000, 0), "51820/udp", window.SideIn},
		{"unconnected client sends first", raw4(l, r, 17, 45123, 3478, 0), "3478/udp", window.SideOut},
		{"its answer", raw4(r, l, 17, 3478, 45123, 0), "3478/udp", window.SideOut},
		{"connected client", raw4(r, l, 17, 3478, 40001, 0), "3478/udp", window.SideOut},
		{"--service-ports", raw4(l, r, 17, 40002, 53, 0), "40002/udp", window.SideIn},
		{"udp probe of a closed port", raw4(r, l, 17, 40000, 1234, 0), "0/udp", window.SideScan},
		{"short-lived client sends", raw4(l, r, 17, 47000, 3478, 0), "3478/udp", window.SideOut},
		{"its answer, no socket left", raw4(r, l, 17, 3478, 47000, 0), "3478/udp", window.SideOut},
	} {
		var ev Event
		c.Classify(LinkRaw, tc.frame, 1<<17, DirUnknown, &ev)
		if s := ev.Service(); s.String() != tc.want || s.Side() != tc.side {
			t.Errorf("%s: %v %v, want %s %v", tc.name, s, s.Side(), tc.want, tc.side)
		}
	}
	// Two refreshes later the short-lived client's send is forgotten: an
	// answer to that port now looks like a probe. A refresh without the
	// unconnected client's socket forgets what its first packet said.
	ps2 := *ps
	ps2.listen[window.ProtoUDP-1][45123>>6] &^= 1 << (45123 & 63)
	svc.Store(&ps2)
	svc.Store(&ps2)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
		side  window.Side
	}{
		{"late answer", raw4(r, l, 17, 3478, 47000, 0), "0/udp", window.SideScan},
		{"wireguard still in", raw4(l, r, 17, 51820, 41000, 0), "51820/udp", window.SideIn},
	} {
		var ev Event
		c.Classify(LinkRaw, tc.frame, 1<<17, DirUnknown, &ev)
		if s := ev.Service(); s.String() != tc.want || s.Side() != tc.side {
			t.Errorf("%s: %v %v, want %s %v", tc.name, s, s.Side(), tc.want, tc.side)
		}
	}
	if bit := uint64(1) << (45123 & 63); svc.seen[45123>>6].Load()&bit != 0 {
		t.Error("the gone socket's port still remembers its first packet")
	}
	f := raw4(r, l, 17, 40000, 51820, 0)
	var ev Event
	if n := testing.AllocsPerRun(1000, func() { c.Classify(LinkRaw, f, 1<<17, DirUnknown, &ev) }); n != 0 {
		t.Errorf("Classify allocates %v times", n)
	}
}

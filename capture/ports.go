package capture

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/dstwatch/dstwatch/window"
)

// Service returns the packet's service; meaningful for Egress and Ingress.
func (e *Event) Service() window.ServiceKey {
	return window.MakeServiceKey(window.Proto(e.Svc&3), window.Side(e.Svc>>2&3), e.Port)
}

// DefaultEphemeralStart is Linux's default ip_local_port_range start: the
// boundary used when the host's own is unknown (--read).
const DefaultEphemeralStart = 32768

// PortSet is what decides the service side of a TCP or UDP packet: the
// local ports the host listens on, and where the ephemeral range starts.
// It is immutable once handed to Services.Store.
type PortSet struct {
	listen         [2][1024]uint64 // TCP LISTEN, UDP bound and unconnected (and extra): a bit per port
	extra          [1024]uint64    // --service-ports: services whatever the traffic looks like
	conn           [2][1024]uint64 // TCP, UDP: local ports of connected sockets (TCP not in LISTEN)
	EphemeralStart uint16          // the kernel picks client ports from here up
	// Sockets says listen and udpConn were read from the kernel's tables
	// (live). Without them (a replay) the side is guessed from port
	// numbers alone.
	Sockets bool
}

// NewPortSet returns a set with no listening port and the given start of
// the ephemeral range.
func NewPortSet(ephemeralStart uint16) *PortSet { return &PortSet{EphemeralStart: ephemeralStart} }

// Add marks port as listened on for p (TCP or UDP; other classes are ignored).
func (ps *PortSet) Add(p window.Proto, port uint16) {
	if p == window.ProtoTCP || p == window.ProtoUDP {
		ps.listen[p-1][port>>6] |= 1 << (port & 63)
	}
}

// AddService marks port as a service for TCP and UDP whatever its traffic
// looks like (--service-ports).
func (ps *PortSet) AddService(port uint16) {
	ps.extra[port>>6] |= 1 << (port & 63)
	ps.Add(window.ProtoTCP, port)
	ps.Add(window.ProtoUDP, port)
}

// addConnected marks port as a connected socket's (TCP or UDP).
func (ps *PortSet) addConnected(p window.Proto, port uint16) {
	if p == window.ProtoTCP || p == window.ProtoUDP {
		ps.conn[p-1][port>>6] |= 1 << (port & 63)
	}
}

// Listening reports whether p/port is marked.
func (ps *PortSet) Listening(p window.Proto, port uint16) bool {
	if p != window.ProtoTCP && p != window.ProtoUDP {
		return false
	}
	return ps.listen[p-1][port>>6]>>(port&63)&1 != 0
}

// Ports lists the marked ports of p, ascending.
func (ps *PortSet) Ports(p window.Proto) []uint16 {
	var out []uint16
	for port := 0; port < 65536; port++ {
		if ps.Listening(p, uint16(port)) {
			out = append(out, uint16(port))
		}
	}
	return out
}

// Services holds the current PortSet; a refresher swaps in a new one while
// classifiers read it, one atomic load per packet. It also keeps what the
// traffic itself said about UDP ports, where the socket tables cannot tell
// a server from a client (see service). Classifiers of several interfaces
// share it: its bits are set with atomic ORs, and a lost race costs at
// most one packet counted under the other side.
type Services struct {
	cur atomic.Pointer[PortSet]
	// seen and clientFirst are per bound, unconnected UDP port in the
	// ephemeral range: whether a packet was seen on it since its socket
	// appeared, and whether the first one was sent by the host (a client
	// that did not connect its socket) rather than received (a server).
	seen, clientFirst [1024]atomic.Uint64
	// sent is the local TCP and UDP ports the host sent from without a
	// socket in the last table: in the current refresh period and in the
	// one before (gen picks the current). An answer to such a port is
	// traffic of a client newer than the table; to any other port without
	// a socket, a probe.
	sent [2][2][1024]atomic.Uint64 // [gen][proto-1]
	gen  atomic.Uint32
}

// NewServices returns Services holding ps.
func NewServices(ps *PortSet) *Services {
	s := &Services{}
	s.cur.Store(ps)
	return s
}

// Store replaces the set: a refresh. A UDP port whose server socket is gone
// loses what its traffic said (a new socket there is judged afresh), and
// sends older than the previous refresh are forgotten.
func (s *Services) Store(ps *PortSet) {
	for w := range s.seen {
		keep := ps.listen[window.ProtoUDP-1][w]
		if s.seen[w].Load()&^keep != 0 {
			s.seen[w].And(keep)
			s.clientFirst[w].And(keep)
		}
	}
	g := s.gen.Load() ^ 1
	for p := range s.sent[g] {
		for w := range s.sent[g][p] {
			s.sent[g][p][w].Store(0)
		}
	}
	s.gen.Store(g)
	s.cur.Store(ps)
}

// Load returns the current set.
func (s *Services) Load() *PortSet { return s.cur.Load() }

var defaultPorts = NewPortSet(DefaultEphemeralStart)

// SetServices makes c decide service sides from s (nil: the Linux default
// ephemeral range and no listening ports). Call it before c is used.
func (c *Classifier) SetServices(s *Services) { c.svc = s }

// Services returns what SetServices set.
func (c *Classifier) Services() *Services { return c.svc }

// service sets ev.Port and ev.Svc for a tallied packet. proto is the IP
// protocol (after IPv6 extension headers); l4 the transport header onwards,
// nil when it is not there (a non-first fragment, or cut off by the snap
// length). Which port is the service is decided in docs/services.md's "Which port
// is the service" order; each step is a bit test in a bitset, so a packet
// costs a few loads and no allocation.
func (c *Classifier) service(ev *Event, proto uint8, l4 []byte) {
	var p window.Proto
	switch proto {
	case 6:
		p = window.ProtoTCP
	case 17:
		p = window.ProtoUDP
	case 1, 58:
		p = window.ProtoICMP
	}
	if (p != window.ProtoTCP && p != window.ProtoUDP) || len(l4) < 4 {
		ev.Port, ev.Svc = 0, uint8(p)
		return
	}
	local, remote := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	if ev.Kind == Ingress {
		local, remote = remote, local
	}
	ps := defaultPorts
	if c.svc != nil {
		ps = c.svc.cur.Load()
	}
	side := c.side(ps, ev.Kind == Egress, p, local, remote, l4)
	switch side {
	case window.SideIn:
		ev.Port = local
	case window.SideOut:
		ev.Port = remote
	default:
		ev.Port = 0
	}
	ev.Svc = uint8(p) | uint8(side)<<2
}

// TCP flags (byte 13 of the header).
const (
	tcpRST = 0x04
	tcpSYN = 0x02
	tcpACK = 0x10
)

func bit(set *[1024]uint64, port uint16) bool { return set[port>>6]>>(port&63)&1 != 0 }

// side decides which end of a TCP or UDP packet is the service.
func (c *Classifier) side(ps *PortSet, egress bool, p window.Proto, local, remote uint16, l4 []byte) window.Side {
	if bit(&ps.extra, local) {
		return window.SideIn
	}
	if !ps.Sockets {
		// A replay: nothing says which ports were listened on. Well-known
		// remote ports are services (a resolver's random port to :53);
		// else a local port below the ephemeral range is one.
		switch {
		case bit(&ps.listen[p-1], local):
			return window.SideIn
		case remote < 1024 && local >= 1024:
			return window.SideOut
		case local < ps.EphemeralStart:
			return window.SideIn
		}
		return window.SideOut
	}
	if p == window.ProtoTCP {
		// TCP's table is exact: a local service is a port in LISTEN.
		if bit(&ps.listen[0], local) {
			return window.SideIn
		}
		if len(l4) >= 14 {
			// A SYN to a port nothing listens on is a probe (or a
			// connection about to be refused); a RST the host sends from
			// such a port is mostly the kernel refusing one.
			f := l4[13]
			if (!egress && f&(tcpSYN|tcpACK) == tcpSYN) || (egress && f&tcpRST != 0) {
				return window.SideScan
			}
		}
		if bit(&ps.conn[0], local) || c.svc == nil {
			return window.SideOut // a connection of this host's: it is the client
		}
		return c.sentOrScan(p, egress, local)
	}
	// UDP: a bound, unconnected socket may be a server or a client that
	// sends with sendto; the table lists both alike.
	server := bit(&ps.listen[1], local)
	switch {
	case server && local < 1024:
		return window.SideIn
	case remote < 1024:
		return window.SideOut // DNS, QUIC, NTP... from whatever port the client picked
	case server && (local == remote || local < ps.EphemeralStart):
		// The kernel gives a socket that did not bind a port one from the
		// ephemeral range: one outside it was chosen, as servers do.
		return window.SideIn
	case server:
		if c.svc == nil {
			return window.SideIn
		}
		// In the ephemeral range either may be: the first packet decides
		// (a server is sent to first, a client sends first).
		s, w, b := c.svc, local>>6, uint64(1)<<(local&63)
		if s.seen[w].Load()&b == 0 {
			if egress {
				s.clientFirst[w].Or(b)
			}
			s.seen[w].Or(b)
		}
		if s.clientFirst[w].Load()&b != 0 {
			return window.SideOut
		}
		return window.SideIn
	case bit(&ps.conn[1], local), c.svc == nil:
		return window.SideOut
	}
	return c.sentOrScan(p, egress, local)
}

// sentOrScan decides a packet on a local port without a socket in the last
// table: a client newer than the table, or a probe of a closed port (or a
// spoofed packet pretending to answer). The host sending from the port
// says which: what it sends is a client's, and so is what comes back to
// that port within one to two refresh periods.
func (c *Classifier) sentOrScan(p window.Proto, egress bool, local uint16) window.Side {
	s, w, b := c.svc, local>>6, uint64(1)<<(local&63)
	if egress {
		g := s.gen.Load()
		if s.sent[g][p-1][w].Load()&b == 0 {
			s.sent[g][p-1][w].Or(b)
		}
		return window.SideOut
	}
	if (s.sent[0][p-1][w].Load()|s.sent[1][p-1][w].Load())&b != 0 {
		return window.SideOut
	}
	return window.SideScan
}

// IPv6 extension headers that service walks past to find the transport.
const (
	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6AH       = 51
	ip6DestOpts = 60
)

// service6 finds the transport header of an IPv6 packet (ip from its fixed
// header on, as captured) by walking the extension headers, and sets the
// service. A chain cut off by the snap length before its end leaves the
// protocol unknown: counted as other, port 0. A transport header cut off
// counts under its protocol with port 0; so does a non-first fragment.
func (c *Classifier) service6(ev *Event, ip []byte) {
	nh, off := ip[6], 40
	for range 8 {
		switch nh {
		case ip6HopByHop, ip6Routing, ip6DestOpts:
			if len(ip) < off+2 {
				c.service(ev, 255, nil)
				return
			}
			nh, off = ip[off], off+(int(ip[off+1])+1)*8
		case ip6AH:
			if len(ip) < off+2 {
				c.service(ev, 255, nil)
				return
			}
			nh, off = ip[off], off+(int(ip[off+1])+2)*4
		case ip6Fragment:
			if len(ip) < off+4 {
				c.service(ev, 255, nil)
				return
			}
			if binary.BigEndian.Uint16(ip[off+2:])&^7 != 0 {
				c.service(ev, ip[off], nil) // a later fragment: no transport header
				return
			}
			nh, off = ip[off], off+8
		default:
			if len(ip) < off+4 {
				c.service(ev, nh, nil)
				return
			}
			c.service(ev, nh, ip[off:])
			return
		}
	}
	c.service(ev, 255, nil) // more than 8 extension headers: not worth following
}

// service4 sets the service of an IPv4 packet (ip from its header on).
func (c *Classifier) service4(ev *Event, ip []byte) {
	ihl := int(ip[0]&0x0f) * 4
	// A later fragment carries no transport header; a first one does.
	if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 || len(ip) < ihl+4 || (ev.Len != 0 && int(ev.Len) < ihl+4) {
		c.service(ev, ip[9], nil)
		return
	}
	c.service(ev, ip[9], ip[ihl:])
}

package capture

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// Proto is the protocol class a service is counted under.
type Proto uint8

const (
	ProtoOther Proto = iota // any other IP protocol (and IPv6 whose header chain could not be followed)
	ProtoTCP
	ProtoUDP
	ProtoICMP // ICMP and ICMPv6
	NumProtos
)

var protoNames = [NumProtos]string{"other", "tcp", "udp", "icmp"}

func (p Proto) String() string {
	if p < NumProtos {
		return protoNames[p]
	}
	return "other"
}

// ParseProto reads tcp, udp, icmp or other.
func ParseProto(s string) (Proto, error) {
	for i, n := range protoNames {
		if strings.EqualFold(s, n) {
			return Proto(i), nil
		}
	}
	return 0, fmt.Errorf("protocol %q: want tcp, udp, icmp or other", s)
}

// Side says which end of a packet the service is on.
type Side uint8

const (
	SideNone Side = iota // no port known: ICMP, other protocols, non-first fragments, truncated headers
	SideIn               // a service of this host: the local port
	SideOut              // a service this host uses: the remote port
	NumSides
)

var sideNames = [NumSides]string{"", "in", "out"}

func (s Side) String() string {
	if s < NumSides {
		return sideNames[s]
	}
	return ""
}

// Service is a protocol, side and port packed into one integer, so that it
// is a cheap hash key: port | proto<<16 | side<<18.
type Service uint32

// MakeService packs a service. Port is meaningful for TCP and UDP only.
func MakeService(p Proto, s Side, port uint16) Service {
	return Service(uint32(port) | uint32(p&3)<<16 | uint32(s&3)<<18)
}

func (s Service) Port() uint16 { return uint16(s) }
func (s Service) Proto() Proto { return Proto(s >> 16 & 3) }
func (s Service) Side() Side   { return Side(s >> 18 & 3) }

// String is PORT/PROTO, as in 443/tcp; 0/icmp for the portless classes.
func (s Service) String() string {
	return strconv.Itoa(int(s.Port())) + "/" + s.Proto().String()
}

// Service returns the packet's service; meaningful for Egress and Ingress.
func (e *Event) Service() Service {
	return MakeService(Proto(e.Svc&3), Side(e.Svc>>2&3), e.Port)
}

// DefaultEphemeralStart is Linux's default ip_local_port_range start: the
// boundary used when the host's own is unknown (--read).
const DefaultEphemeralStart = 32768

// PortSet is what decides the service side of a TCP or UDP packet: the
// local ports the host listens on, and where the ephemeral range starts.
// It is immutable once handed to Services.Store.
type PortSet struct {
	listen         [2][1024]uint64 // TCP, UDP: a bit per port
	EphemeralStart uint16          // local ports below it are services
}

// NewPortSet returns a set with no listening port and the given start of
// the ephemeral range.
func NewPortSet(ephemeralStart uint16) *PortSet { return &PortSet{EphemeralStart: ephemeralStart} }

// Add marks port as listened on for p (TCP or UDP; other classes are ignored).
func (ps *PortSet) Add(p Proto, port uint16) {
	if p == ProtoTCP || p == ProtoUDP {
		ps.listen[p-1][port>>6] |= 1 << (port & 63)
	}
}

// Listening reports whether p/port is marked.
func (ps *PortSet) Listening(p Proto, port uint16) bool {
	if p != ProtoTCP && p != ProtoUDP {
		return false
	}
	return ps.listen[p-1][port>>6]>>(port&63)&1 != 0
}

// Ports lists the marked ports of p, ascending.
func (ps *PortSet) Ports(p Proto) []uint16 {
	var out []uint16
	for port := 0; port < 65536; port++ {
		if ps.Listening(p, uint16(port)) {
			out = append(out, uint16(port))
		}
	}
	return out
}

// Services holds the current PortSet; a refresher swaps in a new one while
// classifiers read it, one atomic load per packet.
type Services struct{ cur atomic.Pointer[PortSet] }

// NewServices returns Services holding ps.
func NewServices(ps *PortSet) *Services {
	s := &Services{}
	s.cur.Store(ps)
	return s
}

// Store replaces the set.
func (s *Services) Store(ps *PortSet) { s.cur.Store(ps) }

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
// length). The service is the local port when the host listens on it or it
// is below the ephemeral range, else the remote port.
func (c *Classifier) service(ev *Event, proto uint8, l4 []byte) {
	var p Proto
	switch proto {
	case 6:
		p = ProtoTCP
	case 17:
		p = ProtoUDP
	case 1, 58:
		p = ProtoICMP
	}
	if (p != ProtoTCP && p != ProtoUDP) || len(l4) < 4 {
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
	if local < ps.EphemeralStart || ps.listen[p-1][local>>6]>>(local&63)&1 != 0 {
		ev.Port, ev.Svc = local, uint8(p)|uint8(SideIn)<<2
		return
	}
	ev.Port, ev.Svc = remote, uint8(p)|uint8(SideOut)<<2
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

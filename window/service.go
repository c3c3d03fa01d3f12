package window

import (
	"fmt"
	"strconv"
	"strings"
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
	// SideScan is traffic to local ports nothing listens on, from remotes
	// the host did not talk to first: probes of closed ports and the
	// kernel's refusals. One bucket per protocol, port 0, so that a scan
	// of every port makes one row, not 65536 services.
	SideScan
	NumSides
)

var sideNames = [NumSides]string{"", "in", "out", "scan"}

func (s Side) String() string {
	if s < NumSides {
		return sideNames[s]
	}
	return ""
}

// ServiceKey is a protocol, side and port packed into one integer, so that it
// is a cheap hash key: port | proto<<16 | side<<18.
type ServiceKey uint32

// MakeServiceKey packs a service. Port is meaningful for TCP and UDP only.
func MakeServiceKey(p Proto, s Side, port uint16) ServiceKey {
	return ServiceKey(uint32(port) | uint32(p&3)<<16 | uint32(s&3)<<18)
}

func (s ServiceKey) Port() uint16 { return uint16(s) }
func (s ServiceKey) Proto() Proto { return Proto(s >> 16 & 3) }
func (s ServiceKey) Side() Side   { return Side(s >> 18 & 3) }

// String is PORT/PROTO, as in 443/tcp; 0/icmp for the portless classes.
func (s ServiceKey) String() string {
	return strconv.Itoa(int(s.Port())) + "/" + s.Proto().String()
}

// Service is one service's traffic in a window or rollup, with what geo
// knew about its top remotes.
type Service struct {
	Key ServiceKey // protocol, side, port
	// Remotes is how many distinct remotes used it: exact in a raw
	// window that stayed within its open bound (else a lower bound); in a
	// rollup or a merged window, a lower bound (the largest of its parts',
	// or the distinct addresses of its rows if more).
	Remotes int
	Counts           // all of its traffic
	Top     []Remote // its heaviest remotes, heaviest first
	Other   Counts
}

// ServicesWithTop is how many services (the heaviest) of one window keep
// per-remote rows; lighter ones keep their totals and remote counts only.
// It bounds a window whose packets spread over thousands of ports (a port
// scan) to a few thousand rows.
const ServicesWithTop = 200

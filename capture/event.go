package capture

import "net/netip"

// Kind says what a frame was counted as. Egress and Ingress frames are
// tallied; the Skip kinds are counted in window statistics only; Drops is not a
// frame at all but a kernel drop report.
type Kind uint8

const (
	Egress        Kind = iota // IP source is local; the remote is the destination
	Ingress                   // IP destination is local; the remote is the source
	SkipNonIP                 // ARP and every other non-IP frame
	SkipTransit               // neither side is a local address
	SkipMalformed             // too short or an invalid IP header
	SkipExcluded              // the remote matched an exclusion
	SkipLocal                 // both sides are local addresses (the host talking to itself)
	SkipOversize              // the IP length claims more bytes than the wire carried
	SkipSpoofed               // received from the wire with a local source address
	Drops                     // kernel drop report; Len holds the number of frames dropped
	NumKinds
)

var kindNames = [NumKinds]string{"egress", "ingress", "non_ip", "transit", "malformed", "excluded", "local", "oversize", "spoofed", "drops"}

func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "unknown"
}

// Dir is a frame's direction as the capture source saw it, where it can
// tell: a packet socket marks the frames the host sent, SLL/SLL2 headers and
// pcapng epb_flags carry the same mark in files. Plain Ethernet and raw-IP
// captures carry none: then the addresses alone decide.
type Dir uint8

const (
	DirUnknown Dir = iota // the source cannot tell: addresses decide
	DirIn                 // received from the wire
	DirOut                // sent by the host
)

// Event is what capture hands to the tally for every frame: compact and free
// of pointers, so batches of them cost the garbage collector nothing.
type Event struct {
	TS     int64    // packet timestamp, Unix nanoseconds (wall clock for Drops)
	Remote [16]byte // remote address, IPv4 as IPv4-mapped IPv6; zero for skipped frames
	Len    uint32   // IP total length in bytes; frames dropped for Drops
	// Port and Svc are the packet's service (see Service): the service
	// port (0 when none) and the protocol class | side<<2.
	Port uint16
	Kind Kind
	Svc  uint8
}

// Addr returns the remote as a netip.Addr, IPv4 unmapped.
func (e *Event) Addr() netip.Addr { return netip.AddrFrom16(e.Remote).Unmap() }

// BatchSize is how many events travel in one channel send.
const BatchSize = 512

// Pipe carries batches of events from capture sources to the tally. Batches
// are recycled: the consumer hands every batch it received back through Free,
// and a source takes its next batch from Free, allocating only when Free is
// empty. Several sources (one per interface) may share one Pipe.
type Pipe struct {
	Full chan []Event
	Free chan []Event
}

// NewPipe makes a Pipe that holds up to depth full batches in flight.
func NewPipe(depth int) *Pipe {
	return &Pipe{Full: make(chan []Event, depth), Free: make(chan []Event, depth+4)}
}

// Get returns an empty batch with capacity BatchSize.
func (p *Pipe) Get() []Event {
	select {
	case b := <-p.Free:
		return b[:0]
	default:
		return make([]Event, 0, BatchSize)
	}
}

// Put gives a consumed batch back for reuse.
func (p *Pipe) Put(b []Event) {
	select {
	case p.Free <- b[:0]:
	default:
	}
}

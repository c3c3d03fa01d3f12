// Package capture owns the packet sources: live AF_PACKET (TPACKET_V3) sockets
// and pcap/pcapng files. It decodes each frame only as deep as it must (link
// layer, VLAN/QinQ, IPv4/IPv6), classifies it as egress, ingress or skipped,
// applies the exclusions, and emits compact Events in batches through a Pipe.
// It knows packets, not windows or storage. Which service a packet is counted
// under is decided here (ports.go: PortSet, Services); the key it is packed
// into (window.ServiceKey, window.Proto, window.Side) is package window's.
//
// The numbers are defined by Classifier.Classify: bytes are the IP total
// length from the header (IPv6: 40 + payload length), never the captured
// length, so a small snap length changes nothing as long as the fixed IP
// header was captured. That length is trusted only up to the frame's length
// on the wire (SkipOversize), and a frame the source saw arrive with a local
// source address is SkipSpoofed, not egress: the direction comes from the
// ring's sll_pkttype (pkttype.go), SLL/SLL2 headers or pcapng epb_flags.
// The decoder is hand-written and allocation-free;
// gopacket is used only for the AF_PACKET ring.
//
// Files are read by a reader of our own rather than pcapgo: records are
// parsed in place in a 1 MiB bufio.Reader (no copy, no allocation per
// packet), a record may claim at most 256 KiB, and the end of the file in
// the middle of a record is reported as ErrTruncated after every complete
// packet was emitted.
//
// Live capture: OpenLive attaches a classic BPF filter (KernelFilter) that
// keeps only frames to or from a local address, and sets the snap length.
// The kernel strips VLAN tags before packet sockets see a frame, which does
// not matter since IP length is counted. Run must be the only user of the
// socket and closes it itself.
package capture

// Package capture owns the packet sources: live AF_PACKET (TPACKET_V3) sockets
// and pcap/pcapng files. It decodes each frame only as deep as it must (link
// layer, VLAN/QinQ, IPv4/IPv6), classifies it as egress, ingress or skipped,
// applies the exclusions, and emits compact Events in batches through a Pipe.
// It knows packets, not windows or storage.
package capture

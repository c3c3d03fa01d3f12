package capture

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringDir finds the direction of a frame read from a TPACKET_V3 ring, where
// the kernel stores it as sll_pkttype in the sockaddr_ll that follows each
// frame's tpacket3_hdr. gopacket's afpacket (v1.7.7) reads that sockaddr_ll
// for the interface index but does not expose the packet type, so it is read
// here, from the ring, through the kernel's ABI (linux/if_packet.h), not
// through afpacket's internals.
//
// data is what ZeroCopyReadPacketData returned: a slice into the ring that
// starts tp_mac bytes after its tpacket3_hdr (afpacket copies only to insert
// VLAN tags, which Live never asks for). The kernel puts the MAC header at
// macoff = netoff - maclen, netoff = TPACKET_ALIGN(68 + max(maclen, 16))
// (tpacket_rcv, no PACKET_RESERVE, no vnet header), so macoff lies in
// [68, 96], and V3 packets are 8-aligned in their block. That leaves at most
// four places for the header, and each is accepted only if its tp_mac,
// tp_snaplen, sll_family and sll_ifindex all agree with the frame: a wrong
// guess cannot pass for a header. Every candidate lies after the block
// descriptor (48 bytes) of the block holding data, so nothing outside the
// mapped ring is read. If no candidate agrees the direction is unknown and
// the addresses decide, as they did before.
func ringDir(data []byte, ifindex int) Dir {
	if len(data) == 0 {
		return DirUnknown
	}
	d := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	const (
		hdrLen     = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
		minMac     = 68 // hdrLen + sizeof(struct sockaddr_ll)
		maxMac     = 96
		offSnaplen = 12
		offMac     = 24
		offFamily  = hdrLen
		offIfindex = hdrLen + 4
		offPkttype = hdrLen + 10
	)
	for h := (d - minMac) &^ 7; d-h <= maxMac; h -= 8 {
		hdr := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(data)), -int(d-h))), minMac)
		ne := binary.NativeEndian
		if uintptr(ne.Uint16(hdr[offMac:])) == d-h &&
			int(ne.Uint32(hdr[offSnaplen:])) == len(data) &&
			ne.Uint16(hdr[offFamily:]) == unix.AF_PACKET &&
			int(int32(ne.Uint32(hdr[offIfindex:]))) == ifindex {
			return pktDir(uint16(hdr[offPkttype]))
		}
	}
	return DirUnknown
}

// Package pcapgen owns dstwatch's synthetic captures: it writes pcap and
// pcapng files from a structured description of each packet (Packet) and
// computes, from that same description, the exact tallies dstwatch must
// produce for them (Truth).
//
// The ground truth deliberately never decodes bytes: if it did, a bug shared
// by the decoder under test and the checker would cancel out. Frames are
// serialized with gopacket's layers (real headers, real checksums) rather
// than with dstwatch's own code for the same reason, and this package must
// not import dstwatch's capture package.
package pcapgen

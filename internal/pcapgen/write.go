package pcapgen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// fileSnapLen is the snap length announced in file and interface headers:
// the largest a Linux capture uses, so no generated frame exceeds it.
const fileSnapLen = 262144

const writeBufSize = 1 << 20

// Write writes pkts to path in the given format and link type (Ethernet,
// Raw, SLL, SLL2). A pcapng file gets one interface with nanosecond
// timestamps; WriteNG makes the multi-interface case.
func Write(path string, format Format, link uint16, pkts []Packet) error {
	return WriteFunc(path, format, link, len(pkts), func(i int) Packet { return pkts[i] })
}

// WriteFunc writes n packets produced by next(0) .. next(n-1), in that
// order, without holding them all in memory.
func WriteFunc(path string, format Format, link uint16, n int, next func(i int) Packet) (err error) {
	if format < PcapMicro || format > PcapNG {
		return fmt.Errorf("pcapgen: unknown format %d", format)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, writeBufSize)

	var write func(ci gopacket.CaptureInfo, data []byte, p *Packet) error
	var flush func() error = bw.Flush
	switch format {
	case PcapMicro, PcapNano:
		var w *pcapgo.Writer
		if format == PcapNano {
			w = pcapgo.NewWriterNanos(bw)
		} else {
			w = pcapgo.NewWriter(bw)
		}
		if err := w.WriteFileHeader(fileSnapLen, layers.LinkType(link)); err != nil {
			return err
		}
		write = func(ci gopacket.CaptureInfo, data []byte, _ *Packet) error { return w.WritePacket(ci, data) }
	case PcapNG:
		w, err := pcapgo.NewNgWriterInterface(bw, pcapgo.NgInterface{
			Name:                "gen0",
			LinkType:            layers.LinkType(link),
			SnapLength:          fileSnapLen,
			TimestampResolution: 9,
		}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "dstwatch pcapgen"}})
		if err != nil {
			return err
		}
		write = func(ci gopacket.CaptureInfo, data []byte, p *Packet) error {
			if !p.EPBDirection {
				return w.WritePacket(ci, data)
			}
			flags := pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
			if p.Outgoing {
				flags.Direction = pcapgo.NgEpbFlagDirectionOutbound
			}
			return w.WritePacketWithOptions(ci, data, pcapgo.NgPacketOptions{Flags: &flags})
		}
		flush = func() error {
			if err := w.Flush(); err != nil {
				return err
			}
			return bw.Flush()
		}
	}

	b := newBuilder()
	for i := 0; i < n; i++ {
		p := next(i)
		data, orig, err := b.frame(&p, link)
		if err != nil {
			return fmt.Errorf("packet %d: %w", i, err)
		}
		ci := gopacket.CaptureInfo{Timestamp: p.TS, CaptureLength: len(data), Length: orig}
		if err := write(ci, data, &p); err != nil {
			return fmt.Errorf("packet %d: %w", i, err)
		}
	}
	return flush()
}

// ngInterfaces are WriteNG's two interfaces. They differ in both link type
// and timestamp resolution because a reader that applies one interface's
// settings to another's packets is a classic pcapng bug.
var ngInterfaces = [2]struct {
	link   uint16
	tsres  uint8 // if_tsresol: power of ten
	perSec int64
}{
	{LinkEthernet, 6, 1e6},
	{LinkRaw, 9, 1e9},
}

// WriteNG writes a pcapng file with two interfaces: IDB 0 Ethernet with
// microsecond timestamps (if_tsresol 6), IDB 1 raw IP with nanosecond
// timestamps (if_tsresol 9). pkts[i] goes on interface ifaces[i].
//
// The blocks are written by hand because pcapgo's NgWriter always declares
// nanosecond resolution.
func WriteNG(path string, pkts []Packet, ifaces []int) (err error) {
	if len(ifaces) != len(pkts) {
		return fmt.Errorf("pcapgen: %d packets but %d interface indexes", len(pkts), len(ifaces))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, writeBufSize)
	le := binary.LittleEndian

	// Section header block: no options, unknown section length.
	shb := make([]byte, 28)
	le.PutUint32(shb[0:], 0x0A0D0D0A)
	le.PutUint32(shb[4:], 28)
	le.PutUint32(shb[8:], 0x1A2B3C4D)
	le.PutUint16(shb[12:], 1)
	le.PutUint16(shb[14:], 0)
	le.PutUint64(shb[16:], ^uint64(0))
	le.PutUint32(shb[24:], 28)
	bw.Write(shb)

	for _, it := range ngInterfaces {
		// Interface description block with if_tsresol and opt_endofopt.
		idb := make([]byte, 32)
		le.PutUint32(idb[0:], 1)
		le.PutUint32(idb[4:], 32)
		le.PutUint16(idb[8:], it.link)
		le.PutUint32(idb[12:], fileSnapLen)
		le.PutUint16(idb[16:], 9) // if_tsresol
		le.PutUint16(idb[18:], 1)
		idb[20] = it.tsres
		// idb[24:28]: opt_endofopt
		le.PutUint32(idb[28:], 32)
		bw.Write(idb)
	}

	b := newBuilder()
	var hdr [28]byte
	var pad [4]byte
	for i := range pkts {
		id := ifaces[i]
		if id < 0 || id >= len(ngInterfaces) {
			return fmt.Errorf("packet %d: interface %d does not exist", i, id)
		}
		it := ngInterfaces[id]
		data, orig, err := b.frame(&pkts[i], it.link)
		if err != nil {
			return fmt.Errorf("packet %d: %w", i, err)
		}
		ts := tsUnits(pkts[i].TS, it.perSec)
		padding := (4 - len(data)%4) % 4
		total := 28 + len(data) + padding + 4
		le.PutUint32(hdr[0:], 6) // enhanced packet block
		le.PutUint32(hdr[4:], uint32(total))
		le.PutUint32(hdr[8:], uint32(id))
		le.PutUint32(hdr[12:], uint32(uint64(ts)>>32))
		le.PutUint32(hdr[16:], uint32(ts))
		le.PutUint32(hdr[20:], uint32(len(data)))
		le.PutUint32(hdr[24:], uint32(orig))
		bw.Write(hdr[:])
		bw.Write(data)
		bw.Write(pad[:padding])
		le.PutUint32(hdr[0:], uint32(total))
		bw.Write(hdr[:4])
	}
	// bufio.Writer keeps the first write error and returns it here.
	return bw.Flush()
}

// tsUnits converts t to ticks of 1/perSec seconds since the epoch, rounding
// down (toward earlier) like a capturing kernel truncates: a packet then
// never moves into a later window than the one Truth puts it in.
func tsUnits(t time.Time, perSec int64) int64 {
	ns := t.UnixNano()
	div := int64(1e9) / perSec
	q := ns / div
	if ns%div < 0 {
		q--
	}
	return q
}

package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
)

// ErrTruncated is wrapped by File.Run's error when the file ends in the middle
// of a record, which is what a capture killed mid-write leaves behind. Every
// complete packet before that point has been emitted, except when the file
// shrank while it was being read (see mapReader).
var ErrTruncated = errors.New("file ends mid-record (truncated capture)")

// ErrMalformedFile is wrapped by File.Run's and OpenFile's error when a record
// or block is structurally impossible (a length that cannot be right).
var ErrMalformedFile = errors.New("malformed capture file")

// maxRecord bounds what one packet record may claim, so a hostile or corrupt
// length cannot make the reader buffer gigabytes. 256 KiB is tcpdump's
// largest snap length; real frames, even GRO ones, fit.
const maxRecord = 256 << 10

// maxBlock bounds a pcapng block we must hold in memory (packets, headers);
// other block types are skipped without being buffered.
const maxBlock = maxRecord + 4096

// readBuffer is large so a read syscall moves thousands of frames; it must
// exceed maxBlock because records are parsed in place with Peek.
const readBuffer = 1 << 20

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	ngSHB          = 0x0a0d0d0a
	ngIDB          = 0x00000001
	ngSPB          = 0x00000003
	ngEPB          = 0x00000006
	ngByteOrder    = 0x1a2b3c4d
)

// File reads a pcap or pcapng file. It is used by one goroutine: Run once,
// then Close.
type File struct {
	name string
	f    *os.File
	r    recordSource
	off  int64 // file offset of the next unread byte, for error messages
	ng   bool
	bo   binary.ByteOrder

	// pcap
	link LinkType
	nano bool

	// pcapng: interfaces of the current section, by interface ID.
	ifaces []ngIface
	lastTS int64 // for simple packet blocks, which carry no timestamp
}

type ngIface struct {
	link    LinkType
	snap    uint32
	tsres   uint8 // if_tsresol as in the file: bit 7 set = power of 2
	tsoff   int64 // if_tsoffset, seconds
	scale   uint64
	divide  bool // scale divides instead of multiplies (resolution finer than 1 ns)
	binexp  uint // power-of-two resolution exponent when tsres has bit 7
	skipped bool // link type unsupported: refuse when a packet uses it
}

// OpenFile opens a pcap (micro- or nanosecond, either byte order) or pcapng
// file and reads its header. For pcapng the interface blocks that precede the
// first packet are read too, so an unsupported link type fails here rather
// than halfway through Run.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture file: %w", err)
	}
	pf := &File{name: path, f: f, r: newSource(f)}
	if err := pf.readHeaderGuarded(); err != nil {
		f.Close()
		return nil, err
	}
	return pf, nil
}

// Close closes the file.
func (f *File) Close() error {
	merr := f.r.close()
	if err := f.f.Close(); err != nil {
		return err
	}
	return merr
}

func (f *File) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{f.name}, args...)...)
}

func (f *File) readHeaderGuarded() (err error) {
	defer f.faultGuard(&err)()
	return f.readHeader()
}

func (f *File) readHeader() error {
	b, _ := f.r.Peek(4)
	if len(b) < 4 {
		return f.errorf("not a pcap or pcapng file")
	}
	switch {
	case binary.LittleEndian.Uint32(b) == ngSHB:
		f.ng = true
		return f.readNgHeader()
	case binary.LittleEndian.Uint32(b) == pcapMagicMicro, binary.LittleEndian.Uint32(b) == pcapMagicNano:
		f.bo = binary.LittleEndian
	case binary.BigEndian.Uint32(b) == pcapMagicMicro, binary.BigEndian.Uint32(b) == pcapMagicNano:
		f.bo = binary.BigEndian
	default:
		return f.errorf("not a pcap or pcapng file")
	}
	h, _ := f.r.Peek(24)
	if len(h) < 24 {
		return f.errorf("pcap header: %w", ErrTruncated)
	}
	f.nano = f.bo.Uint32(h) == pcapMagicNano
	if major := f.bo.Uint16(h[4:]); major != 2 {
		return f.errorf("unsupported pcap version %d.%d", major, f.bo.Uint16(h[6:]))
	}
	// The upper bits of the link type field may carry FCS information
	// (pcap spec); the FCS does not change the IP length, so ignore them.
	f.link = LinkType(f.bo.Uint32(h[20:]) & 0xffff)
	if !f.link.supported() {
		return f.errorf("unsupported link type %d (want Ethernet, raw IP, Linux cooked SLL/SLL2)", f.link)
	}
	f.discard(24)
	return nil
}

func (f *File) discard(n int) {
	f.r.Discard(n)
	f.off += int64(n)
}

// Run reads every packet, classifies it and sends the events in batches to
// p.Full, flushing the last partial batch at the end. It returns nil at a
// clean end of file, an error wrapping ErrTruncated if the file ends
// mid-record (after emitting every complete packet), and ctx.Err() if ctx is
// cancelled first. It does not close p.Full: several sources may share p.
func (f *File) Run(ctx context.Context, c *Classifier, p *Pipe) (err error) {
	defer f.faultGuard(&err)()
	batch := getBatch(p)
	if f.ng {
		batch, err = f.runNg(ctx, c, p, batch)
	} else {
		batch, err = f.runPcap(ctx, c, p, batch)
	}
	if ctx.Err() != nil {
		if batch != nil {
			p.Put(batch)
		}
		return ctx.Err()
	}
	if len(batch) > 0 {
		if serr := send(ctx, p, batch); serr != nil {
			return serr
		}
	} else {
		p.Put(batch)
	}
	return err
}

// send hands a full batch to the consumer. It gives up only when ctx is
// cancelled: a file replay that was cancelled has no complete numbers to save.
func send(ctx context.Context, p *Pipe, batch []Event) error {
	// Checked first because a select with both cases ready picks at random,
	// and a fast consumer would otherwise hide the cancellation.
	if err := ctx.Err(); err != nil {
		p.Put(batch)
		return err
	}
	select {
	case p.Full <- batch:
		return nil
	case <-ctx.Done():
		p.Put(batch)
		return ctx.Err()
	}
}

func (f *File) runPcap(ctx context.Context, c *Classifier, p *Pipe, batch []Event) ([]Event, error) {
	link, r := f.link, f.r
	tsmul := int64(1000)
	if f.nano {
		tsmul = 1
	}
	// Headers are read little-endian and swapped for a big-endian file:
	// three calls through the binary.ByteOrder interface per record were
	// a visible share of a replay.
	swap := f.bo == binary.BigEndian
	u32 := func(b []byte) uint32 {
		v := binary.LittleEndian.Uint32(b)
		if swap {
			v = bits.ReverseBytes32(v)
		}
		return v
	}
	for {
		// Parse every complete record in the buffer, then discard them
		// at once: a Peek and a Discard per record cost more than the
		// parse. The buffer (1 MiB) always holds a whole record.
		buf, err := r.Peek(readBuffer)
		used := 0
		for len(buf)-used >= 16 {
			h := buf[used : used+16]
			caplen := u32(h[8:])
			if caplen > maxRecord {
				r.Discard(used)
				f.off += int64(used)
				return batch, f.errorf("record at offset %d: capture length %d exceeds %d bytes: %w", f.off, caplen, maxRecord, ErrMalformedFile)
			}
			n := 16 + int(caplen)
			if len(buf)-used < n {
				break
			}
			i := len(batch)
			batch = batch[:i+1]
			ev := &batch[i]
			ev.TS = int64(u32(h))*1e9 + int64(u32(h[4:]))*tsmul
			// Classic pcap carries no direction; SLL/SLL2 headers do, and
			// Classify reads them.
			c.Classify(link, buf[used+16:used+n:used+n], int(u32(h[12:])), DirUnknown, ev)
			used += n
			if len(batch) == BatchSize {
				if err := send(ctx, p, batch); err != nil {
					return nil, err
				}
				batch = getBatch(p)
			}
		}
		r.Discard(used)
		f.off += int64(used)
		if err != nil {
			if used == len(buf) && err == io.EOF {
				return batch, nil
			}
			if used == 0 || err != io.EOF {
				return batch, f.readErr(err)
			}
		}
	}
}

// readErr turns a short read into the right error: the end of the file in the
// middle of a record is truncation, anything else is an I/O error.
func (f *File) readErr(err error) error {
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		return f.errorf("record at offset %d: %w", f.off, ErrTruncated)
	}
	return f.errorf("read at offset %d: %w", f.off, err)
}

// readNgHeader reads the first section header and the interface blocks that
// follow it.
func (f *File) readNgHeader() error {
	if err := f.ngSection(); err != nil {
		return err
	}
	for {
		h, _ := f.r.Peek(4)
		if len(h) < 4 || f.bo.Uint32(h) != ngIDB {
			break
		}
		if _, err := f.ngNext(nil, nil); err != nil {
			return err
		}
	}
	// Refuse a file none of whose interfaces we can decode; one odd
	// interface among good ones is refused only if a packet uses it.
	for _, ifc := range f.ifaces {
		if !ifc.skipped {
			return nil
		}
	}
	if len(f.ifaces) > 0 {
		return f.errorf("unsupported link type %d (want Ethernet, raw IP, Linux cooked SLL/SLL2)", f.ifaces[0].link)
	}
	return nil
}

// ngSection reads a section header block: it sets the byte order and forgets
// the previous section's interfaces, as the pcapng spec requires.
func (f *File) ngSection() error {
	h, err := f.r.Peek(12)
	if len(h) < 12 {
		return f.readErr(err)
	}
	switch {
	case binary.LittleEndian.Uint32(h[8:]) == ngByteOrder:
		f.bo = binary.LittleEndian
	case binary.BigEndian.Uint32(h[8:]) == ngByteOrder:
		f.bo = binary.BigEndian
	default:
		return f.errorf("section header at offset %d: bad byte-order magic: %w", f.off, ErrMalformedFile)
	}
	blen := f.bo.Uint32(h[4:])
	if blen < 28 || blen%4 != 0 || blen > maxBlock {
		return f.errorf("section header at offset %d: bad length %d: %w", f.off, blen, ErrMalformedFile)
	}
	b, err := f.r.Peek(int(blen))
	if len(b) < int(blen) {
		return f.readErr(err)
	}
	if major := f.bo.Uint16(b[12:]); major != 1 {
		return f.errorf("unsupported pcapng version %d.%d", major, f.bo.Uint16(b[14:]))
	}
	f.ifaces = f.ifaces[:0]
	f.discard(int(blen))
	return nil
}

func (f *File) runNg(ctx context.Context, c *Classifier, p *Pipe, batch []Event) ([]Event, error) {
	for {
		i := len(batch)
		batch = batch[:i+1]
		got, err := f.ngNext(c, &batch[i])
		if !got {
			batch = batch[:i]
		}
		if err != nil {
			if err == io.EOF {
				return batch, nil
			}
			return batch, err
		}
		if len(batch) == BatchSize {
			if err := send(ctx, p, batch); err != nil {
				return nil, err
			}
			batch = getBatch(p)
		}
	}
}

// ngNext reads the next block. It reports true when the block was a packet
// and *ev was filled; io.EOF means a clean end of file. OpenFile calls it
// with nil c and ev, only when the next block is an interface block.
func (f *File) ngNext(c *Classifier, ev *Event) (bool, error) {
	h, err := f.r.Peek(8)
	if len(h) < 8 {
		if len(h) == 0 && err == io.EOF {
			return false, io.EOF
		}
		return false, f.readErr(err)
	}
	if binary.LittleEndian.Uint32(h) == ngSHB {
		return false, f.ngSection()
	}
	typ, blen := f.bo.Uint32(h), f.bo.Uint32(h[4:])
	if blen < 12 || blen%4 != 0 {
		return false, f.errorf("block at offset %d: bad length %d: %w", f.off, blen, ErrMalformedFile)
	}
	if typ != ngIDB && typ != ngEPB && typ != ngSPB {
		// Statistics, name resolution, custom blocks: not needed, and
		// skipped without buffering however large they claim to be.
		n, err := f.r.Discard(int(blen))
		f.off += int64(n)
		if n < int(blen) {
			return false, f.readErr(err)
		}
		return false, nil
	}
	if blen > maxBlock {
		return false, f.errorf("block at offset %d: length %d exceeds %d bytes: %w", f.off, blen, maxBlock, ErrMalformedFile)
	}
	b, err := f.r.Peek(int(blen))
	if len(b) < int(blen) {
		return false, f.readErr(err)
	}
	body := b[8 : blen-4]
	switch typ {
	case ngIDB:
		err = f.ngInterface(body)
		f.discard(int(blen))
		return false, err
	case ngEPB:
		if len(body) < 20 {
			return false, f.errorf("packet block at offset %d: too short: %w", f.off, ErrMalformedFile)
		}
		id := f.bo.Uint32(body)
		caplen := f.bo.Uint32(body[12:])
		if uint64(caplen) > uint64(len(body)-20) {
			return false, f.errorf("packet block at offset %d: capture length %d exceeds block: %w", f.off, caplen, ErrMalformedFile)
		}
		ifc, err := f.iface(id)
		if err != nil {
			return false, err
		}
		ts := uint64(f.bo.Uint32(body[4:]))<<32 | uint64(f.bo.Uint32(body[8:]))
		ev.TS = ifc.nanos(ts)
		// Options follow the data padded to 4 bytes; a block that
		// omits the padding has none.
		var opts []byte
		if o := 20 + (uint64(caplen)+3)&^3; o <= uint64(len(body)) {
			opts = body[o:]
		}
		c.Classify(ifc.link, body[20:20+caplen:20+caplen], int(f.bo.Uint32(body[16:])), f.epbDir(opts), ev)
	case ngSPB:
		if len(body) < 4 {
			return false, f.errorf("packet block at offset %d: too short: %w", f.off, ErrMalformedFile)
		}
		ifc, err := f.iface(0)
		if err != nil {
			return false, err
		}
		// A simple packet block has no capture length: it is the original
		// length cut to the interface snap length. It has no timestamp
		// either: it gets the previous packet's (0 before any), which keeps
		// it in the window its neighbours are in.
		data := body[4:]
		if l := f.bo.Uint32(body); uint64(l) < uint64(len(data)) {
			data = data[:l]
		}
		if ifc.snap > 0 && uint64(ifc.snap) < uint64(len(data)) {
			data = data[:ifc.snap]
		}
		ev.TS = f.lastTS
		c.Classify(ifc.link, data[:len(data):len(data)], int(f.bo.Uint32(body)), DirUnknown, ev)
	}
	f.lastTS = ev.TS
	f.discard(int(blen))
	return true, nil
}

// epbDir reads the direction bits of an enhanced packet block's epb_flags
// option (code 2, bits 0-1: 1 inbound, 2 outbound), the only place pcapng
// records which frames the host sent. opts are the block's options; a
// malformed option list decides nothing rather than failing the file.
func (f *File) epbDir(opts []byte) Dir {
	for len(opts) >= 4 {
		code, olen := f.bo.Uint16(opts), int(f.bo.Uint16(opts[2:]))
		if code == 0 { // opt_endofopt
			break
		}
		if 4+olen > len(opts) {
			break
		}
		if code == 2 && olen == 4 {
			switch f.bo.Uint32(opts[4:]) & 3 {
			case 1:
				return DirIn
			case 2:
				return DirOut
			}
			return DirUnknown
		}
		opts = opts[min(4+(olen+3)&^3, len(opts)):]
	}
	return DirUnknown
}

func (f *File) iface(id uint32) (*ngIface, error) {
	if uint64(id) >= uint64(len(f.ifaces)) {
		return nil, f.errorf("packet block at offset %d: interface %d not described by any interface block: %w", f.off, id, ErrMalformedFile)
	}
	ifc := &f.ifaces[id]
	if ifc.skipped {
		return nil, f.errorf("interface %d: unsupported link type %d (want Ethernet, raw IP, Linux cooked SLL/SLL2)", id, ifc.link)
	}
	return ifc, nil
}

// ngInterface parses an interface description block body.
func (f *File) ngInterface(body []byte) error {
	if len(body) < 8 {
		return f.errorf("interface block at offset %d: too short: %w", f.off, ErrMalformedFile)
	}
	ifc := ngIface{
		link:  LinkType(f.bo.Uint16(body)),
		snap:  f.bo.Uint32(body[4:]),
		tsres: 6,
	}
	// An interface with an unsupported link type is refused only when one
	// of its packets is read: a file may describe interfaces it never used.
	ifc.skipped = !ifc.link.supported()
	for opts := body[8:]; len(opts) >= 4; {
		code, olen := f.bo.Uint16(opts), int(f.bo.Uint16(opts[2:]))
		if code == 0 { // opt_endofopt
			break
		}
		padded := (olen + 3) &^ 3
		if 4+padded > len(opts) {
			return f.errorf("interface block at offset %d: option %d overruns the block: %w", f.off, code, ErrMalformedFile)
		}
		val := opts[4 : 4+olen]
		switch {
		case code == 9 && olen == 1: // if_tsresol
			ifc.tsres = val[0]
		case code == 14 && olen == 8: // if_tsoffset
			ifc.tsoff = int64(f.bo.Uint64(val))
		}
		opts = opts[4+padded:]
	}
	if err := ifc.setScale(); err != nil {
		return f.errorf("interface %d: %w", len(f.ifaces), err)
	}
	f.ifaces = append(f.ifaces, ifc)
	return nil
}

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

func (i *ngIface) setScale() error {
	v := uint(i.tsres & 0x7f)
	if i.tsres&0x80 != 0 {
		if v > 63 {
			return fmt.Errorf("timestamp resolution 2^-%d: %w", v, ErrMalformedFile)
		}
		i.binexp = v
		return nil
	}
	switch {
	case v <= 9:
		i.scale = pow10[9-v]
	case v <= 19:
		i.scale, i.divide = pow10[v-9], true
	default:
		return fmt.Errorf("timestamp resolution 10^-%d: %w", v, ErrMalformedFile)
	}
	return nil
}

// nanos converts a timestamp in interface units to Unix nanoseconds.
// Timestamps too large for int64 nanoseconds (after year 2262) wrap; they are
// garbage in any real capture.
func (i *ngIface) nanos(ts uint64) int64 {
	var ns uint64
	switch {
	case i.tsres&0x80 != 0:
		hi, lo := bits.Mul64(ts, 1e9)
		if i.binexp == 0 {
			ns = lo
		} else {
			ns = hi<<(64-i.binexp) | lo>>i.binexp
		}
	case i.divide:
		ns = ts / i.scale
	default:
		ns = ts * i.scale
	}
	return int64(ns) + i.tsoff*1e9
}

// getBatch is p.Get guarded against a consumer that handed back a batch of
// smaller capacity: the readers fill batches in place up to BatchSize.
func getBatch(p *Pipe) []Event {
	if b := p.Get(); cap(b) >= BatchSize {
		return b
	}
	return make([]Event, 0, BatchSize)
}

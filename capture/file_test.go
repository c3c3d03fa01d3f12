package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Capture files are written here byte by byte from the pcap and pcapng
// specifications, not with the reader's own code.

type rec struct {
	ts   int64 // Unix ns
	data []byte
	orig int // original length; 0 = len(data)
}

func pcapFile(bo binary.AppendByteOrder, nano bool, link uint32, recs []rec) []byte {
	magic := uint32(pcapMagicMicro)
	if nano {
		magic = pcapMagicNano
	}
	b := bo.AppendUint32(nil, magic)
	b = bo.AppendUint16(b, 2)
	b = bo.AppendUint16(b, 4)
	b = bo.AppendUint32(b, 0)
	b = bo.AppendUint32(b, 0)
	b = bo.AppendUint32(b, 65535)
	b = bo.AppendUint32(b, link)
	for _, r := range recs {
		sub := (r.ts % 1e9)
		if !nano {
			sub /= 1000
		}
		orig := r.orig
		if orig == 0 {
			orig = len(r.data)
		}
		b = bo.AppendUint32(b, uint32(r.ts/1e9))
		b = bo.AppendUint32(b, uint32(sub))
		b = bo.AppendUint32(b, uint32(len(r.data)))
		b = bo.AppendUint32(b, uint32(orig))
		b = append(b, r.data...)
	}
	return b
}

// ngIDBSpec describes one pcapng interface.
type ngIDBSpec struct {
	link  uint16
	tsres int   // -1: no option (microseconds)
	tsoff int64 // seconds; 0 = no option
	snap  uint32
}

func ngBlockBytes(bo binary.AppendByteOrder, typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := bo.AppendUint32(nil, typ)
	b = bo.AppendUint32(b, n)
	b = append(b, body...)
	return bo.AppendUint32(b, n)
}

func ngOption(bo binary.AppendByteOrder, code uint16, val []byte) []byte {
	b := bo.AppendUint16(nil, code)
	b = bo.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func ngSHBBytes(bo binary.AppendByteOrder) []byte {
	body := bo.AppendUint32(nil, ngByteOrder)
	body = bo.AppendUint16(body, 1)
	body = bo.AppendUint16(body, 0)
	body = bo.AppendUint64(body, ^uint64(0)) // section length unknown
	// A comment option, to prove options are skipped.
	body = append(body, ngOption(bo, 1, []byte("made by hand"))...)
	body = append(body, 0, 0, 0, 0)
	return ngBlockBytes(bo, ngSHB, body)
}

func ngIDBBytes(bo binary.AppendByteOrder, s ngIDBSpec) []byte {
	body := bo.AppendUint16(nil, s.link)
	body = bo.AppendUint16(body, 0)
	body = bo.AppendUint32(body, s.snap)
	body = append(body, ngOption(bo, 2, []byte("eth0"))...) // if_name
	if s.tsres >= 0 {
		body = append(body, ngOption(bo, 9, []byte{byte(s.tsres)})...)
	}
	if s.tsoff != 0 {
		body = append(body, ngOption(bo, 14, bo.AppendUint64(nil, uint64(s.tsoff)))...)
	}
	body = append(body, 0, 0, 0, 0)
	return ngBlockBytes(bo, ngIDB, body)
}

// ngEPBBytes writes an enhanced packet block; units is the raw timestamp
// in the interface's resolution.
func ngEPBBytes(bo binary.AppendByteOrder, ifc uint32, units uint64, data []byte, orig int) []byte {
	if orig == 0 {
		orig = len(data)
	}
	body := bo.AppendUint32(nil, ifc)
	body = bo.AppendUint32(body, uint32(units>>32))
	body = bo.AppendUint32(body, uint32(units))
	body = bo.AppendUint32(body, uint32(len(data)))
	body = bo.AppendUint32(body, uint32(orig))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	body = append(body, ngOption(bo, 1, []byte("pkt comment"))...)
	body = append(body, 0, 0, 0, 0)
	return ngBlockBytes(bo, ngEPB, body)
}

func ngSPBBytes(bo binary.AppendByteOrder, data []byte, orig int) []byte {
	body := bo.AppendUint32(nil, uint32(orig))
	return ngBlockBytes(bo, ngSPB, append(body, data...))
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runFile reads a file through a real Pipe with a consumer that recycles
// batches, as the tally does.
func runFile(t testing.TB, path string, c *Classifier) ([]Event, error) {
	t.Helper()
	f, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return runOpened(f, c)
}

// runOpened is runFile on a file already opened.
func runOpened(f *File, c *Classifier) ([]Event, error) {
	p := NewPipe(4)
	done := make(chan []Event)
	go func() {
		var all []Event
		for b := range p.Full {
			all = append(all, b...)
			p.Put(b)
		}
		done <- all
	}()
	err := f.Run(context.Background(), c, p)
	close(p.Full)
	return <-done, err
}

type wantEv struct {
	ts     int64
	kind   Kind
	len    uint32
	remote string
}

func checkEvents(t *testing.T, got []Event, want []wantEv) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		var r [16]byte
		if w.remote != "" {
			r = mapped(w.remote)
		}
		g := got[i]
		if g.TS != w.ts || g.Kind != w.kind || g.Len != w.len || g.Remote != r {
			t.Errorf("event %d: got ts=%d kind=%v len=%d remote=%v, want ts=%d kind=%v len=%d remote=%s",
				i, g.TS, g.Kind, g.Len, g.Addr(), w.ts, w.kind, w.len, w.remote)
		}
	}
}

// baseTS is 2024-05-06 07:08:09 UTC plus a nanosecond part with every digit
// used, so lost precision shows.
var baseTS = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC).UnixNano()

func TestPcap(t *testing.T) {
	c := testClassifier()
	frames := []rec{
		{ts: baseTS, data: eth(etherIPv4, ipv4(local4, far4, 100, v4opts{}))},
		{ts: baseTS + 1, data: eth(etherIPv6, ipv6(far6, local6, 17, nil, 1000))[:54], orig: 1054},
		{ts: baseTS + 2e9, data: arp()},
		{ts: baseTS + 3e9, data: eth(etherIPv4, ipv4(far4, far4b, 10, v4opts{}))},
		{ts: baseTS + 4e9, data: eth(etherIPv4, ipv4(local4, far4, 10, v4opts{}))[:30]},
	}
	cases := []struct {
		name string
		bo   binary.AppendByteOrder
		nano bool
	}{
		{"micro little-endian", binary.LittleEndian, false},
		{"nano little-endian", binary.LittleEndian, true},
		{"micro big-endian", binary.BigEndian, false},
		{"nano big-endian", binary.BigEndian, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			trunc := int64(1)
			if !tc.nano {
				trunc = 1000
			}
			ts := func(v int64) int64 { return v / trunc * trunc }
			path := writeTemp(t, "x.pcap", pcapFile(tc.bo, tc.nano, 1, frames))
			got, err := runFile(t, path, c)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, got, []wantEv{
				{ts(baseTS), Egress, 120, far4},
				{ts(baseTS + 1), Ingress, 1040, far6},
				{ts(baseTS + 2e9), SkipNonIP, 0, ""},
				{ts(baseTS + 3e9), SkipTransit, 30, ""},
				{ts(baseTS + 4e9), SkipMalformed, 0, ""},
			})
		})
	}
}

func TestPcapLinkTypes(t *testing.T) {
	c := testClassifier()
	in := ipv4(far4, local4, 500, v4opts{})
	for _, tc := range []struct {
		link  LinkType
		frame []byte
	}{
		{LinkEthernet, eth(etherIPv4, in)},
		{LinkRaw, in},
		{LinkLinuxSLL, sll(etherIPv4, in)},
		{LinkLinuxSLL2, sll2(etherIPv4, in)},
		{LinkIPv4, in},
	} {
		path := writeTemp(t, "x.pcap", pcapFile(binary.LittleEndian, true, uint32(tc.link), []rec{{ts: 5, data: tc.frame}}))
		got, err := runFile(t, path, c)
		if err != nil {
			t.Fatalf("link %d: %v", tc.link, err)
		}
		checkEvents(t, got, []wantEv{{5, Ingress, 520, far4}})
	}
	// FCS bits in the upper half of the link type field are ignored.
	path := writeTemp(t, "fcs.pcap", pcapFile(binary.LittleEndian, true, 1|0x14000000, []rec{{ts: 5, data: eth(etherIPv4, in)}}))
	if _, err := runFile(t, path, c); err != nil {
		t.Errorf("FCS flags: %v", err)
	}
}

func TestPcapng(t *testing.T) {
	c := testClassifier()
	for _, bo := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(bo.String(), func(t *testing.T) {
			v4out := eth(etherIPv4, ipv4(local4, far4, 100, v4opts{}))
			v6in := ipv6(far6, local6, 17, nil, 60)
			sllIn := sll(etherIPv4, ipv4(far4b, local4, 8, v4opts{}))
			var b []byte
			b = append(b, ngSHBBytes(bo)...)
			b = append(b, ngIDBBytes(bo, ngIDBSpec{link: 1, tsres: -1})...)                      // 0: µs, Ethernet
			b = append(b, ngIDBBytes(bo, ngIDBSpec{link: 101, tsres: 9, snap: 40})...)           // 1: ns, raw
			b = append(b, ngIDBBytes(bo, ngIDBSpec{link: 113, tsres: 0x80 | 10, tsoff: 100})...) // 2: 2^-10 s, SLL, +100 s
			b = append(b, ngIDBBytes(bo, ngIDBSpec{link: 1, tsres: 12})...)                      // 3: ps, Ethernet
			b = append(b, ngIDBBytes(bo, ngIDBSpec{link: 147, tsres: -1})...)                    // 4: unsupported, unused
			us := uint64(baseTS / 1000)
			b = append(b, ngEPBBytes(bo, 0, us, v4out, 0)...)
			b = append(b, ngEPBBytes(bo, 1, uint64(baseTS), v6in[:40], 100)...)
			// 1537 units of 2^-10 s = 1.5009765625 s. Picoseconds
			// cannot express today's date in 64 bits, hence the small
			// timestamp on interface 3.
			b = append(b, ngEPBBytes(bo, 2, 1537, sllIn, 0)...)
			b = append(b, ngEPBBytes(bo, 3, 123456789012345, v4out, 0)...)
			// Unknown block types (here an interface statistics block
			// and a custom block) are skipped.
			b = append(b, ngBlockBytes(bo, 5, make([]byte, 20))...)
			b = append(b, ngBlockBytes(bo, 0x40000bad, make([]byte, 3000))...)
			// A simple packet block: interface 0, previous timestamp.
			b = append(b, ngSPBBytes(bo, v4out, len(v4out))...)
			// A second section with its own byte order and interfaces.
			other := binary.AppendByteOrder(binary.BigEndian)
			if bo == binary.BigEndian {
				other = binary.LittleEndian
			}
			b = append(b, ngSHBBytes(other)...)
			b = append(b, ngIDBBytes(other, ngIDBSpec{link: 229, tsres: 9})...)
			b = append(b, ngEPBBytes(other, 0, 42, v6in, 0)...)

			path := writeTemp(t, "x.pcapng", b)
			got, err := runFile(t, path, c)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, got, []wantEv{
				{baseTS / 1000 * 1000, Egress, 120, far4},
				{baseTS, Ingress, 100, far6},
				{100e9 + 1500976562, Ingress, 28, far4b},
				{123456789012, Egress, 120, far4},
				{123456789012, Egress, 120, far4},
				{42, Ingress, 100, far6},
			})
		})
	}
}

func TestPcapngUnsupportedInterfaceUsed(t *testing.T) {
	bo := binary.LittleEndian
	b := cat(ngSHBBytes(bo),
		ngIDBBytes(bo, ngIDBSpec{link: 1, tsres: -1}),
		ngIDBBytes(bo, ngIDBSpec{link: 147, tsres: -1}),
		ngEPBBytes(bo, 0, 1, arp(), 0),
		ngEPBBytes(bo, 1, 2, arp(), 0))
	path := writeTemp(t, "odd.pcapng", b)
	got, err := runFile(t, path, testClassifier())
	if err == nil || !strings.Contains(err.Error(), "odd.pcapng: interface 1: unsupported link type 147") {
		t.Errorf("err = %v", err)
	}
	if len(got) != 1 {
		t.Errorf("%d events before the error, want 1", len(got))
	}
}

func TestOpenFileErrors(t *testing.T) {
	le := binary.LittleEndian
	hugeRec := pcapFile(le, false, 1, nil)
	hugeRec = le.AppendUint32(hugeRec, 1)
	hugeRec = le.AppendUint32(hugeRec, 0)
	hugeRec = le.AppendUint32(hugeRec, 0xffffffff)
	hugeRec = le.AppendUint32(hugeRec, 0xffffffff)
	hugeRec = append(hugeRec, make([]byte, 100)...)

	hugeBlock := cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 1, tsres: -1}))
	hugeBlock = le.AppendUint32(hugeBlock, ngEPB)
	hugeBlock = le.AppendUint32(hugeBlock, 0xfffffff0)
	hugeBlock = append(hugeBlock, make([]byte, 100)...)

	epbCap := cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 1, tsres: -1}))
	epb := ngEPBBytes(le, 0, 1, arp(), 0)
	binary.LittleEndian.PutUint32(epb[20:], 5000) // caplen beyond the block
	epbCap = append(epbCap, epb...)

	badIfc := cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 1, tsres: -1}), ngEPBBytes(le, 3, 1, arp(), 0))

	cases := []struct {
		name    string
		data    []byte
		openErr string // error from OpenFile, else from Run
		runErr  string
		is      error
	}{
		{"x.bin", []byte("this is not a capture file at all"), "x.bin: not a pcap or pcapng file", "", nil},
		{"empty.pcap", nil, "empty.pcap: not a pcap or pcapng file", "", nil},
		{"short.pcap", []byte{0xd4, 0xc3}, "short.pcap: not a pcap or pcapng file", "", nil},
		{"hdr.pcap", pcapFile(le, false, 1, nil)[:20], "hdr.pcap: pcap header: file ends mid-record", "", ErrTruncated},
		{"dlt.pcap", pcapFile(le, false, 147, nil), "dlt.pcap: unsupported link type 147", "", nil},
		{"ver.pcap", withByte(pcapFile(le, false, 1, nil), 4, 3), "ver.pcap: unsupported pcap version 3.4", "", nil},
		{"dlt.pcapng", cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 147, tsres: -1})), "dlt.pcapng: unsupported link type 147", "", nil},
		{"bom.pcapng", withByte(ngSHBBytes(le), 8, 0), "bom.pcapng: section header at offset 0: bad byte-order magic", "", ErrMalformedFile},
		{"huge.pcap", hugeRec, "", "huge.pcap: record at offset 24: capture length 4294967295 exceeds 262144 bytes", ErrMalformedFile},
		{"huge.pcapng", hugeBlock, "", "exceeds", ErrMalformedFile},
		{"epbcap.pcapng", epbCap, "", "capture length 5000 exceeds block", ErrMalformedFile},
		{"ifc.pcapng", badIfc, "", "interface 3 not described", ErrMalformedFile},
		{"tsres.pcapng", cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 1, tsres: 40})), "timestamp resolution 10^-40", "", ErrMalformedFile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, tc.name, tc.data)
			f, err := OpenFile(path)
			if tc.openErr != "" {
				if err == nil {
					f.Close()
					t.Fatalf("OpenFile succeeded, want %q", tc.openErr)
				}
				checkErr(t, err, path, tc.openErr, tc.is)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			_, err = runFile(t, path, testClassifier())
			checkErr(t, err, path, tc.runErr, tc.is)
		})
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing.pcap")); err == nil || !strings.Contains(err.Error(), "missing.pcap: no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func checkErr(t *testing.T, err error, path, want string, is error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	msg := strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", "")
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not contain %q", msg, want)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %q is not %v", err, is)
	}
}

func TestTruncated(t *testing.T) {
	c := testClassifier()
	var recs []rec
	var want []wantEv
	for i := range 1200 { // more than two batches
		recs = append(recs, rec{ts: int64(i) * 1000, data: eth(etherIPv4, ipv4(local4, far4, i%1000, v4opts{}))})
		want = append(want, wantEv{int64(i) * 1000, Egress, uint32(20 + i%1000), far4})
	}
	full := pcapFile(binary.LittleEndian, false, 1, recs)
	last := 14 + 20 + 1199%1000
	for _, cut := range []int{1, 15, 16 + last - 1} { // in the data, after the header, one byte short
		t.Run("pcap", func(t *testing.T) {
			path := writeTemp(t, "cut.pcap", full[:len(full)-cut])
			got, err := runFile(t, path, c)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("err = %v, want ErrTruncated", err)
			}
			checkEvents(t, got, want[:1199])
		})
	}

	le := binary.LittleEndian
	ng := cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 1, tsres: 9}))
	for _, r := range recs[:600] {
		ng = append(ng, ngEPBBytes(le, 0, uint64(r.ts), r.data, 0)...)
	}
	for _, cut := range []int{1, 4, 30} {
		path := writeTemp(t, "cut.pcapng", ng[:len(ng)-cut])
		got, err := runFile(t, path, c)
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "cut.pcapng: record at offset") {
			t.Fatalf("err = %v, want ErrTruncated", err)
		}
		checkEvents(t, got, want[:599])
	}
}

func TestFileCancel(t *testing.T) {
	var recs []rec
	for i := range 5000 {
		recs = append(recs, rec{ts: int64(i), data: arp()})
	}
	path := writeTemp(t, "x.pcap", pcapFile(binary.LittleEndian, true, 1, recs))
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := NewPipe(1) // nobody reads: Run must still return
	if err := f.Run(ctx, testClassifier(), p); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// benchFile writes a pcap of n frames cut to a 96-byte snap length, a mix
// of IPv4 egress/ingress, VLAN IPv6 and ARP, as a capture would hold.
func benchFile(b *testing.B, n int) string {
	b.Helper()
	mix := [][]byte{
		eth(etherIPv4, ipv4(local4, far4, 1400, v4opts{})),
		eth(etherIPv4, ipv4(far4b, local4, 40, v4opts{})),
		eth(etherIPv6, ipv6(far6, local6, 6, nil, 1200), ether8021Q, 5),
		arp(),
	}
	var recs []rec
	for i := range n {
		d := mix[i%len(mix)]
		recs = append(recs, rec{ts: baseTS + int64(i)*1000, data: d[:min(len(d), 96)], orig: len(d)})
	}
	return writeTemp(b, "bench.pcap", pcapFile(binary.LittleEndian, true, 1, recs))
}

func BenchmarkFileRun(b *testing.B) {
	const n = 1_000_000
	path := benchFile(b, n)
	c := testClassifier()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := runCount(b, path, c)
		if err != nil || got != n {
			b.Fatalf("%d frames, %v", got, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// runCount is runFile without keeping the events.
func runCount(b *testing.B, path string, c *Classifier) (int, error) {
	f, err := OpenFile(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	p := NewPipe(8)
	done := make(chan int)
	go func() {
		n := 0
		for batch := range p.Full {
			n += len(batch)
			p.Put(batch)
		}
		done <- n
	}()
	err = f.Run(context.Background(), c, p)
	close(p.Full)
	return <-done, err
}

// TestHostileLengthsBounded feeds records and blocks claiming gigabytes: the
// reader must fail (or skip) without allocating anywhere near that.
func TestHostileLengthsBounded(t *testing.T) {
	le := binary.LittleEndian
	pcapHuge := pcapFile(le, false, 1, nil)
	for _, v := range []uint32{1, 0, 0xffffffff, 0xffffffff} {
		pcapHuge = le.AppendUint32(pcapHuge, v)
	}
	pcapHuge = append(pcapHuge, make([]byte, 1000)...)
	ngHead := cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 1, tsres: -1}))
	ngHuge := le.AppendUint32(le.AppendUint32(append([]byte(nil), ngHead...), ngEPB), 0xfffffffc)
	ngHuge = append(ngHuge, make([]byte, 1000)...)
	ngSkip := le.AppendUint32(le.AppendUint32(append([]byte(nil), ngHead...), 0x0bad), 0xfffffffc)
	ngSkip = append(ngSkip, make([]byte, 1000)...)
	for name, data := range map[string][]byte{"pcap": pcapHuge, "pcapng-epb": ngHuge, "pcapng-unknown": ngSkip} {
		path := writeTemp(t, name, data)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := runFile(t, path, testClassifier())
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		// The 1 MiB read buffer plus a pipe of batches is expected.
		if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
			t.Errorf("%s: allocated %d bytes", name, n)
		}
	}
}

// ngEPBFlags is ngEPBBytes with an epb_flags option (and a comment before
// it, so the option walk is exercised) instead of the comment alone.
func ngEPBFlags(bo binary.AppendByteOrder, data []byte, orig int, flags uint32) []byte {
	body := bo.AppendUint32(nil, 0)
	body = bo.AppendUint32(body, 0)
	body = bo.AppendUint32(body, 1)
	body = bo.AppendUint32(body, uint32(len(data)))
	body = bo.AppendUint32(body, uint32(orig))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	body = append(body, ngOption(bo, 1, []byte("c"))...)
	body = append(body, ngOption(bo, 2, bo.AppendUint32(nil, flags))...)
	body = append(body, 0, 0, 0, 0)
	return ngBlockBytes(bo, ngEPB, body)
}

// The wire length of a file is its record's original length, and pcapng's
// epb_flags give the direction: forged lengths are oversize, received frames
// with a local source spoofed, in every record kind and byte order.
func TestFileWireLengthAndDirection(t *testing.T) {
	c := testClassifier()
	out := eth(etherIPv4, ipv4(local4, far4, 100, v4opts{})) // 134 bytes, IP 120
	in := eth(etherIPv4, ipv4(far4, local4, 100, v4opts{}))
	t.Run("pcap", func(t *testing.T) {
		path := writeTemp(t, "x.pcap", pcapFile(binary.LittleEndian, true, 1, []rec{
			{ts: 1, data: in[:60], orig: 134},       // snapped: fits its original length
			{ts: 2, data: in[:60], orig: 133},       // one byte short of its IP length
			{ts: 3, data: cat(in, make([]byte, 4))}, // FCS or padding after the IP packet
			{ts: 4, data: out},                      // no direction in pcap: addresses decide
			{ts: 5, data: in[:60], orig: 60},        // the wire carried only 60 bytes
		}))
		got, err := runFile(t, path, c)
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEv{
			{1, Ingress, 120, far4}, {2, SkipOversize, 0, ""}, {3, Ingress, 120, far4},
			{4, Egress, 120, far4}, {5, SkipOversize, 0, ""},
		})
	})
	for _, bo := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(fmt.Sprintf("pcapng %v", bo), func(t *testing.T) {
			path := writeTemp(t, "x.pcapng", cat(ngSHBBytes(bo),
				ngIDBBytes(bo, ngIDBSpec{link: 1, tsres: 9}),
				ngEPBFlags(bo, out, 134, 2),      // outbound
				ngEPBFlags(bo, out, 134, 1),      // inbound with a local source
				ngEPBFlags(bo, out, 134, 0|1<<5), // direction unknown (FCS length bits only)
				ngEPBFlags(bo, in[:50], 100, 1),  // inbound, IP length over the wire
				ngEPBBytes(bo, 0, 5, out, 0),     // no flags
				ngSPBBytes(bo, in, 134),          // simple block: its own original length
				ngSPBBytes(bo, in[:42], 42),      // a simple block that was cut short on the wire
			))
			got, err := runFile(t, path, c)
			if err != nil {
				t.Fatal(err)
			}
			kinds := []Kind{}
			for _, e := range got {
				kinds = append(kinds, e.Kind)
			}
			want := []Kind{Egress, SkipSpoofed, Egress, SkipOversize, Egress, Ingress, SkipOversize}
			if fmt.Sprint(kinds) != fmt.Sprint(want) {
				t.Errorf("kinds %v, want %v", kinds, want)
			}
		})
	}
}

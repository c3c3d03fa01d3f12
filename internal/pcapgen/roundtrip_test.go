package pcapgen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var (
	testLocal = []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")}
	testStart = time.Date(2025, 3, 1, 11, 58, 0, 0, time.UTC)
	allLinks  = []uint16{LinkEthernet, LinkRaw, LinkLinuxSLL, LinkLinuxSLL2}
)

type record struct {
	ci   gopacket.CaptureInfo
	data []byte
	link layers.LinkType
}

// readBack reads a capture with gopacket's pcapgo, which shares no code with
// the writer's frame construction.
func readBack(t *testing.T, path string, format Format) []record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var out []record
	if format == PcapNG {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		for {
			data, ci, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			intf, err := r.Interface(ci.InterfaceIndex)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, record{ci, data, intf.LinkType})
		}
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	wantRes := time.Microsecond
	if format == PcapNano {
		wantRes = time.Nanosecond
	}
	if got := r.Resolution().ToDuration(); got != wantRes {
		t.Fatalf("file resolution %v, want %v", got, wantRes)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, record{ci, data, r.LinkType()})
	}
}

// expectFrameLen is the original frame length, derived from the description
// rather than from the builder.
func expectFrameLen(p Packet, link uint16) int {
	lh := linkHeaderLen(link, len(p.VLANs))
	n := lh + p.IPLen()
	switch p.Shape {
	case ARP:
		n = lh + 28
	case ShortIP:
		// Not padded: padding would put bytes where the IP header should be.
		return lh + shortIPBytes
	}
	if link == LinkEthernet && n < 60 {
		n = 60
	}
	return n
}

func floorTS(t time.Time, res time.Duration) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, ns-ns%int64(res))
}

// checkRecord verifies one read-back record against its description.
func checkRecord(t *testing.T, i int, p Packet, rec record, res time.Duration) {
	t.Helper()
	link := uint16(rec.link)
	if want := floorTS(p.TS, res); !rec.ci.Timestamp.Equal(want) {
		t.Fatalf("pkt %d: ts %v, want %v (from %v)", i, rec.ci.Timestamp.UnixNano(), want.UnixNano(), p.TS.UnixNano())
	}
	orig := expectFrameLen(p, link)
	capl := orig
	if p.Snap > 0 && p.Snap < orig {
		capl = p.Snap
	}
	if rec.ci.Length != orig || rec.ci.CaptureLength != capl || len(rec.data) != capl {
		t.Fatalf("pkt %d (%+v): orig/cap %d/%d, want %d/%d", i, p, rec.ci.Length, rec.ci.CaptureLength, orig, capl)
	}
	lh := linkHeaderLen(link, len(p.VLANs))
	d := rec.data

	// Link layer, decoded by gopacket.
	pk := gopacket.NewPacket(d, rec.link, gopacket.Default)
	wantType := layers.EthernetTypeIPv4
	switch {
	case p.Shape == ARP:
		wantType = layers.EthernetTypeARP
	case p.is6():
		wantType = layers.EthernetTypeIPv6
	}
	switch link {
	case LinkEthernet:
		eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		var tags []*layers.Dot1Q
		for _, l := range pk.Layers() {
			if q, ok := l.(*layers.Dot1Q); ok {
				tags = append(tags, q)
			}
		}
		if p.Shape != ShortIP && len(tags) != len(p.VLANs) {
			t.Fatalf("pkt %d: %d VLAN tags decoded, want %d", i, len(tags), len(p.VLANs))
		}
		next := eth.EthernetType
		switch len(p.VLANs) {
		case 1:
			if eth.EthernetType != layers.EthernetTypeDot1Q {
				t.Fatalf("pkt %d: ethertype %v for one tag", i, eth.EthernetType)
			}
			next = layers.EthernetType(binary.BigEndian.Uint16(d[16:]))
		case 2:
			if eth.EthernetType != layers.EthernetTypeQinQ || binary.BigEndian.Uint16(d[16:]) != 0x8100 {
				t.Fatalf("pkt %d: QinQ tag types %v/%#x", i, eth.EthernetType, binary.BigEndian.Uint16(d[16:]))
			}
			next = layers.EthernetType(binary.BigEndian.Uint16(d[20:]))
		}
		for j, q := range tags {
			if q.VLANIdentifier != p.VLANs[j] {
				t.Fatalf("pkt %d: VLAN %d = %d, want %d", i, j, q.VLANIdentifier, p.VLANs[j])
			}
		}
		if next != wantType {
			t.Fatalf("pkt %d: inner ethertype %v, want %v", i, next, wantType)
		}
	case LinkLinuxSLL:
		sll := pk.Layer(layers.LayerTypeLinuxSLL).(*layers.LinuxSLL)
		wantPT := layers.LinuxSLLPacketTypeHost
		if p.Outgoing {
			wantPT = layers.LinuxSLLPacketTypeOutgoing
		}
		if sll.PacketType != wantPT || sll.EthernetType != wantType || sll.AddrType != 1 || sll.AddrLen != 6 {
			t.Fatalf("pkt %d: SLL %+v", i, sll)
		}
	case LinkLinuxSLL2:
		sll := pk.Layer(layers.LayerTypeLinuxSLL2).(*layers.LinuxSLL2)
		wantPT := layers.LinuxSLL2PacketTypeHost
		if p.Outgoing {
			wantPT = layers.LinuxSLL2PacketTypeOutgoing
		}
		if sll.PacketType != wantPT || sll.ProtocolType != wantType || sll.ARPHardwareType != 1 || sll.AddrLength != 6 {
			t.Fatalf("pkt %d: SLL2 %+v", i, sll)
		}
	}

	switch p.Shape {
	case ARP:
		if link == LinkRaw {
			t.Fatalf("pkt %d: ARP on raw link", i)
		}
		if pk.Layer(layers.LayerTypeARP) == nil {
			t.Fatalf("pkt %d: no ARP layer", i)
		}
		return
	case ShortIP:
		if got := len(d) - lh; got >= 20 {
			t.Fatalf("pkt %d: ShortIP kept %d IP bytes", i, got)
		}
		return
	case BadVersion:
		if d[lh]>>4 != 7 {
			t.Fatalf("pkt %d: version nibble %d", i, d[lh]>>4)
		}
		return
	}

	// IP length fields, read straight from the bytes: independent of both
	// the builder and gopacket's decoder.
	var ipLen int
	if p.is6() {
		ipLen = 40 + int(binary.BigEndian.Uint16(d[lh+4:]))
	} else {
		ipLen = int(binary.BigEndian.Uint16(d[lh+2:]))
		ihl := int(d[lh] & 0x0f)
		wantIHL := 5
		if p.IPv4Options {
			wantIHL = 7
		}
		if ihl != wantIHL {
			t.Fatalf("pkt %d: IHL %d, want %d", i, ihl, wantIHL)
		}
		ff := binary.BigEndian.Uint16(d[lh+6:])
		if p.Fragment != (ff&0x1fff != 0) {
			t.Fatalf("pkt %d: fragment offset %d, Fragment=%v", i, ff&0x1fff, p.Fragment)
		}
	}
	if ipLen != p.IPLen() {
		t.Fatalf("pkt %d (%+v): IP length field %d, IPLen %d", i, p, ipLen, p.IPLen())
	}

	var src, dst netip.Addr
	if ip4, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		src, _ = netip.AddrFromSlice(ip4.SrcIP)
		dst, _ = netip.AddrFromSlice(ip4.DstIP)
		if capl == orig {
			if err, res := ip4.VerifyChecksum(); err != nil || !res.Valid {
				t.Fatalf("pkt %d: IPv4 checksum %v %+v", i, err, res)
			}
		}
	} else if ip6, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		src, _ = netip.AddrFromSlice(ip6.SrcIP)
		dst, _ = netip.AddrFromSlice(ip6.DstIP)
		if p.IPv6ExtHdrs && pk.Layer(layers.LayerTypeIPv6HopByHop) == nil && capl == orig {
			t.Fatalf("pkt %d: no hop-by-hop header decoded", i)
		}
		if p.Fragment && capl == orig && pk.Layer(layers.LayerTypeIPv6Fragment) == nil {
			t.Fatalf("pkt %d: no fragment header decoded", i)
		}
	} else {
		t.Fatalf("pkt %d: no IP layer decoded: %v", i, pk)
	}
	if src != p.Src.Unmap() || dst != p.Dst.Unmap() {
		t.Fatalf("pkt %d: addresses %v -> %v, want %v -> %v", i, src, dst, p.Src, p.Dst)
	}
	if capl == orig && !p.Fragment {
		verifyTransport(t, i, p, pk)
	}
}

func verifyTransport(t *testing.T, i int, p Packet, pk gopacket.Packet) {
	t.Helper()
	type verifier interface {
		VerifyChecksum() (error, gopacket.ChecksumVerificationResult)
	}
	var l gopacket.Layer
	switch {
	case p.Proto == 6:
		l = pk.Layer(layers.LayerTypeTCP)
	case p.Proto == 17:
		l = pk.Layer(layers.LayerTypeUDP)
	case p.Proto == 1 && !p.is6():
		l = pk.Layer(layers.LayerTypeICMPv4)
	case p.Proto == 58 && p.is6():
		l = pk.Layer(layers.LayerTypeICMPv6)
	default:
		return
	}
	if l == nil {
		t.Fatalf("pkt %d: transport %d not decoded: %v", i, p.Proto, pk)
	}
	if tl, ok := l.(interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}); ok {
		if err := tl.SetNetworkLayerForChecksum(pk.NetworkLayer()); err != nil {
			t.Fatal(err)
		}
	}
	if err, res := l.(verifier).VerifyChecksum(); err != nil || !res.Valid {
		t.Fatalf("pkt %d: %v checksum %v %+v", i, l.LayerType(), err, res)
	}
	if got := transportPayload(l); got != p.Payload {
		t.Fatalf("pkt %d: payload %d bytes, want %d", i, got, p.Payload)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	const n = 3000
	for _, format := range []Format{PcapMicro, PcapNano, PcapNG} {
		for _, link := range allLinks {
			t.Run(fmt.Sprintf("%v/%d", format, link), func(t *testing.T) {
				pkts := Mixed(int64(link)*7+int64(format), n, 300, testLocal, testStart, 10*time.Minute, link)
				path := filepath.Join(dir, fmt.Sprintf("%v-%d.pcap", format, link))
				if err := Write(path, format, link, pkts); err != nil {
					t.Fatal(err)
				}
				recs := readBack(t, path, format)
				if len(recs) != n {
					t.Fatalf("%d records, want %d", len(recs), n)
				}
				res := time.Nanosecond
				if format == PcapMicro {
					res = time.Microsecond
				}
				for i, rec := range recs {
					if rec.link != layers.LinkType(link) {
						t.Fatalf("link %v, want %d", rec.link, link)
					}
					checkRecord(t, i, pkts[i], rec, res)
				}
			})
		}
	}
}

// TestEveryCombination serializes every combination of family, protocol and
// hazard flag on every link, so IPLen and the checksums are checked where a
// seeded scenario might not reach.
func TestEveryCombination(t *testing.T) {
	var pkts []Packet
	ts := testStart
	addrs := [][2]netip.Addr{
		{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.9")},
		{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::9")},
		{netip.MustParseAddr("::ffff:198.51.100.1"), netip.MustParseAddr("::ffff:192.0.2.7")},
	}
	for _, a := range addrs {
		for _, proto := range []uint8{6, 17, 1, 58, 47} {
			for _, payload := range []int{0, 1, 3, 1400, 9000} {
				for flags := 0; flags < 16; flags++ {
					ts = ts.Add(1234567 * time.Nanosecond)
					p := Packet{TS: ts, Src: a[0], Dst: a[1], Proto: proto, SrcPort: 40000, DstPort: 443, Payload: payload,
						IPv4Options: flags&1 != 0, IPv6ExtHdrs: flags&1 != 0, Fragment: flags&2 != 0, Outgoing: flags&4 != 0}
					if flags&8 != 0 {
						p.Snap = 64
					}
					pkts = append(pkts, p)
				}
			}
		}
		for _, shape := range []Shape{BadVersion, ShortIP} {
			ts = ts.Add(time.Millisecond)
			pkts = append(pkts, Packet{TS: ts, Src: a[0], Dst: a[1], Proto: 17, Payload: 100, Shape: shape})
		}
	}
	ts = ts.Add(time.Millisecond)
	pkts = append(pkts, Packet{TS: ts, Src: addrs[0][0], Dst: addrs[0][1], Shape: ARP})
	dir := t.TempDir()
	for _, link := range allLinks {
		ps := pkts
		if link == LinkRaw {
			ps = ps[:len(ps)-1]
		}
		var withVLAN []Packet
		for _, p := range ps {
			withVLAN = append(withVLAN, p)
			if link == LinkEthernet {
				p.VLANs = []uint16{7}
				withVLAN = append(withVLAN, p)
				p.VLANs = []uint16{300, 7}
				withVLAN = append(withVLAN, p)
			}
		}
		path := filepath.Join(dir, fmt.Sprint(link))
		if err := Write(path, PcapNano, link, withVLAN); err != nil {
			t.Fatal(err)
		}
		recs := readBack(t, path, PcapNano)
		if len(recs) != len(withVLAN) {
			t.Fatalf("%d records, want %d", len(recs), len(withVLAN))
		}
		for i, rec := range recs {
			checkRecord(t, i, withVLAN[i], rec, time.Nanosecond)
		}
	}
}

func TestWriteRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	v4 := netip.MustParseAddr("198.51.100.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	for name, c := range map[string]struct {
		link uint16
		p    Packet
	}{
		"vlan on raw":    {LinkRaw, Packet{Src: v4, Dst: v4, Proto: 17, VLANs: []uint16{1}}},
		"vlan on sll":    {LinkLinuxSLL, Packet{Src: v4, Dst: v4, Proto: 17, VLANs: []uint16{1}}},
		"three tags":     {LinkEthernet, Packet{Src: v4, Dst: v4, Proto: 17, VLANs: []uint16{1, 2, 3}}},
		"arp on raw":     {LinkRaw, Packet{Shape: ARP}},
		"mixed families": {LinkRaw, Packet{Src: v4, Dst: v6, Proto: 17}},
		"no addresses":   {LinkRaw, Packet{Proto: 17}},
		"link 228":       {228, Packet{Src: v4, Dst: v4, Proto: 17}},
		"too big":        {LinkRaw, Packet{Src: v4, Dst: v4, Proto: 17, Payload: 70000}},
	} {
		if err := Write(path, PcapMicro, c.link, []Packet{c.p}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestWriteNG(t *testing.T) {
	pkts := Mixed(3, 500, 50, testLocal, testStart, time.Minute, LinkRaw)
	ifaces := make([]int, len(pkts))
	for i := range pkts {
		ifaces[i] = i % 3 % 2 // uneven interleave: 0,1,0,0,1,0...
		if i%5 == 0 && ifaces[i] == 0 {
			pkts[i].VLANs = vlanQinQ[0] // Ethernet-only feature on interface 0
		}
	}
	path := filepath.Join(t.TempDir(), "two.pcapng")
	if err := WriteNG(path, pkts, ifaces); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// pcapgo silently drops packets of a second link type unless told otherwise.
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, record{ci, data, 0})
	}
	if r.NInterfaces() != 2 {
		t.Fatalf("%d interfaces", r.NInterfaces())
	}
	wantIntf := []struct {
		link layers.LinkType
		res  time.Duration
	}{{layers.LinkTypeEthernet, time.Microsecond}, {layers.LinkTypeRaw, time.Nanosecond}}
	for id, w := range wantIntf {
		intf, err := r.Interface(id)
		if err != nil {
			t.Fatal(err)
		}
		if intf.LinkType != w.link || intf.Resolution().ToDuration() != w.res {
			t.Fatalf("interface %d: link %v res %v", id, intf.LinkType, intf.Resolution().ToDuration())
		}
	}
	if len(recs) != len(pkts) {
		t.Fatalf("%d records, want %d", len(recs), len(pkts))
	}
	sawSubMicro := false
	for i, rec := range recs {
		if rec.ci.InterfaceIndex != ifaces[i] {
			t.Fatalf("pkt %d on interface %d, want %d", i, rec.ci.InterfaceIndex, ifaces[i])
		}
		w := wantIntf[ifaces[i]]
		rec.link = w.link
		checkRecord(t, i, pkts[i], rec, w.res)
		if ifaces[i] == 1 && rec.ci.Timestamp.Nanosecond()%1000 != 0 {
			sawSubMicro = true
		}
	}
	if !sawSubMicro {
		t.Fatal("no nanosecond digits survived on the ns interface")
	}
	if err := WriteNG(path, pkts[:1], []int{2}); err == nil {
		t.Fatal("interface 2 accepted")
	}
}

// transportPayload is the payload length after the transport header.
// ICMPv6 echo's id/seq is a separate gopacket layer, part of our header.
func transportPayload(l gopacket.Layer) int {
	n := len(l.LayerPayload())
	if l.LayerType() == layers.LayerTypeICMPv6 {
		n -= 4
	}
	return n
}

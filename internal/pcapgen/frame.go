package pcapgen

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// builder turns Packets into frame bytes. It keeps every layer struct and the
// serialize buffer between calls because the benchmark writes millions of
// frames and per-frame allocation would dominate the run time.
type builder struct {
	buf  gopacket.SerializeBuffer
	opts gopacket.SerializeOptions
	ls   []gopacket.SerializableLayer

	eth   layers.Ethernet
	vlan  [2]layers.Dot1Q
	arp   layers.ARP
	ip4   layers.IPv4
	ip6   layers.IPv6
	udp   layers.UDP
	tcp   layers.TCP
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6
	echo6 layers.ICMPv6Echo

	src, dst       [16]byte
	ext            [ipv6ExtLen + ipv6FragLen]byte
	payload        []byte
	srcMAC, dstMAC [6]byte
	arpSrc, arpDst [4]byte
	seq            uint32
}

func newBuilder() *builder {
	b := &builder{
		buf:  gopacket.NewSerializeBufferExpectedSize(64, 2048),
		opts: gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ls:   make([]gopacket.SerializableLayer, 0, 8),
	}
	b.ip4.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	return b
}

// payloadBytes returns n bytes of a fixed, non-zero pattern, so a decoder
// that mistakes payload for headers sees garbage rather than plausible zeros.
func (b *builder) payloadBytes(n int) []byte {
	if n > len(b.payload) {
		b.payload = make([]byte, n+1024)
		for i := range b.payload {
			b.payload[i] = byte(i*7 + 0x5a)
		}
	}
	return b.payload[:n]
}

func linkHeaderLen(link uint16, vlans int) int {
	switch link {
	case LinkEthernet:
		return 14 + 4*vlans
	case LinkLinuxSLL:
		return 16
	case LinkLinuxSLL2:
		return 20
	}
	return 0
}

// frame serializes p for the given link type. It returns the captured bytes
// (valid until the next call) and the original frame length.
func (b *builder) frame(p *Packet, link uint16) ([]byte, int, error) {
	switch link {
	case LinkEthernet, LinkRaw, LinkLinuxSLL, LinkLinuxSLL2:
	default:
		return nil, 0, fmt.Errorf("pcapgen: unsupported link type %d", link)
	}
	if len(p.VLANs) > 2 {
		return nil, 0, fmt.Errorf("pcapgen: %d VLAN tags, at most 2 supported", len(p.VLANs))
	}
	if len(p.VLANs) > 0 && link != LinkEthernet {
		return nil, 0, fmt.Errorf("pcapgen: VLAN tags need Ethernet, link is %d", link)
	}
	if p.Shape == ARP && link == LinkRaw {
		return nil, 0, fmt.Errorf("pcapgen: ARP cannot be carried on raw IP link")
	}
	if p.Shape < Normal || p.Shape > ForgedLen {
		return nil, 0, fmt.Errorf("pcapgen: unknown shape %d", p.Shape)
	}

	var etype layers.EthernetType
	b.ls = b.ls[:0]
	if link == LinkEthernet {
		b.ls = append(b.ls, &b.eth)
	}
	v6 := p.is6()
	if p.Shape == ARP {
		etype = layers.EthernetTypeARP
		b.addVLANs(p, etype)
		b.addARP(p)
	} else {
		if p.Src.Is6() != p.Dst.Is6() || p.Src.Is4In6() != p.Dst.Is4In6() || !p.Src.IsValid() || !p.Dst.IsValid() {
			return nil, 0, fmt.Errorf("pcapgen: Src %v and Dst %v are not two addresses of one family", p.Src, p.Dst)
		}
		etype = layers.EthernetTypeIPv4
		if v6 {
			etype = layers.EthernetTypeIPv6
		}
		b.addVLANs(p, etype)
		if err := b.addIP(p, v6); err != nil {
			return nil, 0, err
		}
	}
	if link == LinkEthernet {
		b.macs(p)
	}
	if err := gopacket.SerializeLayers(b.buf, b.opts, b.ls...); err != nil {
		return nil, 0, fmt.Errorf("pcapgen: serialize: %w", err)
	}
	if err := b.cookedHeader(p, link, etype); err != nil {
		return nil, 0, err
	}
	data := b.buf.Bytes()
	lh := linkHeaderLen(link, len(p.VLANs))

	if p.Shape == BadVersion {
		data[lh] = 7<<4 | data[lh]&0x0f
	}
	if p.Shape == ForgedLen {
		// Checksums stay as computed for the real length: a forged
		// header is not a careful one, and dstwatch checks none.
		if v6 {
			binary.BigEndian.PutUint16(data[lh+4:], 0xffff)
		} else {
			binary.BigEndian.PutUint16(data[lh+2:], 0xffff)
		}
	}
	if p.Shape == Normal || p.Shape == ForgedLen {
		// Guards IPLen against drifting from the serializer: Truth depends
		// on it. Ethernet pads frames to its 60-byte minimum.
		want := lh + p.IPLen()
		if link == LinkEthernet && want < 60 {
			want = 60
		}
		if len(data) != want {
			return nil, 0, fmt.Errorf("pcapgen: internal: frame length %d, want %d from IPLen %d", len(data), want, p.IPLen())
		}
	}
	if p.Shape == ShortIP {
		// The frame itself ends inside the IP header (orig == captured), so
		// no reader can recover the IP length: it is malformed, not snapped. No
		// Ethernet padding either: zeros would pass for the rest of a header.
		data = data[:lh+shortIPBytes]
	}
	orig := len(data)
	if p.Snap > 0 && p.Snap < len(data) {
		data = data[:p.Snap]
	}
	return data, orig, nil
}

func (b *builder) macs(p *Packet) {
	// Locally administered MACs; the "host" MAC sits on the outgoing side so
	// the Ethernet header agrees with the SLL packet type.
	host := [6]byte{0x02, 0, 0x5e, 0, 0, 0x01}
	peer := [6]byte{0x02, 0, 0x5e, 0, 0, 0xfe}
	if p.Outgoing {
		b.srcMAC, b.dstMAC = host, peer
	} else {
		b.srcMAC, b.dstMAC = peer, host
	}
	if p.Shape == ARP && !p.Outgoing {
		b.dstMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	b.eth.SrcMAC = b.srcMAC[:]
	b.eth.DstMAC = b.dstMAC[:]
}

func (b *builder) addVLANs(p *Packet, inner layers.EthernetType) {
	switch len(p.VLANs) {
	case 0:
		b.eth.EthernetType = inner
	case 1:
		b.eth.EthernetType = layers.EthernetTypeDot1Q
		b.vlan[0] = layers.Dot1Q{VLANIdentifier: p.VLANs[0] & 0xfff, Type: inner}
		b.ls = append(b.ls, &b.vlan[0])
	case 2:
		b.eth.EthernetType = layers.EthernetTypeQinQ
		b.vlan[0] = layers.Dot1Q{VLANIdentifier: p.VLANs[0] & 0xfff, Type: layers.EthernetTypeDot1Q}
		b.vlan[1] = layers.Dot1Q{VLANIdentifier: p.VLANs[1] & 0xfff, Type: inner}
		b.ls = append(b.ls, &b.vlan[0], &b.vlan[1])
	}
}

func (b *builder) addARP(p *Packet) {
	// Sender/target protocol addresses come from Src/Dst when they are IPv4,
	// so a decoder that reads ARP as IP would see plausible addresses.
	b.arpSrc, b.arpDst = [4]byte{}, [4]byte{}
	if s := p.Src.Unmap(); s.Is4() {
		b.arpSrc = s.As4()
	}
	if d := p.Dst.Unmap(); d.Is4() {
		b.arpDst = d.As4()
	}
	b.arp = layers.ARP{
		AddrType:          layers.LinkTypeEthernet,
		Protocol:          layers.EthernetTypeIPv4,
		Operation:         layers.ARPRequest,
		SourceHwAddress:   b.srcMAC[:],
		SourceProtAddress: b.arpSrc[:],
		DstHwAddress:      b.dstMAC[:],
		DstProtAddress:    b.arpDst[:],
	}
	b.ls = append(b.ls, &b.arp)
}

func (b *builder) addIP(p *Packet, v6 bool) error {
	b.seq++
	var netLayer gopacket.NetworkLayer
	proto := layers.IPProtocol(p.Proto)
	if v6 {
		b.src, b.dst = p.Src.As16(), p.Dst.As16()
		b.ip6 = layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: b.src[:], DstIP: b.dst[:], FlowLabel: b.seq & 0xfffff}
		b.ls = append(b.ls, &b.ip6)
		netLayer = &b.ip6
		// Extension headers are built by hand: gopacket serializes
		// hop-by-hop only, and not destination options or fragments.
		ext := b.ext[:0]
		next := proto
		if p.Fragment {
			next = layers.IPProtocolIPv6Fragment
		}
		if p.IPv6ExtHdrs {
			// Hop-by-hop then destination options, each 8 bytes: next
			// header, length 0 (= 8 bytes), PadN option covering 6 bytes.
			b.ip6.NextHeader = layers.IPProtocolIPv6HopByHop
			ext = append(ext, byte(layers.IPProtocolIPv6Destination), 0, 1, 4, 0, 0, 0, 0)
			ext = append(ext, byte(next), 0, 1, 4, 0, 0, 0, 0)
		} else {
			b.ip6.NextHeader = next
		}
		if p.Fragment {
			// Offset 185 (x8 = 1480 bytes), M flag clear: a last fragment.
			ext = append(ext, byte(proto), 0, byte(fragOffset8<<3>>8), byte(fragOffset8<<3&0xf8), 0, 0, 0, 0)
			binary.BigEndian.PutUint32(ext[len(ext)-4:], b.seq)
		}
		if len(ext) > 0 {
			b.ls = append(b.ls, gopacket.Payload(ext))
		}
	} else {
		s4, d4 := p.Src.Unmap().As4(), p.Dst.Unmap().As4()
		copy(b.src[:4], s4[:])
		copy(b.dst[:4], d4[:])
		b.ip4.Version, b.ip4.TTL, b.ip4.Protocol, b.ip4.Id = 4, 64, proto, uint16(b.seq)
		b.ip4.SrcIP, b.ip4.DstIP = b.src[:4], b.dst[:4]
		b.ip4.Flags, b.ip4.FragOffset = layers.IPv4DontFragment, 0
		if p.Fragment {
			b.ip4.Flags, b.ip4.FragOffset = 0, fragOffset8
		}
		if p.IPv4Options {
			b.ip4.Options = b.ip4.Options[:8]
		} else {
			b.ip4.Options = b.ip4.Options[:0]
		}
		b.ls = append(b.ls, &b.ip4)
		netLayer = &b.ip4
	}

	if !p.Fragment {
		switch {
		case p.Proto == 17:
			b.udp = layers.UDP{SrcPort: layers.UDPPort(p.SrcPort), DstPort: layers.UDPPort(p.DstPort)}
			if err := b.udp.SetNetworkLayerForChecksum(netLayer); err != nil {
				return err
			}
			b.ls = append(b.ls, &b.udp)
		case p.Proto == 6:
			b.tcp = layers.TCP{SrcPort: layers.TCPPort(p.SrcPort), DstPort: layers.TCPPort(p.DstPort),
				Seq: b.seq * 1000, Ack: 1, ACK: true, PSH: p.Payload > 0, Window: 65535}
			if err := b.tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
				return err
			}
			b.ls = append(b.ls, &b.tcp)
		case p.Proto == 1 && !v6:
			b.icmp4 = layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: p.SrcPort, Seq: uint16(b.seq)}
			b.ls = append(b.ls, &b.icmp4)
		case p.Proto == 58 && v6:
			b.icmp6 = layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
			if err := b.icmp6.SetNetworkLayerForChecksum(netLayer); err != nil {
				return err
			}
			b.echo6 = layers.ICMPv6Echo{Identifier: p.SrcPort, SeqNumber: uint16(b.seq)}
			b.ls = append(b.ls, &b.icmp6, &b.echo6)
		}
	}
	if p.Payload < 0 || p.IPLen() > 65535+40 || (!v6 && p.IPLen() > 65535) {
		return fmt.Errorf("pcapgen: payload %d does not fit an IP packet", p.Payload)
	}
	if p.Payload > 0 {
		b.ls = append(b.ls, gopacket.Payload(b.payloadBytes(p.Payload)))
	}
	return nil
}

// cookedHeader prepends a Linux cooked header. gopacket can decode SLL and
// SLL2 but not serialize them, so they are written by hand.
func (b *builder) cookedHeader(p *Packet, link uint16, etype layers.EthernetType) error {
	var ptype byte // 0: LINUX_SLL_HOST, to us
	if p.Outgoing {
		ptype = 4 // LINUX_SLL_OUTGOING
	}
	mac := [8]byte{0x02, 0, 0x5e, 0, 0, 0x01}
	switch link {
	case LinkLinuxSLL:
		h, err := b.buf.PrependBytes(16)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint16(h[0:], uint16(ptype))
		binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:], 6)
		copy(h[6:14], mac[:])
		binary.BigEndian.PutUint16(h[14:], uint16(etype))
	case LinkLinuxSLL2:
		h, err := b.buf.PrependBytes(20)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint16(h[0:], uint16(etype))
		binary.BigEndian.PutUint16(h[2:], 0) // reserved
		binary.BigEndian.PutUint32(h[4:], 2) // ifindex
		binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
		h[10] = ptype
		h[11] = 6
		copy(h[12:20], mac[:])
	}
	return nil
}

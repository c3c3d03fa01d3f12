package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// maxFilterLen is the kernel's BPF_MAXINSNS.
const maxFilterLen = 4096

// errFilterTooLarge means the local address list does not fit in a classic BPF
// program; OpenLive then falls back to a filter that keeps all IP frames.
var errFilterTooLarge = errors.New("too many local addresses for an in-kernel filter")

// KernelFilter assembles a classic BPF program for a packet socket on a link
// of the given type. It accepts (returning snap, the number of bytes the
// kernel copies to the ring) every IPv4/IPv6 frame whose source or
// destination is one of local, and every VLAN-tagged frame, whose inner
// headers userspace decodes; it drops everything else (returning 0).
//
// The filter is a performance measure only: Classify decides the numbers,
// so a frame the filter lets through needlessly costs time, never accuracy.
// A frame too short to hold the addresses is dropped by the kernel (a BPF
// load past the end returns 0) where userspace would have counted it as
// malformed; such frames cannot be real traffic to or from a local address.
//
// Each address costs a fixed, short sequence ending in its own "return
// snap", so every conditional jump stays within the 8-bit jump range no
// matter how many addresses there are: IPv4 6 instructions, IPv6 18. The
// kernel's 4096-instruction limit thus allows about 220 IPv6 or 680 IPv4
// addresses; beyond that KernelFilter fails, and OpenLive falls back to a
// filter that keeps every IP frame.
func KernelFilter(link LinkType, local []netip.Addr, snap uint32) ([]bpf.RawInstruction, error) {
	return kernelFilter(link, local, snap, true)
}

func kernelFilter(link LinkType, local []netip.Addr, snap uint32, byAddr bool) ([]bpf.RawInstruction, error) {
	var v4, v6 []netip.Addr
	for _, a := range local {
		switch a = a.Unmap(); {
		case a.Is4():
			v4 = append(v4, a)
		case a.Is6():
			v6 = append(v6, a)
		}
	}
	accept := bpf.RetConstant{Val: snap}
	drop := bpf.RetConstant{Val: 0}

	// ipOff is where the IP header starts; protoOff where the 16-bit
	// ethertype is (-1: none, the version nibble decides).
	var ipOff, protoOff int
	switch link {
	case LinkEthernet:
		ipOff, protoOff = 14, 12
	case LinkLinuxSLL:
		ipOff, protoOff = 16, 14
	case LinkLinuxSLL2:
		ipOff, protoOff = 20, 0
	case LinkRaw, LinkIPv4, LinkIPv6:
		ipOff, protoOff = 0, -1
	default:
		return nil, fmt.Errorf("kernel filter: unsupported link type %d", link)
	}

	// The body: the IPv4 section, then the IPv6 section; each ends with
	// "drop". The prologue jumps to one or the other with unconditional
	// (32-bit offset) jumps.
	var sec4, sec6 []bpf.Instruction
	if byAddr {
		for _, a := range v4 {
			b := a.As4()
			w := binary.BigEndian.Uint32(b[:])
			for _, f := range []int{12, 16} { // source, destination
				sec4 = append(sec4,
					bpf.LoadAbsolute{Off: uint32(ipOff + f), Size: 4},
					bpf.JumpIf{Cond: bpf.JumpEqual, Val: w, SkipTrue: 0, SkipFalse: 1},
					accept,
				)
			}
		}
		for _, a := range v6 {
			b := a.As16()
			for _, f := range []int{8, 24} {
				for i := 0; i < 4; i++ {
					sec6 = append(sec6,
						bpf.LoadAbsolute{Off: uint32(ipOff + f + 4*i), Size: 4},
						// On mismatch skip the remaining words of this
						// address and its accept.
						bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(b[4*i:]), SkipFalse: uint8(2*(3-i) + 1)},
					)
				}
				sec6 = append(sec6, accept)
			}
		}
		sec4 = append(sec4, drop)
		sec6 = append(sec6, drop)
	} else {
		sec4 = []bpf.Instruction{accept}
		sec6 = []bpf.Instruction{accept}
	}

	var prog []bpf.Instruction
	switch link {
	case LinkIPv4:
		prog = sec4
	case LinkIPv6:
		prog = sec6
	case LinkRaw:
		// prologue: 6 instructions; version 4 jumps to sec4 right after
		// it, version 6 to the "ja" over sec4.
		prog = append(prog,
			bpf.LoadAbsolute{Off: 0, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 3},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 1},
			drop,
			bpf.Jump{Skip: uint32(len(sec4))},
		)
		prog = append(prog, sec4...)
		prog = append(prog, sec6...)
	default:
		// prologue: 9 instructions; IPv4 jumps to sec4 right after it,
		// IPv6 to the "ja" over sec4, VLAN to accept.
		prog = append(prog,
			bpf.LoadAbsolute{Off: uint32(protoOff), Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherIPv4, SkipTrue: 7},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherIPv6, SkipTrue: 5},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ether8021Q, SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: ether8021A, SkipTrue: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherQinQ, SkipFalse: 1},
			accept,
			drop,
			bpf.Jump{Skip: uint32(len(sec4))},
		)
		prog = append(prog, sec4...)
		prog = append(prog, sec6...)
	}
	if len(prog) > maxFilterLen {
		return nil, fmt.Errorf("kernel filter: %d instructions: %w", len(prog), errFilterTooLarge)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("kernel filter: %w", err)
	}
	return raw, nil
}

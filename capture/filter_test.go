package capture

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// TestKernelFilter runs the assembled program in x/net/bpf's interpreter
// over hand-built frames of every link type.
func TestKernelFilter(t *testing.T) {
	local := []netip.Addr{
		netip.MustParseAddr(local4), netip.MustParseAddr(local4b),
		netip.MustParseAddr(local6), netip.MustParseAddr("fe80::1"),
	}
	const snap = 96
	out4 := ipv4(local4, far4, 100, v4opts{})
	in4b := ipv4(far4, local4b, 100, v4opts{})
	transit4 := ipv4(far4, far4b, 100, v4opts{})
	out6 := ipv6(local6, far6, 17, nil, 100)
	inLL := ipv6(far6, "fe80::1", 17, nil, 100)
	// Same first three words as local6, last one differs: a partial match
	// must not be accepted.
	near6 := ipv6("2001:db8:1::2", "2001:db8:1::3", 17, nil, 100)
	transit6 := ipv6(far6, "2001:db8:9::9", 17, nil, 100)

	cases := []struct {
		name   string
		link   LinkType
		frame  []byte
		accept bool
	}{
		{"eth v4 egress", LinkEthernet, eth(etherIPv4, out4), true},
		{"eth v4 ingress second addr", LinkEthernet, eth(etherIPv4, in4b), true},
		{"eth v4 transit", LinkEthernet, eth(etherIPv4, transit4), false},
		{"eth v6 egress", LinkEthernet, eth(etherIPv6, out6), true},
		{"eth v6 ingress link-local", LinkEthernet, eth(etherIPv6, inLL), true},
		{"eth v6 near miss", LinkEthernet, eth(etherIPv6, near6), false},
		{"eth v6 transit", LinkEthernet, eth(etherIPv6, transit6), false},
		{"eth arp", LinkEthernet, arp(), false},
		{"eth vlan transit kept", LinkEthernet, eth(etherIPv4, transit4, ether8021Q, 1), true},
		{"eth 88a8 kept", LinkEthernet, eth(etherIPv4, transit4, ether8021A, 1, ether8021Q, 2), true},
		{"eth 9100 kept", LinkEthernet, eth(etherIPv4, transit4, etherQinQ, 1, ether8021Q, 2), true},
		{"eth short", LinkEthernet, eth(etherIPv4, out4)[:20], false},
		{"sll v4", LinkLinuxSLL, sll(etherIPv4, out4), true},
		{"sll v6 transit", LinkLinuxSLL, sll(etherIPv6, transit6), false},
		{"sll vlan", LinkLinuxSLL, sll(ether8021Q, cat(be16(1), be16(etherIPv4), transit4)), true},
		{"sll2 v6", LinkLinuxSLL2, sll2(etherIPv6, out6), true},
		{"sll2 v4 transit", LinkLinuxSLL2, sll2(etherIPv4, transit4), false},
		{"raw v4", LinkRaw, in4b, true},
		{"raw v6", LinkRaw, inLL, true},
		{"raw v6 transit", LinkRaw, transit6, false},
		{"raw v4 transit", LinkRaw, transit4, false},
		{"raw bad version", LinkRaw, withByte(out4, 0, 0x55), false},
		{"ipv4 link", LinkIPv4, out4, true},
		{"ipv4 link transit", LinkIPv4, transit4, false},
		{"ipv6 link", LinkIPv6, out6, true},
		{"ipv6 link transit", LinkIPv6, near6, false},
	}
	vms := map[LinkType]*bpf.VM{}
	for _, l := range []LinkType{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkRaw, LinkIPv4, LinkIPv6} {
		raw, err := KernelFilter(l, local, snap)
		if err != nil {
			t.Fatalf("link %d: %v", l, err)
		}
		vms[l] = newVM(t, raw)
	}
	for _, tc := range cases {
		got, err := vms[tc.link].Run(tc.frame)
		want := 0
		if tc.accept {
			want = min(snap, len(tc.frame))
		}
		if err != nil || got != want {
			t.Errorf("%s: returned %d, %v; want %d", tc.name, got, err, want)
		}
	}

	if _, err := KernelFilter(LinkType(147), local, snap); err == nil {
		t.Error("link 147 accepted")
	}
}

func newVM(t *testing.T, raw []bpf.RawInstruction) *bpf.VM {
	t.Helper()
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// TestKernelFilterLarge checks jump offsets stay in range with many
// addresses, and that an impossible list falls back to keeping all IP.
func TestKernelFilterLarge(t *testing.T) {
	var local []netip.Addr
	for i := range 200 {
		if i < 150 {
			local = append(local, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(i >> 8), 15: byte(i)}))
		}
		local = append(local, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	raw, err := KernelFilter(LinkEthernet, local, 128)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, raw)
	for _, f := range [][]byte{
		eth(etherIPv6, ipv6(far6, "2001:db8:1::95", 17, nil, 10)), // the 150th v6 address
		eth(etherIPv4, ipv4("198.51.100.199", far4, 10, v4opts{})),
	} {
		if n, _ := vm.Run(f); n == 0 {
			t.Error("last local address not matched")
		}
	}
	for i := range 300 {
		local = append(local, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 14: byte(i >> 8), 15: byte(i)}))
	}
	if _, err := KernelFilter(LinkEthernet, local, 128); !errors.Is(err, errFilterTooLarge) {
		t.Fatalf("500 IPv6 addresses: %v", err)
	}
	raw, err = kernelFilter(LinkEthernet, local, 128, false)
	if err != nil {
		t.Fatal(err)
	}
	vm = newVM(t, raw)
	if n, _ := vm.Run(eth(etherIPv4, ipv4(far4, far4b, 10, v4opts{}))); n != 128 && n != 14+30 {
		t.Errorf("fallback filter dropped an IP frame: %d", n)
	}
	if n, _ := vm.Run(arp()); n != 0 {
		t.Errorf("fallback filter kept ARP: %d", n)
	}
}

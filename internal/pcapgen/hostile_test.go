package pcapgen

import (
	"net/netip"
	"testing"
	"time"
)

// The hostile mix brings as many distinct spoofed sources as asked, four
// frames in five, all to local addresses and random ports, and its truth
// agrees: every spoofed source is a tallied remote.
func TestHostileDistinctSources(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 20000
	next := HostileFunc(1, n, 100, 1<<30, local, start, 19*time.Second, LinkEthernet)
	pkts := make([]Packet, n)
	ports := map[uint16]bool{}
	for i := range pkts {
		pkts[i] = next(i)
		ports[pkts[i].DstPort] = true
	}
	truth := Truth(pkts, local, nil, 20*time.Second)
	if len(truth) != 1 {
		t.Fatalf("%d windows, want 1", len(truth))
	}
	if r := len(truth[0].Remotes); r < n*3/4 || r > n*85/100+100 {
		t.Fatalf("%d distinct remotes in %d frames, want about four in five", r, n)
	}
	if len(ports) < 10000 {
		t.Fatalf("%d distinct destination ports: not a scan", len(ports))
	}
}

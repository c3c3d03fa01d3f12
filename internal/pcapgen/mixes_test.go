package pcapgen

import (
	"net/netip"
	"testing"
	"time"
)

// The proxy mix adds resolver traffic: about one frame in four is UDP to
// or from port 53 of one of four resolvers, with client ports all over.
func TestProxyResolvers(t *testing.T) {
	const n = 20000
	next := ProxyFunc(1, n, 3000, testLocal, testStart, time.Minute, LinkEthernet)
	dns, ports, resolvers := 0, map[uint16]bool{}, map[netip.Addr]bool{}
	for i := range n {
		p := next(i)
		if p.Proto == 17 && (p.SrcPort == 53 || p.DstPort == 53) && (p.Src.As16()[15] >= 53 || p.Dst.As16()[15] >= 53) {
			res, port := p.Src, p.DstPort
			if p.Outgoing {
				res, port = p.Dst, p.SrcPort
			}
			if res.Is4() && res.As4()[0] == 192 && res.As4()[3] >= 53 && res.As4()[3] <= 56 {
				dns++
				ports[port] = true
				resolvers[res] = true
			}
		}
	}
	if dns < n/5 || dns > n*3/10 {
		t.Fatalf("%d resolver frames in %d, want about a quarter", dns, n)
	}
	if len(resolvers) != 4 || len(ports) < 1000 {
		t.Fatalf("%d resolvers, %d client ports: want 4 and ports all over", len(resolvers), len(ports))
	}
}

// The scan mix gives each remote several services in one window, unlike
// Mixed, where a remote keeps to its own 49 packets in 50.
func TestScanServicesPerRemote(t *testing.T) {
	const n = 20000
	per := func(next func(int) Packet) float64 {
		svcs := map[netip.Addr]map[[2]uint16]bool{}
		for i := range n {
			p := next(i)
			if p.Proto != 6 && p.Proto != 17 {
				continue
			}
			r, port := p.Src, p.SrcPort
			if p.Outgoing {
				r, port = p.Dst, p.DstPort
			}
			if svcs[r] == nil {
				svcs[r] = map[[2]uint16]bool{}
			}
			svcs[r][[2]uint16{uint16(p.Proto), port}] = true
		}
		k := 0
		for _, s := range svcs {
			k += len(s)
		}
		return float64(k) / float64(len(svcs))
	}
	mixed := per(MixedFunc(1, n, 500, testLocal, testStart, time.Minute, LinkEthernet))
	scan := per(ScanFunc(1, n, 500, testLocal, testStart, time.Minute, LinkEthernet))
	if mixed > 2 || scan < 4 {
		t.Fatalf("services per remote: mixed %.1f, scan %.1f; want below 2 and above 4", mixed, scan)
	}
}

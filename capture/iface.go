package capture

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// DefaultInterface returns the interface of the IPv4 default route, or of the
// IPv6 default route on an IPv6-only host. With several default routes the one
// with the lowest metric wins, as it does for the kernel.
func DefaultInterface() (string, error) {
	if name, err := defaultRouteFile("/proc/net/route", parseRoute4); err == nil && name != "" {
		return name, nil
	}
	if name, err := defaultRouteFile("/proc/net/ipv6_route", parseRoute6); err == nil && name != "" {
		return name, nil
	}
	return "", errors.New("no default route: name the interface to capture on")
}

func defaultRouteFile(path string, parse func(io.Reader) (string, error)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parse(f)
}

const (
	rtfUp     = 0x0001
	rtfReject = 0x0200
)

// parseRoute4 reads /proc/net/route: a header line, then
// "Iface Destination Gateway Flags RefCnt Use Metric Mask ..." in hex.
func parseRoute4(r io.Reader) (string, error) {
	best, bestMetric := "", uint64(1<<64-1)
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.ParseUint(f[6], 10, 64)
		if err1 != nil || err2 != nil || f[1] != "00000000" || f[7] != "00000000" || flags&rtfUp == 0 {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	return best, sc.Err()
}

// parseRoute6 reads /proc/net/ipv6_route: "dest destlen src srclen nexthop
// metric refcnt use flags iface", hex, no header. The kernel lists
// unreachable default routes on lo; RTF_REJECT marks them.
func parseRoute6(r io.Reader) (string, error) {
	best, bestMetric := "", uint64(1<<64-1)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		flags, err1 := strconv.ParseUint(f[8], 16, 32)
		metric, err2 := strconv.ParseUint(f[5], 16, 64)
		if err1 != nil || err2 != nil || flags&rtfUp == 0 || flags&rtfReject != 0 || f[9] == "lo" {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = f[9], metric
		}
	}
	return best, sc.Err()
}

// InterfaceAddrs returns every IPv4 and IPv6 address of the interface (IPv6
// link-local included), IPv4 unmapped. They are the default local addresses.
func InterfaceAddrs(name string) ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Name != name {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", name, err)
		}
		var out []netip.Addr
		for _, a := range addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			if na, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, na.Unmap())
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown interface %q", name)
}

package capture

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// ProcNet is where ReadPortSet finds the socket tables and the sysctl.
// thread-self, not self: a thread that entered another network namespace
// (tests do) reads that namespace's tables, and in the daemon every thread
// is in the same namespace anyway.
type ProcNet struct {
	Net    string // directory with tcp, tcp6, udp, udp6; default /proc/thread-self/net
	Sysctl string // ip_local_port_range file; default /proc/sys/net/ipv4/ip_local_port_range
	// EphemeralStart, when not 0, is used instead of reading Sysctl.
	EphemeralStart uint16
}

func (p ProcNet) dirs() (string, string) {
	n, s := p.Net, p.Sysctl
	if n == "" {
		n = "/proc/thread-self/net"
	}
	if s == "" {
		s = "/proc/sys/net/ipv4/ip_local_port_range"
	}
	return n, s
}

// TCP socket state LISTEN in /proc/net/tcp (include/net/tcp_states.h).
const tcpListen = 0x0A

// ReadPortSet reads the host's listening sockets and the start of its
// ephemeral port range from the kernel: TCP sockets in LISTEN state, and
// UDP sockets that are bound but not connected (remote address 0:0: a
// connected UDP socket is a client, such as a resolver waiting for an
// answer). Sockets bound to a loopback address are left out: no packet
// on a captured interface can reach them. extra ports count as listened on
// for both TCP and UDP (--service-ports). A missing tcp6 or udp6 table
// (IPv6 disabled) is not an error.
func (p ProcNet) ReadPortSet(extra []uint16) (*PortSet, error) {
	netDir, sysctl := p.dirs()
	start := p.EphemeralStart
	if start == 0 {
		var err error
		if start, err = readEphemeralStart(sysctl); err != nil {
			return nil, err
		}
	}
	ps := NewPortSet(start)
	ps.Sockets = true
	for _, port := range extra {
		ps.AddService(port)
	}
	for _, t := range []struct {
		file  string
		proto window.Proto
	}{{"tcp", window.ProtoTCP}, {"tcp6", window.ProtoTCP}, {"udp", window.ProtoUDP}, {"udp6", window.ProtoUDP}} {
		f, err := os.Open(filepath.Join(netDir, t.file))
		if err != nil {
			if os.IsNotExist(err) && strings.HasSuffix(t.file, "6") {
				continue
			}
			return nil, fmt.Errorf("listening sockets: %w", err)
		}
		err = readSocketTable(f, t.proto, ps)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("listening sockets: %s: %w", f.Name(), err)
		}
	}
	return ps, nil
}

func readEphemeralStart(path string) (uint16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("ephemeral port range: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("ephemeral port range: %s: %q is not two numbers", path, b)
	}
	n, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil {
		return 0, fmt.Errorf("ephemeral port range: %s: %w", path, err)
	}
	return uint16(n), nil
}

// readSocketTable adds the listening ports of one /proc/net table:
//
//	sl  local_address rem_address   st ...
//	 0: 0100007F:0277 00000000:0000 0A ...
//
// Addresses are hex in the kernel's byte order (each 32-bit word as the
// host stores it, little-endian here); ports are big-endian hex.
func readSocketTable(r io.Reader, proto window.Proto, ps *PortSet) error {
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // the header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		local, lport, err := parseProcAddr(f[1])
		if err != nil {
			return err
		}
		remote, rport, err := parseProcAddr(f[2])
		if err != nil {
			return err
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return fmt.Errorf("state %q: %w", f[3], err)
		}
		switch proto {
		case window.ProtoTCP:
			if st != tcpListen {
				ps.addConnected(proto, lport) // a connection: of a client unless the port also listens
				continue
			}
		case window.ProtoUDP:
			if rport != 0 || !remote.IsUnspecified() {
				ps.addConnected(proto, lport) // connected: a client
				continue
			}
		}
		if local.Unmap().IsLoopback() {
			continue
		}
		ps.Add(proto, lport)
	}
	return sc.Err()
}

// parseProcAddr reads ADDR:PORT as /proc/net/{tcp,udp}{,6} write them.
func parseProcAddr(s string) (netip.Addr, uint16, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("address %q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("address %q: %w", s, err)
	}
	b, err := hex.DecodeString(a)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("address %q: not 8 or 32 hex digits", s)
	}
	// Each 32-bit word was printed as the host reads the network-order
	// bytes: turn the number back into those bytes.
	for i := 0; i < len(b); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(b[i:]))
	}
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b)), uint16(port), nil
	}
	return netip.AddrFrom16([16]byte(b)), uint16(port), nil
}

// RefreshEvery is how often the daemon rereads the listening sockets.
const RefreshEvery = 10 * time.Second

// Follow rereads the port set every interval until ctx is done and swaps
// it into s; a failed read keeps the previous set and is reported to
// onErr (once per run of failures).
func (p ProcNet) Follow(ctx context.Context, s *Services, extra []uint16, every time.Duration, onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ps, err := p.ReadPortSet(extra)
		if err != nil {
			if !failing && onErr != nil {
				onErr(err)
			}
			failing = true
			continue
		}
		failing = false
		s.Store(ps)
	}
}

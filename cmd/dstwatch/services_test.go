package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/pcapgen"
	"github.com/dstwatch/dstwatch/window"
)

// servicePackets are the cases of the service rule, each at a known
// size: a listened-on port above the ephemeral start (--service-ports),
// the ephemeral boundary from both sides, fragments, ICMP, IPv6 with
// extension headers, and a transport header cut off by the snap length.
func servicePackets(start time.Time) []pcapgen.Packet {
	l4, l6 := testLocal[0], testLocal[1]
	r4, r6 := netip.MustParseAddr("203.0.113.50"), netip.MustParseAddr("2001:db8:5::7")
	r4b := netip.MustParseAddr("192.0.2.9")
	at := func(i int) time.Time { return start.Add(time.Duration(i) * 100 * time.Millisecond) }
	var ps []pcapgen.Packet
	add := func(p pcapgen.Packet) { p.TS = at(len(ps)); ps = append(ps, p) }
	for range 3 {
		// 40000/tcp in: listened on (--service-ports), above 32768.
		add(pcapgen.Packet{Src: r4, Dst: l4, Proto: 6, SrcPort: 51000, DstPort: 40000, Payload: 100})
		add(pcapgen.Packet{Src: l4, Dst: r4, Proto: 6, SrcPort: 40000, DstPort: 51000, Payload: 1000})
		// Just below the ephemeral start: 32767/udp in.
		add(pcapgen.Packet{Src: r4b, Dst: l4, Proto: 17, SrcPort: 60000, DstPort: 32767, Payload: 30})
		// At the start: the remote port is the service, 53/udp out.
		add(pcapgen.Packet{Src: l4, Dst: r4b, Proto: 17, SrcPort: 32768, DstPort: 53, Payload: 40})
		add(pcapgen.Packet{Src: r4b, Dst: l4, Proto: 17, SrcPort: 53, DstPort: 32768, Payload: 120})
		// A proxy fetching from 443: 443/tcp out, IPv6 with extension headers.
		add(pcapgen.Packet{Src: l6, Dst: r6, Proto: 6, SrcPort: 45678, DstPort: 443, Payload: 200, IPv6ExtHdrs: true})
		add(pcapgen.Packet{Src: r6, Dst: l6, Proto: 6, SrcPort: 443, DstPort: 45678, Payload: 1200, IPv6ExtHdrs: true, VLANs: []uint16{7}})
		// Non-first fragments: 0/udp and 0/tcp, no side.
		add(pcapgen.Packet{Src: r4, Dst: l4, Proto: 17, Payload: 500, Fragment: true})
		add(pcapgen.Packet{Src: r6, Dst: l6, Proto: 6, Payload: 600, Fragment: true, IPv6ExtHdrs: true})
		// ICMP both families.
		add(pcapgen.Packet{Src: l4, Dst: r4, Proto: 1, SrcPort: 9, Payload: 56})
		add(pcapgen.Packet{Src: r6, Dst: l6, Proto: 58, SrcPort: 9, Payload: 56})
		// The snap length cuts the TCP header (14 + 20 + 2 bytes): 0/tcp.
		add(pcapgen.Packet{Src: r4, Dst: l4, Proto: 6, SrcPort: 443, DstPort: 33333, Payload: 700, Snap: 36})
		// An IPv6 chain cut inside its extension headers: 0/other.
		add(pcapgen.Packet{Src: r6, Dst: l6, Proto: 17, SrcPort: 53, DstPort: 40001, Payload: 10, IPv6ExtHdrs: true, Snap: 14 + 40 + 4})
		// Other protocol (GRE).
		add(pcapgen.Packet{Src: l4, Dst: r4, Proto: 47, Payload: 80})
	}
	return ps
}

// compareServices checks every stored window's services against the truth.
func compareServices(t *testing.T, got []*window.Window, want map[int64]map[pcapgen.ServiceKey]*pcapgen.ServiceCounts) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d windows, want %d", len(got), len(want))
	}
	for _, w := range got {
		tw := want[w.Start.UnixNano()]
		if len(w.Services) != len(tw) {
			t.Errorf("window %v: %d services, want %d", w.Start, len(w.Services), len(tw))
		}
		for _, s := range w.Services {
			k := pcapgen.ServiceKey{Proto: s.Key.Proto().String(), Port: s.Key.Port(), Side: s.Key.Side().String()}
			ts := tw[k]
			if ts == nil {
				t.Errorf("window %v: unexpected service %+v", w.Start, k)
				continue
			}
			if c := ts.Counts; s.TxPackets != c.TxPackets || s.TxBytes != c.TxBytes || s.RxPackets != c.RxPackets || s.RxBytes != c.RxBytes {
				t.Errorf("window %v service %+v: %+v, want %+v", w.Start, k, s.Counts, c)
			}
			if s.Remotes != len(ts.Remotes) {
				t.Errorf("window %v service %+v: %d remotes, want %d", w.Start, k, s.Remotes, len(ts.Remotes))
			}
			if len(ts.Remotes) <= 20 && len(s.Top) != len(ts.Remotes) {
				t.Errorf("window %v service %+v: %d rows, want all %d", w.Start, k, len(s.Top), len(ts.Remotes))
			}
			for _, r := range s.Top {
				c := ts.Remotes[r.Addr]
				if r.TxPackets != c.TxPackets || r.TxBytes != c.TxBytes || r.RxPackets != c.RxPackets || r.RxBytes != c.RxBytes {
					t.Errorf("window %v service %+v remote %v: %+v, want %+v", w.Start, k, r.Addr, r.Counts, c)
				}
			}
		}
	}
}

func TestReplayServicesMatchTruth(t *testing.T) {
	for _, link := range []uint16{pcapgen.LinkEthernet, pcapgen.LinkLinuxSLL2} {
		t.Run(fmt.Sprint(link), func(t *testing.T) {
			dir := t.TempDir()
			pkts := servicePackets(testStart)
			if link != pcapgen.LinkEthernet {
				for i := range pkts {
					pkts[i].VLANs = nil
					// SLL2 carries the direction: what the host sent is
					// outgoing, or it would be spoofed.
					pkts[i].Outgoing = testLocalSet(pkts[i].Src)
					if pkts[i].Snap > 0 {
						pkts[i].Snap += 6 // SLL2's header is 6 bytes longer
					}
				}
			}
			pkts = append(pkts, pcapgen.Mixed(9, 3000, 200, testLocal, testStart, time.Minute, link)...)
			file := filepath.Join(dir, "in.pcap")
			if err := pcapgen.Write(file, pcapgen.PcapNano, link, sortByTime(pkts)); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "w.db")
			if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db,
				"--service-ports", "40000", "--socket", "none"); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			rule := pcapgen.ServiceRule{Listen: map[uint16]bool{40000: true}, EphemeralStart: 32768}
			truth := pcapgen.ServiceTruth(pkts, link, testLocal, nil, 20*time.Second, rule)
			got := readAll(t, db)
			compareServices(t, got, truth)
			// Per service totals add up to the per remote totals.
			for _, w := range got {
				var a, b uint64
				for _, r := range w.Remotes {
					a += r.Bytes()
				}
				for _, s := range w.Services {
					b += s.Bytes()
				}
				if a != b {
					t.Errorf("window %v: remotes %d bytes, services %d", w.Start, a, b)
				}
			}
			// The named cases are there, on the side the rule says.
			first := truth[testStart.Truncate(20*time.Second).UnixNano()]
			for _, k := range []pcapgen.ServiceKey{sk("tcp", 40000, "in"), sk("udp", 32767, "in"), sk("udp", 53, "out"),
				sk("tcp", 443, "out"), sk("udp", 0, ""), sk("tcp", 0, ""), sk("icmp", 0, ""), sk("other", 0, "")} {
				if first[k] == nil {
					t.Errorf("truth lacks %+v: the scenario does not test it", k)
				}
			}
		})
	}
}

func sortByTime(ps []pcapgen.Packet) []pcapgen.Packet {
	out := append([]pcapgen.Packet(nil), ps...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].TS.Before(out[j-1].TS); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestServiceCommands checks query --by service, value and discover on a
// replayed capture: exact outputs and exit codes.
func TestServiceCommands(t *testing.T) {
	dir := t.TempDir()
	pkts := servicePackets(testStart.Add(10 * time.Second)) // all in one window
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapNano, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db,
		"--service-ports", "40000", "--socket", "none"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rule := pcapgen.ServiceRule{Listen: map[uint16]bool{40000: true}, EphemeralStart: 32768}
	truth := pcapgen.ServiceTruth(pkts, pcapgen.LinkEthernet, testLocal, nil, 20*time.Second, rule)
	if len(truth) != 1 {
		t.Fatalf("%d windows", len(truth))
	}
	var tw map[pcapgen.ServiceKey]*pcapgen.ServiceCounts
	for _, w := range truth {
		tw = w
	}
	https := tw[sk("tcp", 443, "out")]
	web := tw[sk("tcp", 40000, "in")]
	rng := []string{"--db", db, "--from", "2026-11-22T13:00:00Z", "--to", "2026-11-22T14:00:00Z"}

	code, out, stderr := runCmd(t, append([]string{"query", "--by", "service", "--format", "json", "--port", "443"}, rng...)...)
	if code != 0 {
		t.Fatalf("query exit %d: %s", code, stderr)
	}
	want := fmt.Sprintf(`[{"service":"443/tcp","proto":"tcp","port":443,"side":"out","remotes":1,"tx_packets":%d,"tx_bytes":%d,"rx_packets":%d,"rx_bytes":%d}]`,
		https.TxPackets, https.TxBytes, https.RxPackets, https.RxBytes)
	if compact(t, out) != want {
		t.Errorf("query json:\n got %s\nwant %s", compact(t, out), want)
	}
	code, out, _ = runCmd(t, append([]string{"query", "--by", "service", "--format", "pipe", "--proto", "tcp", "--side", "in"}, rng...)...)
	if wantPipe := fmt.Sprintf("40000/tcp/in|%d|%d\n", web.TxBytes, web.RxBytes); code != 0 || out != wantPipe {
		t.Errorf("pipe: exit %d %q, want %q", code, out, wantPipe)
	}
	code, out, _ = runCmd(t, append([]string{"query", "--by", "service", "--proto", "udp"}, rng...)...)
	if code != 0 || !strings.Contains(out, "32767/udp") || !strings.Contains(out, "53/udp") || strings.Contains(out, "443/tcp") {
		t.Errorf("table: exit %d\n%s", code, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tx_bytes", "--port", "443", "--proto", "tcp"}, fmt.Sprint(https.TxBytes)},
		{[]string{"rx_packets", "--port", "40000", "--side", "in"}, fmt.Sprint(web.RxPackets)},
		{[]string{"remotes", "--port", "443"}, "1"},
		{[]string{"drops"}, "0"},
		{[]string{"remotes"}, "3"},
		{[]string{"tx_packets", "--port", "9999"}, "0"},
	} {
		code, out, stderr := runCmd(t, append(append([]string{"value"}, c.args...), rng...)...)
		if code != 0 || out != c.want+"\n" || stderr != "" {
			t.Errorf("value %v: exit %d out %q stderr %q, want %q", c.args, code, out, stderr, c.want)
		}
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"value"}, 2},
		{[]string{"value", "bogus"}, 2},
		{[]string{"value", "tx_bytes", "--proto", "sctp"}, 2},
		{[]string{"value", "tx_bytes", "--db", db, "--from", "2020-01-01", "--to", "2020-01-02"}, 1},
		{[]string{"value", "tx_bytes", "--db", filepath.Join(dir, "none.db")}, 1},
		{[]string{"discover"}, 2},
		{[]string{"discover", "ports"}, 2},
	} {
		code, out, stderr := runCmd(t, c.args...)
		if code != c.code || out != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d (want %d), out %q, stderr %q", c.args, code, c.code, out, stderr)
		}
	}

	code, out, _ = runCmd(t, append([]string{"discover", "services", "--side", "in"}, rng...)...)
	wantD := `{"data":[{"{#PORT}":"40000","{#PROTO}":"tcp","{#SERVICE}":"40000/tcp","{#SIDE}":"in"},{"{#PORT}":"32767","{#PROTO}":"udp","{#SERVICE}":"32767/udp","{#SIDE}":"in"}]}` + "\n"
	if code != 0 || out != wantD {
		t.Errorf("discover services: exit %d\n got %s\nwant %s", code, out, wantD)
	}
	code, out, _ = runCmd(t, append([]string{"discover", "countries"}, rng...)...)
	if code != 0 || out != `{"data":[{"{#COUNTRY}":"--"}]}`+"\n" {
		t.Errorf("discover countries: exit %d %s", code, out)
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return b.String()
}

func sk(proto string, port uint16, side string) pcapgen.ServiceKey {
	return pcapgen.ServiceKey{Proto: proto, Port: port, Side: side}
}

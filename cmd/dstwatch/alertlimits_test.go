package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/pcapgen"
)

// udpTo is n UDP packets of 1000 IP bytes from the host to dst, one per
// second from start.
func udpTo(dst netip.Addr, n int, start time.Time) []pcapgen.Packet {
	var out []pcapgen.Packet
	for i := range n {
		out = append(out, pcapgen.Packet{TS: start.Add(time.Duration(i) * time.Second), Src: testLocal[0], Dst: dst,
			Proto: 17, SrcPort: 40000, DstPort: 9000, Payload: 1000 - 28})
	}
	return out
}

// A daily quota over two runs of the real daemon on one database: the
// first replay stores 30 kB (under the quota), the second 30 kB more; the
// second run fires, because the day's sum is seeded from storage.
func TestQuotaFiresAfterRestartFromStoredBytes(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte(`rules:
  - name: quota
    per: remote
    metric: tx_bytes
    threshold: 50k
    period: 1d
    expire: 1d
    actions: [{log: true}]
`), 0o644)
	dst := netip.MustParseAddr("203.0.113.9")
	db := filepath.Join(dir, "w.db")
	for i, start := range []time.Time{testStart, testStart.Add(10 * time.Minute)} {
		file := filepath.Join(dir, "half.pcap")
		if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, udpTo(dst, 30, start)); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1", "--db", db, "--rules", rules, "--socket", "none")
		if code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
		rec, _ := os.ReadFile(filepath.Join(dir, "records.log"))
		fired := strings.Count(string(rec), "!!! alert fired rule=quota id=1 key=203.0.113.9 tx_bytes")
		if want := i; fired != want {
			t.Fatalf("after run %d: %d fired lines, want %d:\n%s\n%s", i, fired, want, rec, stderr)
		}
	}
	l := incidentsJSON(t, "--db", db)
	if len(l) != 1 || l[0].Value <= 50_000 {
		t.Fatalf("incidents %+v", l)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
	"github.com/dstwatch/dstwatch/internal/pcapgen"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

var (
	testLocal = []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")}
	// A window boundary, so the scenario spans whole and partial windows alike.
	testStart = time.Date(2026, 11, 22, 13, 19, 50, 0, time.UTC)
)

// runCmd runs the CLI in-process and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// geoFiles writes a country and an ASN database covering the documentation ranges.
func geoFiles(t *testing.T) (country, asn string) {
	t.Helper()
	dir := t.TempDir()
	country, asn = filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	if err := mmdbtest.Country(country, map[string]string{
		"198.51.100.0/24": "NL", "203.0.113.0/24": "JP", "192.0.2.0/24": "US", "2001:db8::/33": "DE",
	}); err != nil {
		t.Fatal(err)
	}
	if err := mmdbtest.ASN(asn, map[string]mmdbtest.Entry{
		"203.0.113.0/24": {ASN: 64500, ASOrg: "Example Transit"}, "2001:db8::/32": {ASN: 64501, ASOrg: "Example Six"},
	}); err != nil {
		t.Fatal(err)
	}
	return country, asn
}

func wantGeo(a netip.Addr) (string, uint32) {
	switch {
	case netip.MustParsePrefix("198.51.100.0/24").Contains(a):
		return "NL", 0
	case netip.MustParsePrefix("203.0.113.0/24").Contains(a):
		return "JP", 64500
	case netip.MustParsePrefix("192.0.2.0/24").Contains(a):
		return "US", 0
	case netip.MustParsePrefix("2001:db8::/33").Contains(a):
		return "DE", 64501
	case netip.MustParsePrefix("2001:db8::/32").Contains(a):
		return "", 64501
	}
	return "", 0
}

func readAll(t *testing.T, db string) []*window.Window {
	t.Helper()
	d, err := storage.Open(db, storage.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var ws []*window.Window
	if err := d.Windows(context.Background(), time.Unix(0, 0), time.Now().Add(24*time.Hour*365*10), func(w *window.Window) error {
		ws = append(ws, w)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ws
}

// compare checks every stored window, remote and count against the truth.
func compare(t *testing.T, got []*window.Window, want []pcapgen.WindowTruth, times uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("stored %d windows, want %d", len(got), len(want))
	}
	for i, w := range got {
		tr := want[i]
		if !w.Start.Equal(tr.Start) {
			t.Fatalf("window %d starts %v, want %v", i, w.Start, tr.Start)
		}
		wantStats := window.Stats{Frames: tr.Frames, Tallied: tr.Tallied, NonIP: tr.NonIP, Transit: tr.Transit,
			Malformed: tr.Malformed, Excluded: tr.Excluded, Local: tr.Local, Oversize: tr.Oversize, Spoofed: tr.Spoofed}
		wantStats = scaleStats(wantStats, times)
		if w.Stats != wantStats {
			t.Errorf("window %v stats\n got %+v\nwant %+v", w.Start, w.Stats, wantStats)
		}
		if len(w.Remotes) != len(tr.Remotes) {
			t.Errorf("window %v: %d remotes, want %d", w.Start, len(w.Remotes), len(tr.Remotes))
		}
		for _, r := range w.Remotes {
			c, ok := tr.Remotes[r.Addr]
			if !ok {
				t.Errorf("window %v: unexpected remote %v", w.Start, r.Addr)
				continue
			}
			wc := window.Counts{TxPackets: c.TxPackets * times, TxBytes: c.TxBytes * times, RxPackets: c.RxPackets * times, RxBytes: c.RxBytes * times}
			if r.Counts != wc {
				t.Errorf("window %v remote %v: %+v, want %+v", w.Start, r.Addr, r.Counts, wc)
			}
			if cc, asn := wantGeo(r.Addr); r.Country != cc || r.ASN != asn {
				t.Errorf("remote %v: country %q asn %d, want %q %d", r.Addr, r.Country, r.ASN, cc, asn)
			}
		}
	}
}

func scaleStats(s window.Stats, k uint64) window.Stats {
	var out window.Stats
	for range k {
		out.Add(s)
	}
	return out
}

func TestReplayMatchesTruth(t *testing.T) {
	country, asn := geoFiles(t)
	exclude := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("192.0.2.7/32")}
	for _, tc := range []struct {
		name   string
		format pcapgen.Format
		link   uint16
	}{
		{"pcap-us-ethernet", pcapgen.PcapMicro, pcapgen.LinkEthernet},
		{"pcap-ns-raw", pcapgen.PcapNano, pcapgen.LinkRaw},
		{"pcapng-sll", pcapgen.PcapNG, pcapgen.LinkLinuxSLL},
		{"pcap-ns-sll2", pcapgen.PcapNano, pcapgen.LinkLinuxSLL2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pkts := pcapgen.Mixed(7, 6000, 400, testLocal, testStart, 3*time.Minute, tc.link)
			file := filepath.Join(dir, "in.pcap")
			if err := pcapgen.Write(file, tc.format, tc.link, pkts); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "w.db")
			code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1",
				"--db", db, "--geoip", country, "--geoip", asn, "--exclude", "203.0.113.0/28", "--exclude", "192.0.2.7",
				"--max-remotes", "0")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			truth := pcapgen.Truth(pkts, testLocal, exclude, 20*time.Second)
			compare(t, readAll(t, db), truth, 1)

			// The record log got one block per window, each line stamped.
			rec, err := os.ReadFile(filepath.Join(dir, "records.log"))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(rec), "=== window 20s"); n != len(truth) {
				t.Errorf("record log has %d window headers, want %d", n, len(truth))
			}
		})
	}
}

func TestReplayPcapngTwoInterfaces(t *testing.T) {
	dir := t.TempDir()
	eth := pcapgen.Mixed(3, 1500, 100, testLocal, testStart, time.Minute, pcapgen.LinkEthernet)
	raw := pcapgen.Mixed(4, 1500, 100, testLocal, testStart.Add(time.Minute), time.Minute, pcapgen.LinkRaw)
	pkts := append(eth, raw...)
	ifaces := make([]int, len(pkts))
	for i := range raw {
		ifaces[len(eth)+i] = 1
	}
	file := filepath.Join(dir, "two.pcapng")
	if err := pcapgen.WriteNG(file, pkts, ifaces); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := readAll(t, db)
	want := pcapgen.Truth(pkts, testLocal, nil, 20*time.Second)
	// No GeoIP given: compare counts only.
	for _, w := range got {
		for i := range w.Remotes {
			w.Remotes[i].Country, w.Remotes[i].ASN = wantGeo(w.Remotes[i].Addr)
		}
	}
	compare(t, got, want, 1)
}

// Stopping and starting again within one window must merge, never overwrite:
// replaying the same file twice into one DB doubles every count.
func TestReplayTwiceMerges(t *testing.T) {
	dir := t.TempDir()
	country, asn := geoFiles(t)
	pkts := pcapgen.Mixed(11, 2000, 150, testLocal, testStart, time.Minute, pcapgen.LinkEthernet)
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	for range 2 {
		if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db,
			"--geoip", country, "--geoip", asn); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	}
	compare(t, readAll(t, db), pcapgen.Truth(pkts, testLocal, nil, 20*time.Second), 2)
}

func TestReplayTruncatedFile(t *testing.T) {
	dir := t.TempDir()
	pkts := pcapgen.Mixed(5, 1000, 80, testLocal, testStart, time.Minute, pcapgen.LinkEthernet)
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	// Cut the file inside the last record: every packet but the last is whole.
	data, _ := os.ReadFile(file)
	lastLen := 16 + captured(pkts[len(pkts)-1])
	if err := os.WriteFile(file, data[:len(data)-lastLen/2], 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db)
	if code != 0 {
		t.Fatalf("a cut-off file must still exit 0, got %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "cut off") {
		t.Errorf("no warning about the cut-off file in stderr: %s", stderr)
	}
	got := readAll(t, db)
	for _, w := range got {
		for i := range w.Remotes {
			w.Remotes[i].Country, w.Remotes[i].ASN = wantGeo(w.Remotes[i].Addr)
		}
	}
	compare(t, got, pcapgen.Truth(pkts[:len(pkts)-1], testLocal, nil, 20*time.Second), 1)
}

// captured is the number of frame bytes pcapgen writes for p on Ethernet.
func captured(p pcapgen.Packet) int {
	dir, err := os.MkdirTemp("", "cap")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	f := filepath.Join(dir, "one.pcap")
	if err := pcapgen.Write(f, pcapgen.PcapMicro, pcapgen.LinkEthernet, []pcapgen.Packet{p}); err != nil {
		panic(err)
	}
	st, _ := os.Stat(f)
	return int(st.Size()) - 24 - 16
}

func TestReplayCapFoldsIntoOther(t *testing.T) {
	dir := t.TempDir()
	pkts := pcapgen.Mixed(9, 4000, 300, testLocal, testStart, 40*time.Second, pcapgen.LinkEthernet)
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--max-remotes", "10"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	truth := pcapgen.Truth(pkts, testLocal, nil, 20*time.Second)
	got := readAll(t, db)
	if len(got) != len(truth) {
		t.Fatalf("%d windows, want %d", len(got), len(truth))
	}
	for i, w := range got {
		var want, sum window.Counts
		var heaviest []uint64
		for _, c := range truth[i].Remotes {
			want.Add(window.Counts(c))
			heaviest = append(heaviest, c.TxBytes+c.RxBytes)
		}
		for _, r := range w.Remotes {
			sum.Add(r.Counts)
		}
		sum.Add(w.Other)
		if sum != want {
			t.Errorf("window %v: kept + other = %+v, want %+v", w.Start, sum, want)
		}
		if len(w.Remotes) != 10 || w.Stats.Folded != uint64(len(truth[i].Remotes)-10) {
			t.Errorf("window %v: kept %d folded %d, want 10 and %d", w.Start, len(w.Remotes), w.Stats.Folded, len(truth[i].Remotes)-10)
		}
		// The kept ones are the heaviest: the lightest kept weighs at least
		// as much as the 11th heaviest of the truth.
		slicesSortDesc(heaviest)
		if last := w.Remotes[9].Bytes(); last < heaviest[10] {
			t.Errorf("window %v: kept a remote of %d bytes while one of %d was folded", w.Start, last, heaviest[10])
		}
	}
}

func slicesSortDesc(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestQueryOutputs(t *testing.T) {
	dir := t.TempDir()
	country, asn := geoFiles(t)
	pkts := pcapgen.Mixed(21, 3000, 60, testLocal, testStart, time.Minute, pcapgen.LinkEthernet)
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db,
		"--geoip", country, "--geoip", asn); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	truth := pcapgen.Truth(pkts, testLocal, nil, 20*time.Second)
	// Windows are selected by their start: 13:19:40 holds the first packets.
	rangeArgs := []string{"--db", db, "--from", testStart.Add(-10 * time.Second).Format(time.RFC3339), "--to", testStart.Add(2 * time.Minute).Format(time.RFC3339)}

	// --by window --format json: every window, every remote.
	code, out, stderr := runCmd(t, append([]string{"query", "--by", "window", "--format", "json"}, rangeArgs...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var windows []struct {
		Start   string `json:"start"`
		End     string `json:"end"`
		Remotes []struct {
			Addr      string `json:"addr"`
			Country   string `json:"country"`
			ASN       uint32 `json:"asn"`
			TxPackets uint64 `json:"tx_packets"`
			TxBytes   uint64 `json:"tx_bytes"`
			RxPackets uint64 `json:"rx_packets"`
			RxBytes   uint64 `json:"rx_bytes"`
		} `json:"remotes"`
		Stats map[string]any `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &windows); err != nil {
		t.Fatalf("query json: %v\n%s", err, out)
	}
	if len(windows) != len(truth) {
		t.Fatalf("json has %d windows, want %d", len(windows), len(truth))
	}
	for i, w := range windows {
		if w.Start != truth[i].Start.Format(time.RFC3339) || w.End != truth[i].Start.Add(20*time.Second).Format(time.RFC3339) {
			t.Errorf("window %d: %s..%s", i, w.Start, w.End)
		}
		if len(w.Remotes) != len(truth[i].Remotes) {
			t.Errorf("window %s: %d remotes, want %d", w.Start, len(w.Remotes), len(truth[i].Remotes))
		}
		for _, r := range w.Remotes {
			c := truth[i].Remotes[netip.MustParseAddr(r.Addr)]
			if r.TxPackets != c.TxPackets || r.TxBytes != c.TxBytes || r.RxPackets != c.RxPackets || r.RxBytes != c.RxBytes {
				t.Errorf("window %s remote %s: %+v, want %+v", w.Start, r.Addr, r, c)
			}
		}
		if got := w.Stats["frames"].(float64); uint64(got) != truth[i].Frames {
			t.Errorf("window %s frames %v, want %d", w.Start, got, truth[i].Frames)
		}
	}

	// --by country --format csv adds up the range.
	want := map[string]window.Counts{}
	for _, w := range truth {
		for a, c := range w.Remotes {
			cc, _ := wantGeo(a)
			x := want[cc]
			x.Add(window.Counts(c))
			want[cc] = x
		}
	}
	code, out, stderr = runCmd(t, append([]string{"query", "--by", "country", "--format", "csv"}, rangeArgs...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "country,remotes,tx_packets,tx_bytes,rx_packets,rx_bytes" {
		t.Fatalf("csv header %q", lines[0])
	}
	if len(lines)-1 != len(want) {
		t.Errorf("csv has %d countries, want %d:\n%s", len(lines)-1, len(want), out)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		c := want[f[0]]
		if wantRow := fmt.Sprintf("%d,%d,%d,%d", c.TxPackets, c.TxBytes, c.RxPackets, c.RxBytes); strings.Join(f[2:], ",") != wantRow {
			t.Errorf("country %q: %s, want %s", f[0], strings.Join(f[2:], ","), wantRow)
		}
	}

	// --by remote --top 3 table: three rows, an other row and a total.
	code, out, stderr = runCmd(t, append([]string{"query", "--by", "remote", "--top", "3", "--utc"}, rangeArgs...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "REMOTE") || !strings.Contains(out, "other") || !strings.Contains(out, "total") {
		t.Errorf("table lacks header, other or total:\n%s", out)
	}

	// An empty range says so instead of printing an empty table.
	code, out, _ = runCmd(t, "query", "--db", db, "--from", "2020-01-01", "--to", "2020-01-02")
	if code != 0 || !strings.Contains(out, "no stored window") || !strings.Contains(out, "holds") {
		t.Errorf("empty range: exit %d, %q", code, out)
	}
}

func sum256(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestBadInputOneLineNonZero(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "ok.pcap")
	if err := pcapgen.Write(pcap, pcapgen.PcapMicro, pcapgen.LinkEthernet,
		pcapgen.Mixed(1, 10, 5, testLocal, testStart, time.Second, pcapgen.LinkEthernet)); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pcap")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a capture "), 100), 0o644)
	notOurs := filepath.Join(dir, "notours.db")
	os.WriteFile(notOurs, []byte("precious data, not a database\n"), 0o644)
	badGeo := filepath.Join(dir, "bad.mmdb")
	os.WriteFile(badGeo, []byte("not an mmdb"), 0o644)
	badExcl := filepath.Join(dir, "excl.txt")
	os.WriteFile(badExcl, []byte("# ok\n203.0.113.0/24\nnonsense\n"), 0o644)
	db := filepath.Join(dir, "w.db")
	replay := []string{"run", "--read", pcap, "--local", "198.51.100.1", "--db", db}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, "Usage"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"run", "--frob"}, 2, "flag provided but not defined: -frob"},
		{"stray argument", []string{"query", "extra"}, 2, `unexpected argument "extra"`},
		{"bad local", append(replay, "--local", "300.1.1.1"), 2, `--local "300.1.1.1"`},
		{"bad exclude", append(replay, "--exclude", "203.0.113.0/33"), 2, `--exclude "203.0.113.0/33"`},
		{"bad exclude file", append(replay, "--exclude-file", badExcl), 1, "excl.txt:3"},
		{"bad window", append(replay, "--window", "soon"), 2, `--window "soon"`},
		{"fractional window", append(replay, "--window", "1500ms"), 2, "whole seconds"},
		{"bad retention", append(replay, "--retention", "-3d"), 2, "--retention"},
		{"missing capture", []string{"run", "--read", filepath.Join(dir, "nope.pcap"), "--local", "198.51.100.1", "--db", db}, 1, "no such file"},
		{"garbage capture", []string{"run", "--read", garbage, "--local", "198.51.100.1", "--db", db}, 1, "garbage.pcap"},
		{"replay without local", []string{"run", "--read", pcap, "--db", db}, 2, "--read needs --local"},
		{"unknown interface", []string{"run", "-i", "nosuch0", "--local", "198.51.100.1", "--db", db}, 1, `"nosuch0"`},
		{"not our db", []string{"run", "--read", pcap, "--local", "198.51.100.1", "--db", notOurs}, 1, "not a dstwatch database"},
		{"unreadable geoip", append(replay, "--geoip", badGeo), 1, "bad.mmdb"},
		{"missing geoip", append(replay, "--geoip", filepath.Join(dir, "none.mmdb")), 1, "none.mmdb"},
		{"query not our db", []string{"query", "--db", notOurs}, 1, "not a dstwatch database"},
		{"record log is the capture", append(replay, "--record-log", pcap), 1, "refusing to write text into it"},
		{"report over the capture", []string{"report", "--db", db, "-o", pcap}, 1, "refusing to write text into it"},
		{"query bad time", []string{"query", "--db", db, "--from", "last tuesday"}, 2, `--from "last tuesday"`},
		{"query bad by", []string{"query", "--db", db, "--by", "colour"}, 2, `--by "colour"`},
		{"query bad direction", []string{"query", "--db", db, "--direction", "up"}, 2, `--direction "up"`},
		{"query bad sort", []string{"query", "--db", db, "--sort", "weight"}, 2, `--sort "weight"`},
		{"query bad remote", []string{"query", "--db", db, "--remote", "10.0.0.0/33"}, 2, `--remote "10.0.0.0/33"`},
		{"query bad country", []string{"query", "--db", db, "--country", "Netherlands"}, 2, `--country "Netherlands"`},
		{"query bad asn", []string{"query", "--db", db, "--asn", "ASX"}, 2, `--asn "ASX"`},
		{"query last and from", []string{"query", "--db", db, "--last", "3", "--from", "-1h"}, 2, "--last excludes"},
		{"query last zero", []string{"query", "--db", db, "--last", "0"}, 2, "--last 0"},
		{"status not running", []string{"status", "--db", db}, 3, "not running"},
		{"tail follow json not running", []string{"tail", "-f", "--format", "json", "--db", db}, 3, "not running"},
		{"tail no record log", []string{"tail", "--db", db}, 1, "records.log"},
		{"tail bad format", []string{"tail", "--db", db, "--format", "xml"}, 2, `--format "xml"`},
		{"run socket is not a socket", append(replay, "--socket", notOurs), 1, "is not a socket"},
		{"run socket group unknown", append(replay, "--socket-group", "no-such-group-here"), 1, "no such group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, beforePcap := sum256(t, notOurs), sum256(t, pcap)
			code, _, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q lacks %q", stderr, tc.want)
			}
			if tc.args != nil && strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 {
				t.Errorf("want one line on stderr, got:\n%s", stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("panic trace:\n%s", stderr)
			}
			if sum256(t, notOurs) != before || sum256(t, pcap) != beforePcap {
				t.Fatal("a file we were pointed at was changed")
			}
		})
	}
}

// Retention counts back from the newest window, so a replay of an old
// capture keeps what is recent within the capture. The raw tier's cut is
// rounded down to a whole hour, and what it pruned lives on in the rollups:
// a query over the whole capture still adds up to every packet.
func TestReplayRetentionPrunes(t *testing.T) {
	dir := t.TempDir()
	// In the past: retention never counts back from beyond the present.
	start := testStart.Add(-20 * 24 * time.Hour)
	pkts := pcapgen.Mixed(13, 3000, 50, testLocal, start, 3*time.Hour, pcapgen.LinkEthernet)
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--retention", "1h"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	truth := pcapgen.Truth(pkts, testLocal, nil, 20*time.Second)
	newest := truth[len(truth)-1].Start
	cut := newest.Add(-time.Hour).Truncate(time.Hour)
	var kept []pcapgen.WindowTruth
	var want uint64
	for _, w := range truth {
		if !w.Start.Before(cut) {
			kept = append(kept, w)
		}
		for _, c := range w.Remotes {
			want += c.TxBytes + c.RxBytes
		}
	}
	got := readAll(t, db)
	if len(got) != len(kept) || !got[0].Start.Equal(kept[0].Start) {
		t.Fatalf("kept %d windows from %v, want %d from %v", len(got), got[0].Start, len(kept), kept[0].Start)
	}
	code, out, stderr := runCmd(t, "query", "--db", db, "--by", "country", "--format", "json",
		"--from", truth[0].Start.Truncate(time.Hour).Format(time.RFC3339), "--to", newest.Add(time.Hour).Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("query: exit %d: %s", code, stderr)
	}
	var rows []struct {
		TxBytes uint64 `json:"tx_bytes"`
		RxBytes uint64 `json:"rx_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, r := range rows {
		sum += r.TxBytes + r.RxBytes
	}
	if sum != want {
		t.Errorf("query over the pruned capture: %d bytes, want %d", sum, want)
	}
}

// One record stamped in 2106 (a damaged file, a wrong clock) must neither
// cut a window there nor let retention, counted from the newest window,
// prune the stored history.
func TestFutureTimestampPrunesNothing(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	past := time.Now().Add(-12 * time.Hour).Truncate(time.Hour) // well within the default 2 days
	good := pcapgen.Mixed(17, 500, 20, testLocal, past, 10*time.Minute, pcapgen.LinkEthernet)
	goodFile := filepath.Join(dir, "good.pcap")
	if err := pcapgen.Write(goodFile, pcapgen.PcapMicro, pcapgen.LinkEthernet, good); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, "run", "--read", goodFile, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--socket", "none"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	before := len(readAll(t, db))

	bad := append(pcapgen.Mixed(18, 50, 5, testLocal, time.Now().Add(-time.Minute), time.Second, pcapgen.LinkEthernet), pcapgen.Packet{})
	bad[len(bad)-1] = bad[0]
	bad[len(bad)-1].TS = time.Date(2106, 2, 7, 0, 0, 0, 0, time.UTC)
	badFile := filepath.Join(dir, "bad.pcap")
	if err := pcapgen.Write(badFile, pcapgen.PcapMicro, pcapgen.LinkEthernet, bad); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, "run", "--read", badFile, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--socket", "none"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ws := readAll(t, db)
	var kept, malformed int
	for _, w := range ws {
		if w.Start.Year() > 2100 {
			t.Fatalf("a window was cut at %v", w.Start)
		}
		if w.Start.Before(time.Now().Add(-6 * time.Hour)) {
			kept++
		}
		malformed += int(w.Stats.Malformed)
	}
	if kept != before {
		t.Errorf("%d of the %d stored windows left after replaying a file with a record stamped in 2106", kept, before)
	}
	if malformed == 0 {
		t.Errorf("the impossible frame is not counted as malformed")
	}
}

// hostile turns a Mixed scenario into one with forged and spoofed frames: every
// 23rd packet claims the largest IP length, and every 29th tallied one is
// received from the wire with this host's address as its source. seen says
// whether the file shows direction for the spoofed ones.
func hostile(pkts []pcapgen.Packet) (forged, spoofed int) {
	for i := range pkts {
		p := &pkts[i]
		if p.Shape != pcapgen.Normal {
			continue
		}
		switch {
		case i%23 == 0:
			p.Shape = pcapgen.ForgedLen
			forged++
		case i%29 == 0 && p.Outgoing && !testLocalSet(p.Dst):
			p.Outgoing = false
			spoofed++
		}
		p.EPBDirection = true
	}
	return forged, spoofed
}

func testLocalSet(a netip.Addr) bool {
	for _, l := range testLocal {
		if l == a.Unmap() {
			return true
		}
	}
	return false
}

// TestReplayHostileFrames: frames whose IP length is larger than the record's
// original length are stored as oversize, never as bytes; frames received
// with a local source are spoofed where the format carries direction (SLL,
// SLL2, pcapng epb_flags), and egress by their addresses where it does not.
func TestReplayHostileFrames(t *testing.T) {
	country, asn := geoFiles(t)
	for _, tc := range []struct {
		name     string
		format   pcapgen.Format
		link     uint16
		directed bool
	}{
		{"pcap-ethernet-no-direction", pcapgen.PcapMicro, pcapgen.LinkEthernet, false},
		{"pcap-raw-no-direction", pcapgen.PcapNano, pcapgen.LinkRaw, false},
		{"pcapng-ethernet-epb-flags", pcapgen.PcapNG, pcapgen.LinkEthernet, true},
		{"pcap-sll", pcapgen.PcapMicro, pcapgen.LinkLinuxSLL, true},
		{"pcapng-sll2", pcapgen.PcapNG, pcapgen.LinkLinuxSLL2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pkts := pcapgen.Mixed(17, 4000, 200, testLocal, testStart, 2*time.Minute, tc.link)
			forged, spoofed := hostile(pkts)
			file := filepath.Join(dir, "in.pcap")
			if err := pcapgen.Write(file, tc.format, tc.link, pkts); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "w.db")
			code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1",
				"--db", db, "--geoip", country, "--geoip", asn, "--max-remotes", "0")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			truth := pcapgen.TruthOn(tc.format, tc.link, pkts, testLocal, nil, 20*time.Second)
			var o, s uint64
			for _, w := range truth {
				o, s = o+w.Oversize, s+w.Spoofed
			}
			wantS := uint64(0)
			if tc.directed {
				wantS = uint64(spoofed)
			}
			if o != uint64(forged) || s != wantS || forged == 0 || spoofed == 0 {
				t.Fatalf("truth has %d oversize, %d spoofed; scenario %d forged, %d spoofed", o, s, forged, spoofed)
			}
			compare(t, readAll(t, db), truth, 1)
		})
	}
}

// One frame stamped an hour ahead inside an old capture is a bad stamp: it
// is counted as malformed in the window the capture is in when the next frame
// comes, and moves no later frame (once every frame after it was stored late
// in its future window). A real quiet hour in a capture still gives exactly
// the windows its stamps say.
func TestReplayStampOutlierAndRealGap(t *testing.T) {
	country, asn := geoFiles(t)
	replay := func(t *testing.T, pkts []pcapgen.Packet) []*window.Window {
		t.Helper()
		dir := t.TempDir()
		file := filepath.Join(dir, "in.pcap")
		if err := pcapgen.Write(file, pcapgen.PcapNano, pcapgen.LinkEthernet, pkts); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(dir, "w.db")
		code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1",
			"--db", db, "--geoip", country, "--geoip", asn, "--max-remotes", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		return readAll(t, db)
	}
	t.Run("outlier", func(t *testing.T) {
		pkts := pcapgen.Mixed(23, 3000, 150, testLocal, testStart, 2*time.Minute, pcapgen.LinkEthernet)
		i := len(pkts) / 2
		pkts[i].TS = pkts[i].TS.Add(time.Hour)
		rest := append(slices.Clone(pkts[:i]), pkts[i+1:]...)
		truth := pcapgen.Truth(rest, testLocal, nil, 20*time.Second)
		next := pkts[i+1].TS.UnixNano() / int64(20*time.Second) * int64(20*time.Second)
		found := false
		for j := range truth {
			if truth[j].Start.UnixNano() == next {
				truth[j].Frames++
				truth[j].Malformed++
				found = true
			}
		}
		if !found {
			t.Fatal("no window for the frame after the outlier")
		}
		got := replay(t, pkts)
		compare(t, got, truth, 1)
		for _, w := range got {
			if w.Stats.Late != 0 {
				t.Errorf("window %v: %d late frames", w.Start, w.Stats.Late)
			}
		}
	})
	t.Run("real gap", func(t *testing.T) {
		pkts := pcapgen.Mixed(24, 1500, 100, testLocal, testStart, time.Minute, pcapgen.LinkEthernet)
		pkts = append(pkts, pcapgen.Mixed(25, 1500, 100, testLocal, testStart.Add(time.Hour), time.Minute, pcapgen.LinkEthernet)...)
		compare(t, replay(t, pkts), pcapgen.Truth(pkts, testLocal, nil, 20*time.Second), 1)
	})
}

// TestReplayOpenBoundFoldsExactly replays windows of 300 remotes with the
// open window bounded to 50: each window keeps the first 50 remotes it saw
// with their exact counts, the later ones' frames are summed into other and
// counted as overflow, and the remotes, other and the services all still
// add up to every tallied frame.
func TestReplayOpenBoundFoldsExactly(t *testing.T) {
	dir := t.TempDir()
	pkts := pcapgen.Mixed(9, 4000, 300, testLocal, testStart, 40*time.Second, pcapgen.LinkEthernet)
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	if code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--max-open-remotes", "50"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	truth := pcapgen.Truth(pkts, testLocal, nil, 20*time.Second)
	got := readAll(t, db)
	if len(got) != len(truth) {
		t.Fatalf("%d windows, want %d", len(got), len(truth))
	}
	folded := 0
	for i, w := range got {
		var want, kept, services window.Counts
		for _, c := range truth[i].Remotes {
			want.Add(window.Counts(c))
		}
		for _, r := range w.Remotes {
			if c := window.Counts(truth[i].Remotes[r.Addr]); r.Counts != c {
				t.Errorf("window %v remote %v: %+v, want %+v", w.Start, r.Addr, r.Counts, c)
			}
			kept.Add(r.Counts)
		}
		for _, s := range w.Services {
			services.Add(s.Counts)
		}
		all := kept
		all.Add(w.Other)
		if all != want || services != want {
			t.Errorf("window %v: kept + other = %+v, services %+v, want %+v", w.Start, all, services, want)
		}
		if w.Stats.Tallied != truth[i].Tallied || w.Stats.Overflow != w.Stats.Tallied-kept.Packets() {
			t.Errorf("window %v: tallied %d overflow %d, want %d and %d", w.Start, w.Stats.Tallied, w.Stats.Overflow, truth[i].Tallied, truth[i].Tallied-kept.Packets())
		}
		if len(truth[i].Remotes) > 50 {
			folded++
			if len(w.Remotes) != 50 || w.Stats.Overflow == 0 {
				t.Errorf("window %v: %d remotes, overflow %d; want 50 and some", w.Start, len(w.Remotes), w.Stats.Overflow)
			}
		}
	}
	if folded == 0 {
		t.Fatal("no window had more than 50 remotes: the test tests nothing")
	}
	// query says so.
	code, out, _ := runCmd(t, "query", "--db", db, "--from", testStart.Add(-time.Hour).Format(time.RFC3339), "--to", testStart.Add(time.Hour).Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "--max-open-remotes") {
		t.Errorf("query (exit %d) does not mention the overflow:\n%s", code, out)
	}
}

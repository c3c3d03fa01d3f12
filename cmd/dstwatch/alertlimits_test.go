package main

import (
	"bytes"
	"context"
	be "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/internal/netnstest"
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

// spoofUDP sends one UDP datagram to dst:9000 from each of srcs, from
// namespace ns, through a raw socket: the sources are forged, as a flood
// of spoofed one-packet remotes is.
func spoofUDP(t *testing.T, ns string, dst netip.Addr, srcs []netip.Addr) {
	t.Helper()
	err := netnstest.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Addr: dst.As4()}
		for _, src := range srcs {
			pkt := make([]byte, 20+8+32)
			pkt[0], pkt[8], pkt[9] = 0x45, 64, 17
			be.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
			s, d := src.As4(), dst.As4()
			copy(pkt[12:], s[:])
			copy(pkt[16:], d[:])
			be.BigEndian.PutUint16(pkt[20:], 40000)
			be.BigEndian.PutUint16(pkt[22:], 9000)
			be.BigEndian.PutUint16(pkt[24:], 8+32)
			if err := unix.Sendto(fd, pkt, 0, to); err != nil {
				return fmt.Errorf("send from %v: %w", src, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Live, real process: one spoofed packet from each of 300 sources with a
// per-remote exec rule. With the default limits at most 20 incidents open
// per window and at most 4 commands run at once; the rest is counted as
// suppressed, in the record log, 'incidents', 'status' and /metrics, and
// every packet is still stored.
func TestLiveStormOfSpoofedSourcesIsBounded(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	act := filepath.Join(dir, "act.sh")
	os.WriteFile(act, []byte("#!/bin/sh\necho + >> "+dir+"/runs\nsleep 0.3\necho - >> "+dir+"/runs\n"), 0o755)
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte(`rules:
  - name: scan
    per: remote
    metric: rx_pps
    threshold: 0.01
    expire: 1h
    actions:
      - exec: [`+act+`, "{remote}"]
`), 0o644)
	db := filepath.Join(dir, "live.db")
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, p.A))
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "2s", "--rules", rules, "--metrics", maddr)
	sink(t, p.A, netnstest.A4)
	var srcs []netip.Addr
	for i := 1; i <= 250; i++ {
		srcs = append(srcs, netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
	}
	for i := 1; i <= 50; i++ {
		srcs = append(srcs, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	spoofUDP(t, p.B, netnstest.A4, srcs)

	rec := filepath.Join(dir, "records.log")
	if !waitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(rec)
		return strings.Contains(string(b), "!!! alert suppressed rule=scan")
	}) {
		runs, most := runCount(t, filepath.Join(dir, "runs"))
		t.Fatalf("no suppressed line in the record log; %d commands ran, %d at once", runs, most)
	}
	var l []*alert.Incident
	runs, most := 0, 0
	if !waitFor(15*time.Second, func() bool {
		l = incidentsJSON(t, "--db", db)
		runs, most = runCount(t, filepath.Join(dir, "runs"))
		return len(l) > 0 && runs == len(l) && allDone(l)
	}) {
		t.Fatalf("%d incidents, %d runs", len(l), runs)
	}
	perWindow := map[time.Time]int{}
	for _, inc := range l {
		perWindow[inc.Window]++
	}
	for w, n := range perWindow {
		if n > alert.DefaultLimits.PerWindow {
			t.Errorf("window %v opened %d incidents, over the limit of %d", w, n, alert.DefaultLimits.PerWindow)
		}
	}
	if most > alert.DefaultLimits.Running || most < 1 {
		t.Errorf("%d commands ran at once; the limit is %d", most, alert.DefaultLimits.Running)
	}
	code, out, _ := runCmd(t, "status", "--db", db)
	want := fmt.Sprintf("%d incidents suppressed over the limits (%d per window, 0 active, 0 queue", 300-len(l), 300-len(l))
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, fmt.Sprintf("%d open incidents (limit 500)", len(l))) {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
	code, out, _ = runCmd(t, "incidents", "--db", db)
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("incidents lacks %q:\n%s", want, out)
	}
	if m := scrape(t, p.A, maddr); !strings.Contains(m, fmt.Sprintf(`dstwatch_alert_incidents_suppressed_total{reason="per_window"} %d`, 300-len(l))) {
		t.Errorf("metrics:\n%s", m)
	}
	t.Logf("%d incidents in %d windows, %d runs, at most %d at once, %d suppressed", len(l), len(perWindow), runs, most, 300-len(l))
	d.stop(t)

	// Capturing and storing went on: every spoofed packet is in the database.
	got := map[netip.Addr]uint64{}
	for _, w := range readAll(t, db) {
		for _, r := range w.Remotes {
			got[r.Addr] += r.Counts.RxPackets
		}
	}
	for _, s := range srcs {
		if got[s] != 1 {
			t.Fatalf("%v: %d packets stored, want 1", s, got[s])
		}
	}
	// Without a daemon, 'incidents' reads the counts from alerts.db.
	if _, out, _ := runCmd(t, "incidents", "--db", db); !strings.Contains(out, want) {
		t.Errorf("incidents without a daemon lacks %q:\n%s", want, out)
	}
}

// scrape reads /metrics from inside ns.
func scrape(t *testing.T, ns, addr string) string {
	t.Helper()
	resp, err := nsClient(ns).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// runCount reads the "+"/"-" lines the action wrote: runs, and most at once.
func runCount(t *testing.T, path string) (runs, most int) {
	now := 0
	for _, l := range fileLines(t, path) {
		switch l {
		case "+":
			runs++
			now++
			most = max(most, now)
		case "-":
			now--
		}
	}
	return runs, most
}

func allDone(l []*alert.Incident) bool {
	for _, inc := range l {
		for _, a := range inc.Actions {
			if a.State != alert.StateDone {
				return false
			}
		}
	}
	return true
}

// Live, real process: a webhook URL with a secret in its path and query is
// posted to in full, at firing and at expiry, and appears nowhere else: not
// in the daemon's log, the record log, alerts.db, the API's answer or the
// error of a webhook that fails.
func TestLiveWebhookSecretsRedacted(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	var mu sync.Mutex
	var got []string
	var ln net.Listener
	if err := netnstest.Do(p.A, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b alert.WebhookBody
		json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		got = append(got, b.Event+" "+r.URL.RequestURI())
		mu.Unlock()
	})}
	go srv.Serve(ln)
	defer srv.Close()
	hook := "http://" + ln.Addr().String() + "/hook/S3CRET-A?token=S3CRET-B"
	closed := fmt.Sprintf("http://127.0.0.1:%d/down/S3CRET-C?k=S3CRET-D", freePort(t, p.A))
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte(`rules:
  - name: busy
    metric: rx_pps
    threshold: 50
    expire: 1h
    actions:
      - webhook: "`+hook+`"
      - webhook: "`+closed+`"
        retries: 0
`), 0o644)
	db := filepath.Join(dir, "live.db")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--rules", rules)
	sink(t, p.A, netnstest.A4)
	ctx, cancel := context.WithCancel(context.Background())
	wg := steadyTraffic(t, ctx, p)
	var l []*alert.Incident
	ok := waitFor(10*time.Second, func() bool {
		l = incidentsJSON(t, "--db", db)
		return len(l) == 1 && l[0].Actions[1].State == alert.StateFailed
	})
	cancel()
	wg.Wait()
	if !ok {
		t.Fatalf("incidents %+v", l)
	}
	// What the API answers, as is.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socketFor("", db))
	}}}
	resp, err := hc.Get("http://dstwatch/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(answer, []byte(`"http://`+ln.Addr().String()+`/[redacted]"`)) {
		t.Errorf("API answer lacks the redacted URL:\n%s", answer)
	}
	code, table, stderr := runCmd(t, "incidents", "expire", "--db", db, "1")
	if code != 0 {
		t.Fatalf("expire: %d %s", code, stderr)
	}
	d.stop(t)
	mu.Lock()
	// The window the daemon closes at its stop may fire the rule again.
	if len(got) < 2 || got[0] != "fired /hook/S3CRET-A?token=S3CRET-B" || got[1] != "expired /hook/S3CRET-A?token=S3CRET-B" ||
		slices.ContainsFunc(got, func(s string) bool { return !strings.HasSuffix(s, " /hook/S3CRET-A?token=S3CRET-B") }) {
		t.Errorf("webhook received %q, want the full URL, fired then expired", got)
	}
	mu.Unlock()
	file, err := os.ReadFile(filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	recLog, _ := os.ReadFile(filepath.Join(dir, "records.log"))
	_, csv, _ := runCmd(t, "incidents", "--db", db, "--format", "json")
	for what, b := range map[string]string{"daemon log": d.stderr.String(), "alerts.db": string(file), "API answer": string(answer),
		"record log": string(recLog), "incidents expire": table + stderr, "incidents --format json": csv} {
		if strings.Contains(b, "S3CRET") {
			t.Errorf("%s holds a webhook secret:\n%s", what, b)
		}
	}
	if !strings.Contains(d.stderr.String(), "127.0.0.1") || !strings.Contains(d.stderr.String(), "[redacted]") {
		t.Errorf("the failing webhook's error is not in the log, redacted:\n%s", d.stderr.String())
	}
}

// The rules file is read once at start, so that it may be a pipe, as with
// bash's --rules <(make-rules): a second read would wait for a writer that
// has gone.
func TestRulesReadOnceFromAPipe(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.fifo")
	if err := syscall.Mkfifo(rules, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(rules, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.WriteString("rules:\n  - name: big\n    per: remote\n    metric: tx_bytes\n    threshold: 10k\n    period: 1h\n    expire: 1h\n    actions: [{log: true}]\n")
		f.Close()
	}()
	file := filepath.Join(dir, "t.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, udpTo(netip.MustParseAddr("203.0.113.9"), 30, testStart)); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1", "--db", filepath.Join(dir, "w.db"), "--rules", rules, "--socket", "none")
		done <- result{code, stderr}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		// Let the waiting read see an end of file, so the run can finish.
		if f, err := os.OpenFile(rules, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("run waited for a second read of the rules pipe")
	}
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	rec, _ := os.ReadFile(filepath.Join(dir, "records.log"))
	if !strings.Contains(string(rec), "!!! alert fired rule=big id=1 key=203.0.113.9") {
		t.Errorf("the rules from the pipe did not fire:\n%s\n%s", rec, r.stderr)
	}
}

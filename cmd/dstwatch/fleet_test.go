package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/chtest"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/internal/pcapgen"
	"github.com/dstwatch/dstwatch/query"
)

// fleetCapture writes a pcapgen capture of span from start and returns it.
func fleetCapture(t *testing.T, seed int64, start time.Time, span time.Duration) string {
	t.Helper()
	pkts := pcapgen.Mixed(seed, 4000, 300, testLocal, start, span, pcapgen.LinkEthernet)
	file := filepath.Join(t.TempDir(), "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	return file
}

// dstwatch runs the real binary and returns its stdout, failing on a
// non-zero exit.
func dstwatch(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("dstwatch %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func replayArgs(file, db, country, asn string, more ...string) []string {
	return append([]string{"run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db,
		"--geoip", country, "--geoip", asn, "--socket", "none", "--max-remotes", "120"}, more...)
}

// The local answers and the fleet's for the same range print the same,
// byte for byte, in every grouping and format.
func sameAnswers(t *testing.T, db string, fleetArgs []string, rng ...string) {
	t.Helper()
	for _, by := range []string{"remote", "country", "asn", "window", "service"} {
		for _, format := range []string{"json", "csv", "table"} {
			for _, extra := range [][]string{nil, {"--top", "7", "--sort", "packets"}, {"--direction", "rx"}, {"--remote", "203.0.113.0/24", "--remote", "2001:db8::/32"}, {"--country", "JP"}} {
				args := append(append([]string{"query", "--by", by, "--format", format, "--utc"}, rng...), extra...)
				local := dstwatch(t, append(args, "--db", db)...)
				fleet := dstwatch(t, append(args, fleetArgs...)...)
				if local != fleet {
					t.Fatalf("%v: local and fleet answers differ\nlocal:\n%s\nfleet:\n%s", args, local, fleet)
				}
				if strings.Contains(local, "no stored window") || len(local) < 50 {
					t.Fatalf("%v: empty answer: %s", args, local)
				}
			}
		}
	}
}

// A replay through the real binary with --clickhouse exports every window
// before it exits; ClickHouse then answers query exactly as the local
// database does, per remote, country, AS and window.
func TestFleetReplayEqualsLocal(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	country, asn := geoFiles(t)
	file := fleetCapture(t, 11, testStart, 3*time.Minute)
	db := filepath.Join(t.TempDir(), "w.db")
	dstwatch(t, replayArgs(file, db, country, asn, "--clickhouse", srv.DSN("fleet"), "--host-name", "proxy1")...)
	rng := []string{"--from", rfc(testStart), "--to", rfc(testStart.Add(4 * time.Minute))}
	sameAnswers(t, db, []string{"--clickhouse", srv.DSN("fleet")}, rng...)
	sameAnswers(t, db, []string{"--clickhouse", srv.DSN("fleet"), "--host", "proxy1"}, "--last", "5")

	var hosts []hostJSON
	out := dstwatch(t, append([]string{"query", "--by", "host", "--format", "json", "--clickhouse", srv.DSN("fleet")}, rng...)...)
	if err := json.Unmarshal([]byte(out), &hosts); err != nil || len(hosts) != 1 || hosts[0].Host != "proxy1" {
		t.Fatalf("--by host: %v %s", err, out)
	}
	if got, want := hosts[0].CountsJSON, localTotal(t, db, rng); got != want {
		t.Fatalf("--by host: %+v, local total %+v", got, want)
	}
}

// localTotal is the sum of the local --by country rows.
func localTotal(t *testing.T, db string, rng []string) query.CountsJSON {
	t.Helper()
	var rows []query.CountryJSON
	if err := json.Unmarshal([]byte(dstwatch(t, append([]string{"query", "--by", "country", "--format", "json", "--db", db}, rng...)...)), &rows); err != nil {
		t.Fatal(err)
	}
	var c query.CountsJSON
	for _, r := range rows {
		c.TxPackets += r.TxPackets
		c.TxBytes += r.TxBytes
		c.RxPackets += r.RxPackets
		c.RxBytes += r.RxBytes
	}
	return c
}

// ClickHouse stops; the daemon stores windows meanwhile and is killed -9
// while it waits to export them; it runs again (storing the same windows a
// second time, so they merge) while ClickHouse is still down; then
// ClickHouse comes back and a third run sends the backlog. Every window is
// in ClickHouse once, with the counts of the local database, nothing
// missing, nothing twice.
func TestFleetOutageKill(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	country, asn := geoFiles(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	url := srv.DSN("fleet")
	first := fleetCapture(t, 21, testStart, 2*time.Minute)
	second := fleetCapture(t, 22, testStart.Add(2*time.Minute), 2*time.Minute)
	dstwatch(t, replayArgs(first, db, country, asn, "--clickhouse", url, "--host-name", "h")...)

	srv.Stop()
	for _, file := range []string{second, first} {
		cmd := exec.Command(binary(t), replayArgs(file, db, country, asn, "--clickhouse", url, "--host-name", "h")...)
		errb := &syncBuffer{}
		cmd.Stderr = errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The writer says "stopped" once every window is stored; the
		// export then keeps retrying, and dies with the process.
		if !waitFor(30*time.Second, func() bool {
			return strings.Contains(errb.String(), "msg=stopped") && strings.Contains(errb.String(), "clickhouse export failed")
		}) {
			cmd.Process.Kill()
			t.Fatalf("no store and failed export seen:\n%s", errb.String())
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	srv.Restart()
	// A replay of nothing new: the start sends what the outbox holds.
	empty := filepath.Join(dir, "empty.pcap")
	if err := pcapgen.Write(empty, pcapgen.PcapMicro, pcapgen.LinkEthernet, nil); err != nil {
		t.Fatal(err)
	}
	dstwatch(t, replayArgs(empty, db, country, asn, "--clickhouse", url, "--host-name", "h")...)
	rng := []string{"--from", rfc(testStart), "--to", rfc(testStart.Add(5 * time.Minute))}
	sameAnswers(t, db, []string{"--clickhouse", url}, rng...)
	// Every window of the file exactly once in the windows table.
	c, err := srv.Open("fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rows, distinct uint64
	if err := c.QueryRow(t.Context(), "SELECT count(), uniqExact(window_start) FROM fleet.windows FINAL").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, db)); rows != uint64(n) || distinct != uint64(n) {
		t.Fatalf("clickhouse holds %d window rows (%d distinct), the local database %d windows", rows, distinct, n)
	}
}

// Two ClickHouse servers are the two shards of a cluster; two hosts each
// write to their own, one with a password file. The fleet query through
// the Distributed tables equals the two local answers added up, and
// --by host gives each host's own total.
func TestFleetTwoShards(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	shards := chtest.Cluster(t, 2)
	country, asn := geoFiles(t)
	dir := t.TempDir()
	pass := filepath.Join(dir, "ch.pass")
	if err := os.WriteFile(pass, []byte(chtest.User+"\n"+chtest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dbs := []string{filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")}
	for i, name := range []string{"a", "b"} {
		file := fleetCapture(t, int64(31+i), testStart, 3*time.Minute)
		args := replayArgs(file, dbs[i], country, asn, "--clickhouse", shards[i].DSN("fleet"), "--host-name", name, "--clickhouse-cluster", "fleet")
		if i == 1 {
			args = append(args, "--clickhouse-password-file", pass)
		}
		dstwatch(t, args...)
	}
	rng := []string{"--from", rfc(testStart), "--to", rfc(testStart.Add(4 * time.Minute))}
	fleetArgs := []string{"--clickhouse", shards[0].DSN("fleet"), "--distributed"}

	// Per remote: the fleet's rows are the sums of the hosts' rows.
	want := map[string]query.CountsJSON{}
	for _, db := range dbs {
		var rows []query.RemoteJSON
		json.Unmarshal([]byte(dstwatch(t, append([]string{"query", "--by", "remote", "--format", "json", "--top", "0", "--db", db}, rng...)...)), &rows)
		for _, r := range rows {
			c := want[r.Addr]
			c.TxPackets += r.TxPackets
			c.TxBytes += r.TxBytes
			c.RxPackets += r.RxPackets
			c.RxBytes += r.RxBytes
			want[r.Addr] = c
		}
	}
	var rows []query.RemoteJSON
	if err := json.Unmarshal([]byte(dstwatch(t, append(append([]string{"query", "--by", "remote", "--format", "json", "--top", "0"}, rng...), fleetArgs...)...)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) || len(rows) < 100 {
		t.Fatalf("fleet has %d remotes, the hosts %d", len(rows), len(want))
	}
	for _, r := range rows {
		if r.CountsJSON != want[r.Addr] {
			t.Fatalf("remote %s: fleet %+v, hosts' sum %+v", r.Addr, r.CountsJSON, want[r.Addr])
		}
	}
	var hosts []hostJSON
	if err := json.Unmarshal([]byte(dstwatch(t, append(append([]string{"query", "--by", "host", "--format", "json"}, rng...), fleetArgs...)...)), &hosts); err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 {
		t.Fatalf("--by host: %+v", hosts)
	}
	for _, h := range hosts {
		db := dbs[map[string]int{"a": 0, "b": 1}[h.Host]]
		if w := localTotal(t, db, rng); h.CountsJSON != w {
			t.Fatalf("host %s: fleet %+v, local %+v", h.Host, h.CountsJSON, w)
		}
	}
	// One host through the Distributed table is that host's own query.
	sameAnswers(t, dbs[1], append(fleetArgs, "--host", "b"), rng...)
	// Reading with the password file works too.
	dstwatch(t, append(append([]string{"query", "--by", "country", "--clickhouse-password-file", pass}, rng...), fleetArgs...)...)
}

// Live capture in a namespace, exporting to a ClickHouse in the same
// namespace: status and /metrics show the export and its lag, also while
// ClickHouse is down for a while; after SIGTERM (which drains the export)
// ClickHouse answers per remote, window, country and service exactly as
// the local database does.
func TestFleetLiveCapture(t *testing.T) {
	t.Parallel() // in namespaces of its own, with a ClickHouse of its own
	p := netnstest.New(t)
	srv := chtest.StartIn(t, p.A)
	country, asn := geoFiles(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t, p.A))
	from := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--geoip", country, "--geoip", asn, "--window", "1s",
		"--metrics", target, "--clickhouse", srv.DSN("fleet"), "--host-name", "live1")
	sink(t, p.A, netnstest.A4)
	sink(t, p.A, netnstest.A6)
	sink(t, p.B, netnstest.B4)
	sink(t, p.B, netnstest.B6)
	send(t, p.B, netnstest.B4, netnstest.A4, 60, 1000)
	send(t, p.A, netnstest.A4, netnstest.B4, 40, 300)
	send(t, p.A, netnstest.A6, netnstest.B6, 20, 1000)
	time.Sleep(3 * time.Second)

	var status string
	if !waitFor(10*time.Second, func() bool {
		status = dstwatch(t, "status", "--db", db)
		return strings.Contains(status, "export     clickhouse 127.0.0.1:") && strings.Contains(status, "as host live1") &&
			strings.Contains(status, " 0 behind (0s), 0 errors")
	}) {
		t.Fatalf("status has no caught-up export line:\n%s", status)
	}
	resp, err := nsClient(p.A).Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"dstwatch_export_lag_windows 0", "dstwatch_export_lag_seconds 0"} {
		if !strings.Contains(string(body), m+"\n") {
			t.Fatalf("/metrics lacks %q", m)
		}
	}
	// ClickHouse goes away while traffic goes on: status says the export
	// fails and falls behind; once it is back, the backlog goes out.
	srv.Stop()
	send(t, p.B, netnstest.B4, netnstest.A4, 10, 500)
	if !waitFor(15*time.Second, func() bool {
		status = dstwatch(t, "status", "--db", db)
		return strings.Contains(status, "export failing") && !strings.Contains(status, " 0 behind")
	}) {
		t.Fatalf("status does not show the failing export:\n%s", status)
	}
	srv.Restart()
	if !waitFor(30*time.Second, func() bool {
		status = dstwatch(t, "status", "--db", db)
		return strings.Contains(status, " 0 behind (0s)") && !strings.Contains(status, "export failing")
	}) {
		t.Fatalf("the export did not catch up:\n%s", status)
	}
	send(t, p.B, netnstest.B6, netnstest.A6, 30, 800) // in the window SIGTERM closes
	d.stop(t)
	to := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	rng := []string{"--from", rfc(from), "--to", rfc(to)}
	for _, by := range []string{"remote", "window", "country", "service"} {
		args := append([]string{"query", "--by", by, "--format", "json"}, rng...)
		local := dstwatch(t, append(args, "--db", db)...)
		var out bytes.Buffer
		cmd := netnstest.Command(p.A, binary(t), append(args, "--clickhouse", srv.DSN("fleet"))...)
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if out.String() != local || len(local) < 100 {
			t.Fatalf("--by %s: fleet and local differ\nlocal:\n%s\nfleet:\n%s", by, local, out.String())
		}
	}
}

// A replay that stores hundreds of windows at once exits only after the
// export sent them all: the drain at the end of --read, not a race.
func TestFleetReplayDrains(t *testing.T) {
	t.Parallel() // a ClickHouse of its own, on ports of its own
	srv := chtest.Start(t)
	country, asn := geoFiles(t)
	pkts := pcapgen.Mixed(41, 20000, 300, testLocal, testStart, 3*time.Hour, pcapgen.LinkEthernet)
	file := filepath.Join(t.TempDir(), "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "w.db")
	dstwatch(t, replayArgs(file, db, country, asn, "--clickhouse", srv.DSN("fleet"), "--host-name", "h", "--retention", "0")...)
	c, err := srv.Open("fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n uint64
	if err := c.QueryRow(t.Context(), "SELECT count() FROM fleet.windows FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if local := len(readAll(t, db)); n != uint64(local) || local < 500 {
		t.Fatalf("clickhouse has %d windows after the replay exited, the local database %d", n, local)
	}
}

// Bad fleet flags give one line and exit 2 (usage) or 1, never a trace,
// and nothing is started.
func TestFleetBadFlags(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "x.db")
	for _, tc := range []struct {
		code int
		want string
		args []string
	}{
		{2, "want clickhouse://HOST:9000/DATABASE", []string{"run", "--read", "x.pcap", "--local", "198.51.100.1", "--db", db, "--clickhouse", "http://127.0.0.1:8123/db"}},
		{2, "do not belong in the url", []string{"run", "--read", "x.pcap", "--local", "198.51.100.1", "--db", db, "--clickhouse", "clickhouse://u:p@127.0.0.1/db"}},
		{2, "--host-name needs --clickhouse", []string{"run", "--read", "x.pcap", "--local", "198.51.100.1", "--db", db, "--host-name", "a"}},
		{1, "--clickhouse-password-file: open", []string{"run", "--read", "x.pcap", "--local", "198.51.100.1", "--db", db, "--clickhouse", "clickhouse://127.0.0.1/db", "--clickhouse-password-file", filepath.Join(dir, "missing")}},
		{2, "need --clickhouse", []string{"query", "--db", db, "--host", "a"}},
		{2, "--by \"host\"", []string{"query", "--db", db, "--by", "host"}},
		{2, "need --by service", []string{"query", "--clickhouse", "clickhouse://127.0.0.1:1/db", "--port", "443"}},
		{1, "clickhouse 127.0.0.1:1", []string{"query", "--clickhouse", "clickhouse://127.0.0.1:1/db"}},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a refused run created the database")
	}
}

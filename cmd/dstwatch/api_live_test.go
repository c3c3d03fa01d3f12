package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// runBackground runs the CLI in-process until the returned stop is called.
func runBackground(t *testing.T, args ...string) (out, errb *syncBuffer, stop func() int) {
	t.Helper()
	out, errb = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, out, errb) }()
	var code int
	stopped := false
	stop = func() int {
		if !stopped {
			cancel()
			select {
			case code = <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("%v did not stop within 5s of cancel", args)
			}
			stopped = true
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return out, errb, stop
}

// waitFor polls cond every 50ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// While the daemon holds the DB, query, tail and status answer over the
// socket, quickly and exactly; after it stops, query reads the file and
// prints the very same thing.
func TestLiveQueryWhileRunning(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	sock := filepath.Join(dir, "dstwatch.sock")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s")

	st, err := os.Lstat(sock)
	if err != nil {
		t.Fatalf("no socket beside the DB: %v", err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", st.Mode())
	}

	jsonTail, jsonTailErr, stopJSONTail := runBackground(t, "tail", "-f", "--format", "json", "-n", "0", "--db", db)
	textTail, _, stopTextTail := runBackground(t, "tail", "-f", "-n", "0", "--db", db)

	sink(t, p.A, netnstest.A4)
	sink(t, p.B, netnstest.B6)
	send(t, p.B, netnstest.B4, netnstest.A4, 60, 72)  // rx, IP length 100
	send(t, p.A, netnstest.A6, netnstest.B6, 15, 452) // tx, IP length 500
	sent := time.Now()
	// Every window that held the traffic has closed (1s + 500ms grace) once
	// to has passed by that much.
	to := sent.Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(to.Add(1200 * time.Millisecond)))
	rangeArgs := []string{"--db", db, "--from", sent.Add(-time.Minute).UTC().Format(time.RFC3339), "--to", to.UTC().Format(time.RFC3339)}

	start := time.Now()
	code, apiJSON, stderr := runCmd(t, append([]string{"query", "--by", "remote", "--format", "json"}, rangeArgs...)...)
	if took := time.Since(start); took > time.Second {
		t.Errorf("query over the API took %v, want under a second", took)
	}
	if code != 0 {
		t.Fatalf("query while running: exit %d: %s", code, stderr)
	}
	var rows []remoteRow
	if err := json.Unmarshal([]byte(apiJSON), &rows); err != nil {
		t.Fatalf("%v\n%s", err, apiJSON)
	}
	want := map[string]remoteRow{
		netnstest.B4.String(): {Addr: netnstest.B4.String(), RxPackets: 60, RxBytes: 60 * 100},
		netnstest.B6.String(): {Addr: netnstest.B6.String(), TxPackets: 15, TxBytes: 15 * 500},
	}
	got := map[string]remoteRow{}
	for _, r := range rows {
		got[r.Addr] = r
	}
	for addr, w := range want {
		if got[addr] != w {
			t.Errorf("%s: got %+v, want %+v", addr, got[addr], w)
		}
	}
	_, apiTable, _ := runCmd(t, append([]string{"query", "--by", "window", "--utc"}, rangeArgs...)...)
	_, apiCountry, _ := runCmd(t, append([]string{"query", "--by", "country", "--format", "csv"}, rangeArgs...)...)

	// status answers from the daemon.
	code, out, stderr := runCmd(t, "status", "--db", db)
	if code != 0 || !strings.Contains(out, p.IfA) || !strings.Contains(out, netnstest.A4.String()) || !strings.Contains(out, "windows stored") {
		t.Errorf("status: exit %d\n%s%s", code, out, stderr)
	}

	// tail -f saw the windows appear: JSON lines with our remote, and
	// record-log blocks.
	if !waitFor(2*time.Second, func() bool { return strings.Contains(jsonTail.String(), netnstest.B4.String()) }) {
		t.Errorf("tail -f --format json never showed %v:\n%s\n%s", netnstest.B4, jsonTail.String(), jsonTailErr.String())
	}
	for i, line := range strings.Split(strings.TrimSpace(jsonTail.String()), "\n") {
		var w struct {
			Start string `json:"start"`
		}
		if err := json.Unmarshal([]byte(line), &w); err != nil || w.Start == "" {
			t.Errorf("tail json line %d is not a window: %q", i, line)
		}
	}
	if !waitFor(2*time.Second, func() bool { return strings.Contains(textTail.String(), "=== window 1s") }) {
		t.Errorf("tail -f never showed a window block:\n%s", textTail.String())
	}
	if c := stopJSONTail(); c != 0 {
		t.Errorf("tail -f --format json exit %d after cancel", c)
	}
	if c := stopTextTail(); c != 0 {
		t.Errorf("tail -f exit %d after cancel", c)
	}

	d.stop(t)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after stop: %v", err)
	}
	// The same questions, now answered from the file.
	code, _, stderr = runCmd(t, "status", "--db", db)
	if code != 3 || !strings.Contains(stderr, "not running") {
		t.Errorf("status without daemon: exit %d, %q", code, stderr)
	}
	for _, tc := range []struct {
		name, api string
		args      []string
	}{
		{"remote json", apiJSON, []string{"--by", "remote", "--format", "json"}},
		{"window table", apiTable, []string{"--by", "window", "--utc"}},
		{"country csv", apiCountry, []string{"--by", "country", "--format", "csv"}},
	} {
		code, out, stderr := runCmd(t, append(append([]string{"query"}, tc.args...), rangeArgs...)...)
		if code != 0 {
			t.Fatalf("%s from the file: exit %d: %s", tc.name, code, stderr)
		}
		if out != tc.api {
			t.Errorf("%s differs between API and file:\n--- api\n%s\n--- file\n%s", tc.name, tc.api, out)
		}
	}
}

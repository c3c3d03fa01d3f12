package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/internal/pcapgen"
)

// alertScripts writes mark.sh and unmark.sh into dir: each appends its
// arguments as a line to dir/marked or dir/unmarked.
func alertScripts(t *testing.T, dir string) {
	t.Helper()
	for name, out := range map[string]string{"mark.sh": "marked", "unmark.sh": "unmarked"} {
		body := "#!/bin/sh\necho \"$@\" >> " + filepath.Join(dir, out) + "\necho done \"$1\"\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return strings.Split(s, "\n")
	}
	return nil
}

func incidentsJSON(t *testing.T, args ...string) []*alert.Incident {
	t.Helper()
	code, out, stderr := runCmd(t, append([]string{"incidents", "--format", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("incidents: exit %d: %s", code, stderr)
	}
	var l []*alert.Incident
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return l
}

// webhookSink records the events posted to it.
type webhookSink struct {
	mu     sync.Mutex
	events []string
}

func (s *webhookSink) handler(w http.ResponseWriter, r *http.Request) {
	var b alert.WebhookBody
	json.NewDecoder(r.Body).Decode(&b)
	s.mu.Lock()
	s.events = append(s.events, b.Event+" "+b.Incident.Rule+" "+b.Incident.Key)
	s.mu.Unlock()
}

func (s *webhookSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.events...)
}

// A replay fires a host rule; with no daemon running, 'incidents' reads
// alerts.db and 'incidents expire' runs the undo itself, once.
func TestReplayFiresAndIncidentsWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	alertScripts(t, dir)
	hooks := &webhookSink{}
	srv := httptest.NewServer(http.HandlerFunc(hooks.handler))
	defer srv.Close()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte(`rules:
  - name: busy-host
    metric: pps
    threshold: 1
    windows: 2
    expire: 1h
    actions:
      - exec: [`+dir+`/mark.sh, "{remote}", "{rule}", "{window}"]
        undo: [`+dir+`/unmark.sh, "{remote}"]
      - webhook: `+srv.URL+`
      - log: true
`), 0o644)
	pkts := pcapgen.Mixed(3, 3000, 50, testLocal, testStart, 2*time.Minute, pcapgen.LinkEthernet)
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "w.db")
	code, _, stderr := runCmd(t, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--rules", rules, "--socket", "none")
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	// The second window fires; later ones are refires of the same incident.
	if got := fileLines(t, filepath.Join(dir, "marked")); len(got) != 1 || !strings.HasPrefix(got[0], "host busy-host 2026-11-22T13:20:00Z") {
		t.Fatalf("marked %q", got)
	}
	rec, _ := os.ReadFile(filepath.Join(dir, "records.log"))
	if n := strings.Count(string(rec), "!!! alert fired rule=busy-host id=1 key=host pps"); n != 1 {
		t.Errorf("record log has %d fired lines:\n%s", n, rec)
	}
	st, err := os.Stat(filepath.Join(dir, "alerts.db"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("alerts.db: %v %v", err, st)
	}

	l := incidentsJSON(t, "--db", db)
	if len(l) != 1 || l[0].State != alert.Active || l[0].Refires < 3 || l[0].Actions[0].State != alert.StateDone ||
		l[0].Actions[1].State != alert.StateDone || l[0].Actions[2].State != alert.StateDone || !strings.Contains(l[0].Actions[0].Output, "done host") {
		t.Fatalf("incidents %+v", l)
	}
	code, out, _ := runCmd(t, "incidents", "--db", db, "--utc")
	if code != 0 || !strings.Contains(out, "busy-host") || !strings.Contains(out, "active") || !strings.Contains(out, "3 done") {
		t.Errorf("table: %d\n%s", code, out)
	}

	code, out, stderr = runCmd(t, "incidents", "expire", "1", "--db", db, "--rules", rules)
	if code != 0 || !strings.Contains(out, "incident 1 (rule busy-host, host): closed") || !strings.Contains(out, "undo done") {
		t.Fatalf("expire: %d %s %s", code, out, stderr)
	}
	if got := fileLines(t, filepath.Join(dir, "unmarked")); len(got) != 1 || got[0] != "host" {
		t.Errorf("unmarked %q", got)
	}
	if got := hooks.got(); len(got) != 2 || got[0] != "fired busy-host host" || got[1] != "expired busy-host host" {
		t.Errorf("webhook events %q", got)
	}
	code, _, stderr = runCmd(t, "incidents", "expire", "--db", db, "1")
	if code != 1 || !strings.Contains(stderr, "incident 1: incident already ended") {
		t.Errorf("second expire: %d %s", code, stderr)
	}
	if got := fileLines(t, filepath.Join(dir, "unmarked")); len(got) != 1 {
		t.Errorf("unmarked %q", got)
	}
	code, out, _ = runCmd(t, "incidents", "--db", db, "--state", "closed", "--format", "csv")
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(rows) != 2 || !strings.HasPrefix(rows[0], "id,state,rule,key") || !strings.HasPrefix(rows[1], "1,closed,busy-host,host,") {
		t.Errorf("csv: %d\n%s", code, out)
	}
	if l := incidentsJSON(t, "--db", db, "--state", "open"); len(l) != 0 {
		t.Errorf("open after expire: %+v", l)
	}
	for _, c := range [][]string{{"incidents", "expire", "x"}, {"incidents", "--state", "gone"}, {"incidents", "--format", "xml"}} {
		if code, _, _ := runCmd(t, append(c, "--db", db)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", c, code)
		}
	}
	// Nothing there at all: an empty answer, not an error.
	empty := filepath.Join(t.TempDir(), "none.db")
	if l := incidentsJSON(t, "--db", empty); len(l) != 0 {
		t.Errorf("%+v", l)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(empty), "alerts.db")); err == nil {
		t.Error("listing created alerts.db")
	}
}

// A rules file that does not validate stops the start with its line and
// field, before any file is created.
func TestRunRejectsBadRules(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("rules:\n  - name: x\n    metric: rx_bps\n    threshold: 10 bananas\n    expire: 1h\n    actions: [{log: true}]\n"), 0o644)
	db := filepath.Join(dir, "sub", "w.db")
	code, _, stderr := runCmd(t, "run", "--read", "/dev/null", "--local", "198.51.100.1", "--db", db, "--rules", rules)
	if code != 1 || !strings.Contains(stderr, rules+`:4: rule "x": threshold: "10 bananas"`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Dir(db)); err == nil {
		t.Error("database directory created despite the bad rules")
	}
	os.WriteFile(rules, []byte("rules:\n  - name: x\n    scope: {service: 443}\n"), 0o644)
	code, _, stderr = runCmd(t, "run", "--read", "/dev/null", "--local", "198.51.100.1", "--db", db, "--rules", rules)
	if code != 1 || !strings.Contains(stderr, `scope.service: "443": want PORT/PROTO`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

func liveRules(t *testing.T, dir string) string {
	t.Helper()
	alertScripts(t, dir)
	rules := filepath.Join(dir, "rules.yaml")
	// steadyTraffic sends about 300 to 500 packets a second.
	if err := os.WriteFile(rules, []byte(`rules:
  - name: flood
    per: remote
    metric: rx_pps
    threshold: 100
    windows: 2
    expire: 3s
    actions:
      - exec: [`+dir+`/mark.sh, "{prefix}", "{rate}"]
        undo: [`+dir+`/unmark.sh, "{prefix}"]
      - log: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return rules
}

// Live: traffic over the threshold fires the rule for that remote; once it
// stops, the incident expires after 3 s and the undo runs. An invalid
// rules file on SIGHUP is refused and the rules in use stay.
func TestLiveAlertFiresAndExpires(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	rules := liveRules(t, dir)
	db := filepath.Join(dir, "live.db")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--rules", rules)
	sink(t, p.A, netnstest.A4)
	ctx, cancel := context.WithCancel(context.Background())
	wg := steadyTraffic(t, ctx, p)
	defer func() { cancel(); wg.Wait() }()

	marked := filepath.Join(dir, "marked")
	if !waitFor(8*time.Second, func() bool { return fileLines(t, marked) != nil }) {
		cancel()
		t.Fatalf("the rule did not fire:\n%s", d.stderr.String())
	}
	if got := fileLines(t, marked); len(got) != 1 || !strings.HasPrefix(got[0], "198.51.100.2/32 ") || !strings.Contains(got[0], "pkt/s") {
		t.Errorf("marked %q", got)
	}
	// While the daemon runs, incidents come over its socket.
	l := incidentsJSON(t, "--db", db, "--state", "open")
	if len(l) != 1 || l[0].Key != "198.51.100.2" || l[0].State != alert.Active {
		t.Fatalf("open incidents %+v", l)
	}

	// A broken rules file on SIGHUP: logged, the old rules stay.
	os.WriteFile(rules, []byte("rules:\n  - name: flood\n    metric: rx_pps\n    treshold: 1\n"), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(3*time.Second, func() bool {
		return strings.Contains(d.stderr.String(), "alert rules not reloaded") && strings.Contains(d.stderr.String(), "rules.yaml:4: rule.treshold: unknown field")
	}) {
		t.Errorf("SIGHUP with a bad file:\n%s", d.stderr.String())
	}
	time.Sleep(1500 * time.Millisecond) // still over: refires extend the expiry
	cancel()
	wg.Wait()
	unmarked := filepath.Join(dir, "unmarked")
	start := time.Now()
	if !waitFor(10*time.Second, func() bool { return fileLines(t, unmarked) != nil }) {
		t.Fatalf("no undo after the traffic stopped:\n%s", d.stderr.String())
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("undone %v after the traffic stopped; the expiry is 3 s after the last window over", took)
	}
	time.Sleep(500 * time.Millisecond)
	if got := fileLines(t, unmarked); len(got) != 1 || got[0] != "198.51.100.2/32" {
		t.Errorf("unmarked %q", got)
	}
	if got := fileLines(t, marked); len(got) != 1 {
		t.Errorf("marked %q: the action ran more than once", got)
	}
	l = incidentsJSON(t, "--db", db)
	if len(l) != 1 || l[0].State != alert.Closed || l[0].Refires == 0 || l[0].Undo[1].State != alert.StateDone {
		t.Errorf("incidents %+v", l)
	}
	d.stop(t)
	rec, _ := os.ReadFile(filepath.Join(dir, "records.log"))
	if !strings.Contains(string(rec), "!!! alert fired rule=flood id=1 key=198.51.100.2") || !strings.Contains(string(rec), "!!! alert expired rule=flood id=1") {
		t.Errorf("record log lacks the alert lines")
	}
}

// Live, real process: kill -9 after the rule fired, restart once the
// expiry has passed: the undo runs at the start, once; further crashes and
// restarts run nothing again.
func TestLiveAlertKill9ExactlyOnce(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	rules := liveRules(t, dir)
	db := filepath.Join(dir, "live.db")
	args := []string{"-i", p.IfA, "--db", db, "--window", "1s", "--rules", rules}
	d := startDaemon(t, p.A, args...)
	sink(t, p.A, netnstest.A4)
	ctx, cancel := context.WithCancel(context.Background())
	wg := steadyTraffic(t, ctx, p)
	marked, unmarked := filepath.Join(dir, "marked"), filepath.Join(dir, "unmarked")
	fired := waitFor(8*time.Second, func() bool { return fileLines(t, marked) != nil })
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	cancel()
	wg.Wait()
	if !fired {
		t.Fatalf("the rule did not fire:\n%s", d.stderr.String())
	}
	if got := fileLines(t, unmarked); got != nil {
		t.Fatalf("undone before the expiry: %q", got)
	}
	time.Sleep(4 * time.Second) // the expiry passes while no daemon runs

	d = startDaemon(t, p.A, args...)
	if !waitFor(5*time.Second, func() bool { return fileLines(t, unmarked) != nil }) {
		t.Fatalf("the missed expiry did not run at the start:\n%s", d.stderr.String())
	}
	time.Sleep(300 * time.Millisecond)
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d = startDaemon(t, p.A, args...)
	time.Sleep(1500 * time.Millisecond)
	d.stop(t)
	if got := fileLines(t, unmarked); len(got) != 1 || got[0] != "198.51.100.2/32" {
		t.Errorf("unmarked %q, want exactly one line", got)
	}
	if got := fileLines(t, marked); len(got) != 1 {
		t.Errorf("marked %q, want exactly one line", got)
	}
	l := incidentsJSON(t, "--db", db)
	if len(l) != 1 || l[0].State != alert.Closed || l[0].Reason != "expired" {
		t.Fatalf("incidents %+v", l)
	}
	// The action's record: done, or interrupted when the kill landed
	// between its exit and its record; never pending, never twice.
	if s := l[0].Actions[0].State; s != alert.StateDone && s != alert.StateInterrupted {
		t.Errorf("action state %s", s)
	}
	_ = io.Discard
}

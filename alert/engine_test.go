package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// clock is a test clock: time moves only when the test says.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type remote struct {
	addr    string
	cc      string
	rxBytes uint64
	txBytes uint64
}

// win is a window of length 20 s starting n windows after the clock's start.
func win(n int, rs ...remote) *window.Window {
	w := &window.Window{Start: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC).Add(time.Duration(n) * 20 * time.Second), Length: 20 * time.Second}
	for _, r := range rs {
		w.Remotes = append(w.Remotes, window.Remote{Addr: netip.MustParseAddr(r.addr), Country: r.cc,
			Counts: window.Counts{RxBytes: r.rxBytes, RxPackets: r.rxBytes / 1000, TxBytes: r.txBytes, TxPackets: r.txBytes / 1000}})
	}
	return w
}

// mbit is the bytes of a 20 s window at that many Mbit/s.
func mbit(n float64) uint64 { return uint64(n * 1e6 / 8 * 20) }

type rig struct {
	t     *testing.T
	dir   string
	path  string
	clock *clock
	e     *Engine
	rules *RuleSet
	rec   *strings.Builder
	recMu sync.Mutex
}

func newRig(t *testing.T, rulesYAML string) *rig {
	t.Helper()
	dir := t.TempDir()
	rg := &rig{t: t, dir: dir, path: filepath.Join(dir, "alerts.db"), clock: newClock(), rec: &strings.Builder{}}
	yml := strings.ReplaceAll(rulesYAML, "$DIR", dir)
	rs, err := ParseRules([]byte(yml))
	if err != nil {
		t.Fatalf("rules: %v\n%s", err, yml)
	}
	rg.rules = rs
	rg.open()
	return rg
}

// open opens the engine (again), as a daemon start does, without its
// background loops: the test drives evaluation and expiry with its clock.
func (rg *rig) open() {
	rg.t.Helper()
	e, err := Open(Options{Path: rg.path, Now: rg.clock.Now, Record: func(t time.Time, line string) {
		rg.recMu.Lock()
		rg.rec.WriteString(line + "\n")
		rg.recMu.Unlock()
	}})
	if err != nil {
		rg.t.Fatal(err)
	}
	e.SetRules(rg.rules)
	rg.e = e
	rg.t.Cleanup(func() { e.cancel(); e.jobsWG.Wait(); e.db.Close() })
}

func (rg *rig) recover() {
	rg.t.Helper()
	if err := rg.e.Recover(); err != nil {
		rg.t.Fatal(err)
	}
	rg.e.Wait()
}

func (rg *rig) eval(w *window.Window) {
	rg.t.Helper()
	if err := rg.e.Evaluate(w); err != nil {
		rg.t.Fatal(err)
	}
	rg.e.Wait()
}

func (rg *rig) due() {
	rg.t.Helper()
	if err := rg.e.RunDue(); err != nil {
		rg.t.Fatal(err)
	}
	rg.e.Wait()
}

// crash closes the file without Close's orderly stop: what the file holds is
// what a kill -9 would have left.
func (rg *rig) crash() {
	rg.e.cancel()
	rg.e.jobsWG.Wait()
	rg.e.db.Close()
}

func (rg *rig) list() []*Incident {
	rg.t.Helper()
	l, err := rg.e.List(false)
	if err != nil {
		rg.t.Fatal(err)
	}
	return l
}

const floodRules = `
rules:
  - name: flood
    per: remote
    metric: rx_bps
    threshold: 50M
    windows: 3
    expire: 1h
    cooldown: 10m
    actions:
      - exec: [$DIR/mark.sh, "{prefix}", "{rule}", "{rate}", "{window}"]
        undo: [$DIR/unmark.sh, "{prefix}"]
        timeout: 5s
      - log: true
`

func floodRig(t *testing.T) *rig {
	dir := t.TempDir()
	script(t, dir, "mark.sh", `echo "$@" >> `+dir+`/marked; echo marking "$1"; echo "$DSTWATCH_EVENT $DSTWATCH_INCIDENT" >&2`)
	script(t, dir, "unmark.sh", `echo "$@" >> `+dir+`/unmarked; echo unmarking "$1"`)
	rg := newRig(t, strings.ReplaceAll(floodRules, "$DIR", dir))
	rg.dir = dir
	return rg
}

func TestFiresPerRemoteAfterConsecutiveWindowsAndExpiresOnce(t *testing.T) {
	rg := floodRig(t)
	hot := remote{addr: "203.0.113.9", cc: "NL", rxBytes: mbit(60)}
	calm := remote{addr: "198.51.100.7", rxBytes: mbit(10)}
	// Two windows over, one under, then three over: only the last three count.
	rg.eval(win(0, hot, calm))
	rg.eval(win(1, hot, calm))
	rg.eval(win(2, calm))
	rg.eval(win(3, hot, calm))
	rg.eval(win(4, hot, calm))
	if n := len(rg.list()); n != 0 {
		t.Fatalf("fired after 2 consecutive windows: %d incidents", n)
	}
	rg.eval(win(5, hot, calm))
	l := rg.list()
	if len(l) != 1 {
		t.Fatalf("want 1 incident, got %d", len(l))
	}
	inc := l[0]
	if inc.Key != "203.0.113.9" || inc.Prefix != "203.0.113.9/32" || inc.Country != "NL" || inc.State != Active {
		t.Errorf("incident %+v", inc)
	}
	a := inc.Actions[0]
	if a.State != StateDone || *a.Exit != 0 || !strings.Contains(a.Output, "marking 203.0.113.9/32") || !strings.Contains(a.Output, "fire 1") {
		t.Errorf("exec result %+v", a)
	}
	if got := lines(t, filepath.Join(rg.dir, "marked")); len(got) != 1 || got[0] != "203.0.113.9/32 flood 60.0Mbit/s 2026-11-22T13:01:40Z" {
		t.Errorf("marked: %q", got)
	}
	if !strings.Contains(rg.rec.String(), "!!! alert fired rule=flood id=1 key=203.0.113.9 rx_bps 60.0Mbit/s > 50.0Mbit/s") {
		t.Errorf("record log: %q", rg.rec.String())
	}

	// Still hot ten minutes later: a refire extends, no action runs again.
	rg.clock.Add(10 * time.Minute)
	rg.eval(win(6, hot))
	inc, _ = rg.e.Get(1)
	if inc.Refires != 1 || !inc.Expires.Equal(rg.clock.Now().Add(time.Hour)) {
		t.Errorf("refire: refires %d expires %v", inc.Refires, inc.Expires)
	}
	if n := len(lines(t, filepath.Join(rg.dir, "marked"))); n != 1 {
		t.Errorf("action ran %d times", n)
	}

	rg.clock.Add(59 * time.Minute)
	rg.due()
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); got != nil {
		t.Fatalf("undone before the extended expiry: %q", got)
	}
	rg.clock.Add(time.Minute)
	rg.due()
	rg.due()
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); len(got) != 1 || got[0] != "203.0.113.9/32" {
		t.Fatalf("unmarked: %q", got)
	}
	inc, _ = rg.e.Get(1)
	if inc.State != Closed || inc.Reason != "expired" || inc.Ended == nil || len(inc.Undo) != 2 ||
		inc.Undo[0].Kind != KindLog || inc.Undo[1].Kind != KindUndo || inc.Undo[1].State != StateDone || !strings.Contains(inc.Undo[1].Output, "unmarking") {
		t.Errorf("closed incident %+v", inc)
	}
	if !strings.Contains(rg.rec.String(), "!!! alert expired rule=flood id=1") {
		t.Errorf("record log: %q", rg.rec.String())
	}

	// Cool-down: hot again at once does not fire; after 10 minutes it does.
	for i := 7; i < 10; i++ {
		rg.eval(win(i, hot))
	}
	if n := len(rg.list()); n != 1 {
		t.Fatalf("fired during the cool-down: %d incidents", n)
	}
	rg.clock.Add(10 * time.Minute)
	rg.eval(win(10, hot))
	if l := rg.list(); len(l) != 2 || l[1].State != Active {
		t.Fatalf("after the cool-down: %d incidents", len(l))
	}
}

func TestRefireRecordKeepsExpiry(t *testing.T) {
	rg := newRig(t, `
rules:
  - name: r
    metric: rx_pps
    threshold: 10
    expire: 30s
    on_refire: record
    actions: [{log: true}]
`)
	rg.eval(win(0, remote{addr: "192.0.2.1", rxBytes: 1_000_000}))
	first, _ := rg.e.Get(1)
	rg.clock.Add(20 * time.Second)
	rg.eval(win(1, remote{addr: "192.0.2.1", rxBytes: 2_000_000}))
	inc, _ := rg.e.Get(1)
	if inc.Key != "host" || inc.Refires != 1 || !inc.Expires.Equal(first.Expires) || inc.Peak != 100 {
		t.Errorf("%+v", inc)
	}
}

func TestBytesOverPeriodAndPrefixScope(t *testing.T) {
	rg := newRig(t, `
rules:
  - name: quota
    scope: {remote: 203.0.113.0/24, country: [nl]}
    per: prefix
    prefix_v4: 28
    metric: tx_bytes
    threshold: 1Mi
    period: 1m
    expire: 1h
    actions: [{log: true}]
`)
	// 400 KiB a window from two /28 neighbours: 800 KiB per window in the
	// /28, over 1 MiB once two windows are summed. Out of scope: another
	// country, another prefix.
	rs := []remote{{addr: "203.0.113.1", cc: "NL", txBytes: 400 << 10}, {addr: "203.0.113.2", cc: "NL", txBytes: 400 << 10},
		{addr: "203.0.113.100", cc: "DE", txBytes: 10 << 20}, {addr: "192.0.2.1", cc: "NL", txBytes: 10 << 20}}
	rg.eval(win(0, rs...))
	if n := len(rg.list()); n != 0 {
		t.Fatalf("fired on one window: %d", n)
	}
	rg.eval(win(1, rs...))
	l := rg.list()
	if len(l) != 1 || l[0].Key != "203.0.113.0/28" || l[0].Value != 1600<<10 {
		t.Fatalf("incidents %+v", l)
	}
}

func TestHangingCommandTimesOut(t *testing.T) {
	dir := t.TempDir()
	script(t, dir, "hang.sh", `echo started; sleep 30 & wait; echo never`)
	rg := newRig(t, `
rules:
  - name: h
    metric: rx_bps
    threshold: 1
    expire: 1h
    actions:
      - exec: [`+dir+`/hang.sh]
        timeout: 300ms
`)
	start := time.Now()
	rg.eval(win(0, remote{addr: "192.0.2.1", rxBytes: 100}))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	a := rg.list()[0].Actions[0]
	if a.State != StateFailed || !strings.Contains(a.Error, "timed out after 300ms") || a.Output != "started\n" {
		t.Errorf("%+v", a)
	}
}

func TestWebhookRetriesWithBackoff(t *testing.T) {
	var hits atomic.Int32
	var mu sync.Mutex
	var times []time.Time
	var bodies []WebhookBody
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		var b WebhookBody
		json.NewDecoder(r.Body).Decode(&b)
		bodies = append(bodies, b)
		mu.Unlock()
		switch n := hits.Add(1); {
		case n <= 2:
			w.WriteHeader(http.StatusServiceUnavailable) // retried
		case n == 3:
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusBadRequest) // final
		}
	}))
	defer srv.Close()
	rg := newRig(t, `
rules:
  - name: hook
    per: remote
    metric: rx_bps
    threshold: 1
    expire: 1m
    actions:
      - webhook: `+srv.URL+`/alert
        retries: 4
        backoff: 50ms
`)
	rg.eval(win(0, remote{addr: "192.0.2.1", rxBytes: 100}))
	a := rg.list()[0].Actions[0]
	if a.State != StateDone || a.Attempts != 3 || a.Status != 200 {
		t.Errorf("fire webhook %+v", a)
	}
	mu.Lock()
	if len(times) != 3 || times[1].Sub(times[0]) < 50*time.Millisecond || times[2].Sub(times[1]) < 100*time.Millisecond {
		t.Errorf("backoff: %v", times)
	}
	if b := bodies[2]; b.Event != "fired" || b.Incident.Key != "192.0.2.1" || b.Incident.Rule != "hook" || b.Incident.State != Active {
		t.Errorf("body %+v", b)
	}
	mu.Unlock()
	rg.clock.Add(time.Minute)
	rg.due()
	u := rg.list()[0].Undo[0]
	if u.State != StateFailed || u.Attempts != 1 || u.Status != 400 || u.Error != "HTTP 400" {
		t.Errorf("expire webhook %+v", u)
	}
	mu.Lock()
	if b := bodies[3]; b.Event != "expired" || b.Incident.State != Expiring || b.Incident.Reason != "expired" {
		t.Errorf("body %+v", b)
	}
	mu.Unlock()
}

func TestWebhookUnreachableGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nobody listens there now
	rg := newRig(t, `
rules:
  - name: hook
    metric: rx_bps
    threshold: 1
    expire: 1m
    actions: [{webhook: "`+url+`", retries: 2, backoff: 10ms, timeout: 1s}]
`)
	rg.eval(win(0, remote{addr: "192.0.2.1", rxBytes: 100}))
	a := rg.list()[0].Actions[0]
	if a.State != StateFailed || a.Attempts != 3 || !strings.Contains(a.Error, "refused") {
		t.Errorf("%+v", a)
	}
}

// A restart after the expiry passed runs the undo at once, exactly once.
func TestRestartAfterExpiryRunsUndoOnce(t *testing.T) {
	rg := floodRig(t)
	for i := range 3 {
		rg.eval(win(i, remote{addr: "203.0.113.9", rxBytes: mbit(60)}))
	}
	rg.crash()
	rg.clock.Add(2 * time.Hour) // the daemon was down past the expiry
	rg.open()
	rg.recover()
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); len(got) != 1 {
		t.Fatalf("unmarked %q", got)
	}
	for range 2 { // and again: nothing left to do
		rg.crash()
		rg.open()
		rg.recover()
	}
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); len(got) != 1 {
		t.Fatalf("unmarked %q", got)
	}
	if got := lines(t, filepath.Join(rg.dir, "marked")); len(got) != 1 {
		t.Fatalf("marked %q", got)
	}
	if inc, _ := rg.e.Get(1); inc.State != Closed {
		t.Errorf("state %s", inc.State)
	}
}

// A crash after the incident was recorded but before its action started:
// the action is pending and runs at the next start, once.
func TestCrashBeforeActionStartedRunsItAfterRestart(t *testing.T) {
	rg := floodRig(t)
	rg.e.beforeStart = func(uint64) bool { return false }
	for i := range 3 {
		rg.eval(win(i, remote{addr: "203.0.113.9", rxBytes: mbit(60)}))
	}
	if inc, _ := rg.e.Get(1); inc.Actions[0].State != StatePending {
		t.Fatalf("state %s", inc.Actions[0].State)
	}
	rg.crash()
	rg.open()
	rg.recover()
	rg.crash()
	rg.open()
	rg.recover()
	if got := lines(t, filepath.Join(rg.dir, "marked")); len(got) != 1 {
		t.Fatalf("marked %q", got)
	}
	if inc, _ := rg.e.Get(1); inc.Actions[0].State != StateDone || inc.Actions[1].State != StateDone {
		t.Errorf("%+v", inc.Actions)
	}
}

// A crash between "undo started" and "undo done": the undo is recorded as
// interrupted and never run again (at most once); the incident closes.
func TestCrashDuringUndoIsNotRepeated(t *testing.T) {
	rg := floodRig(t)
	for i := range 3 {
		rg.eval(win(i, remote{addr: "203.0.113.9", rxBytes: mbit(60)}))
	}
	rg.e.beforeRun = func(inc *Incident, r *Result) bool { return r.Kind != KindUndo }
	rg.clock.Add(time.Hour)
	rg.due()
	inc, _ := rg.e.Get(1)
	if inc.State != Expiring || inc.Undo[1].State != StateStarted {
		t.Fatalf("before the crash: %s %+v", inc.State, inc.Undo)
	}
	rg.crash()
	rg.open()
	rg.recover()
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); got != nil {
		t.Fatalf("an interrupted undo ran again: %q", got)
	}
	inc, _ = rg.e.Get(1)
	if inc.State != Closed || inc.Undo[1].State != StateInterrupted || !strings.Contains(inc.Undo[1].Error, "may or may not") {
		t.Errorf("after: %s %+v", inc.State, inc.Undo)
	}
}

func TestExpireEarly(t *testing.T) {
	rg := floodRig(t)
	for i := range 3 {
		rg.eval(win(i, remote{addr: "203.0.113.9", rxBytes: mbit(60)}))
	}
	inc, err := rg.e.Expire(context.Background(), 1, "expired early by request")
	if err != nil || inc.State != Closed || inc.Reason != "expired early by request" {
		t.Fatalf("%v %+v", err, inc)
	}
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); len(got) != 1 {
		t.Fatalf("unmarked %q", got)
	}
	if _, err := rg.e.Expire(context.Background(), 1, "again"); err != ErrClosed {
		t.Errorf("second expire: %v", err)
	}
	if _, err := rg.e.Expire(context.Background(), 9, "x"); err != ErrNotFound {
		t.Errorf("unknown id: %v", err)
	}
	rg.clock.Add(2 * time.Hour)
	rg.due()
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); len(got) != 1 {
		t.Fatalf("unmarked %q", got)
	}
}

// The undo of an incident runs as fired, even when its rule is gone.
func TestRuleRemovedStillExpires(t *testing.T) {
	rg := floodRig(t)
	for i := range 3 {
		rg.eval(win(i, remote{addr: "203.0.113.9", rxBytes: mbit(60)}))
	}
	rg.e.SetRules(&RuleSet{})
	rg.eval(win(3, remote{addr: "203.0.113.9", rxBytes: mbit(60)}))
	rg.clock.Add(time.Hour)
	rg.due()
	if got := lines(t, filepath.Join(rg.dir, "unmarked")); len(got) != 1 || got[0] != "203.0.113.9/32" {
		t.Fatalf("unmarked %q", got)
	}
}

// Start's loops with their real timers: a 1 s expiry passes by itself. In
// a synctest bubble that second passes as soon as everything waits, rather
// than on the wall clock.
func TestStartExpiresOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		script(t, dir, "unmark.sh", `echo "$1" >> `+dir+`/unmarked`)
		rs, err := ParseRules([]byte(`
rules:
  - name: r
    metric: rx_bps
    threshold: 1
    expire: 1s
    actions: [{exec: [/bin/true], undo: [` + dir + `/unmark.sh, "{remote}"]}]
`))
		if err != nil {
			t.Fatal(err)
		}
		e, err := Open(Options{Path: filepath.Join(dir, "alerts.db")})
		if err != nil {
			t.Fatal(err)
		}
		e.SetRules(rs)
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		w := win(0, remote{addr: "192.0.2.1", rxBytes: 100})
		e.Observe(w)
		for lines(t, filepath.Join(dir, "unmarked")) == nil && time.Since(start) < 5*time.Second {
			time.Sleep(20 * time.Millisecond)
		}
		if d := time.Since(start); d < time.Second || d > 2*time.Second {
			t.Errorf("undone after %v, want after the 1s expiry", d)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if got := lines(t, filepath.Join(dir, "unmarked")); len(got) != 1 || got[0] != "host" {
			t.Fatalf("unmarked %q", got)
		}
		st, _ := os.Stat(filepath.Join(dir, "alerts.db"))
		if st.Mode().Perm() != 0o640 {
			t.Errorf("mode %v", st.Mode())
		}
	})
}

func TestReadOnlyList(t *testing.T) {
	rg := floodRig(t)
	for i := range 3 {
		rg.eval(win(i, remote{addr: "203.0.113.9", rxBytes: mbit(60)}))
	}
	rg.crash()
	e, err := Open(Options{Path: rg.path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.CloseReadOnly()
	l, err := e.List(true)
	if err != nil || len(l) != 1 {
		t.Fatalf("%v %d", err, len(l))
	}
	_ = io.Discard
}

// A service scope: per host it is the service's exact total; per remote it
// sees the remotes the service kept rows for.
func TestServiceScope(t *testing.T) {
	rg := newRig(t, `
rules:
  - name: web-out
    scope: {service: 443/tcp/out}
    metric: tx_bytes
    threshold: 1Mi
    period: 20s
    expire: 1h
    actions: [{log: true}]
  - name: ssh-in-per-remote
    scope: {service: [22/tcp/in]}
    per: remote
    metric: rx_bytes
    threshold: 100Ki
    period: 20s
    expire: 1h
    actions: [{log: true}]
`)
	https := window.MakeServiceKey(window.ProtoTCP, window.SideOut, 443)
	ssh := window.MakeServiceKey(window.ProtoTCP, window.SideIn, 22)
	dns := window.MakeServiceKey(window.ProtoUDP, window.SideOut, 53)
	w := win(0, remote{addr: "203.0.113.1", txBytes: 3 << 20}, remote{addr: "203.0.113.2", rxBytes: 200 << 10})
	w.Services = []window.Service{
		{Key: https, Counts: window.Counts{TxBytes: 2 << 20}, Other: window.Counts{TxBytes: 2 << 20}},
		{Key: dns, Counts: window.Counts{TxBytes: 1 << 20}, Top: []window.Remote{{Addr: netip.MustParseAddr("203.0.113.1"), Counts: window.Counts{TxBytes: 1 << 20}}}},
		{Key: ssh, Counts: window.Counts{RxBytes: 200 << 10}, Top: []window.Remote{{Addr: netip.MustParseAddr("203.0.113.2"), Counts: window.Counts{RxBytes: 200 << 10}}}},
	}
	rg.eval(w)
	got := map[string]float64{}
	for _, in := range rg.list() {
		got[in.Rule+" "+in.Key] = in.Value
	}
	if len(got) != 2 || got["web-out host"] != 2<<20 || got["ssh-in-per-remote 203.0.113.2"] != 200<<10 {
		t.Fatalf("incidents %v: want web-out on the host at 2 MiB (not the 3 MiB of all traffic) and ssh for 203.0.113.2", got)
	}
}

// Cool-downs that ran out are deleted when another incident closes, so a
// per-remote rule on a host that sees scans does not keep one per remote
// forever.
func TestExpiredCooldownsArePruned(t *testing.T) {
	rg := newRig(t, `
rules:
  - name: busy
    per: remote
    metric: rx_bytes
    threshold: 1Ki
    period: 20s
    expire: 1m
    cooldown: 5m
    actions: [{log: true}]
`)
	cooldowns := func() int {
		n := 0
		rg.e.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketCooldown).Stats().KeyN; return nil })
		return n
	}
	rg.eval(win(0, remote{addr: "203.0.113.1", rxBytes: 1 << 20}))
	rg.clock.Add(2 * time.Minute)
	rg.due()
	if n := cooldowns(); n != 1 {
		t.Fatalf("%d cool-downs after the first incident closed, want 1", n)
	}
	rg.clock.Add(10 * time.Minute) // the first cool-down has run out
	rg.eval(win(40, remote{addr: "203.0.113.2", rxBytes: 1 << 20}))
	rg.clock.Add(2 * time.Minute)
	rg.due()
	if n := cooldowns(); n != 1 {
		t.Fatalf("%d cool-downs after the second incident closed, want 1 (the run-out one pruned)", n)
	}
}

// A daily quota sums what the database holds: half the bytes stored before
// a restart, half after, and it fires after the restart. Before, the sums
// lived in memory only and began from zero at every start.
func TestPeriodSumSeededFromStorageAfterRestart(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(filepath.Join(dir, "w.db"), storage.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := ParseRules([]byte(`
rules:
  - name: quota
    per: remote
    metric: tx_bytes
    threshold: 1M
    period: 1d
    expire: 1h
    actions: [{log: true}]
`))
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	path := filepath.Join(dir, "alerts.db")
	open := func() *Engine {
		e, err := Open(Options{Path: path, Now: clk.Now, History: db.Windows})
		if err != nil {
			t.Fatal(err)
		}
		e.SetRules(rs)
		return e
	}
	// Each window: 100 kB to the quota's remote; 600 kB before the restart.
	heavy := remote{addr: "203.0.113.9", txBytes: 100_000}
	store := func(e *Engine, n int) {
		w := win(n, heavy, remote{addr: "198.51.100.7", txBytes: 10})
		if err := db.Put([]*window.Window{w}); err != nil {
			t.Fatal(err)
		}
		if err := e.Evaluate(w); err != nil {
			t.Fatal(err)
		}
		e.Wait()
	}
	e := open()
	for n := 0; n < 6; n++ {
		store(e, n)
	}
	if l, _ := e.List(false); len(l) != 0 {
		t.Fatalf("fired on 600 kB: %+v", l)
	}
	e.cancel()
	e.db.Close()

	// Restarted a few windows later (a gap), then 500 kB more: 1.1 MB in
	// the day, over the quota.
	e = open()
	defer func() { e.cancel(); e.db.Close() }()
	for n := 9; n < 13; n++ {
		store(e, n)
	}
	if l, _ := e.List(false); len(l) != 0 {
		t.Fatalf("fired on 1.0 MB: %+v", l)
	}
	store(e, 13)
	l, _ := e.List(false)
	if len(l) != 1 || l[0].Key != "203.0.113.9" || l[0].Value != 1_100_000 {
		t.Fatalf("after the restart: %+v", l)
	}

	// A reload that changes the rule seeds it again from storage.
	rs2, _ := ParseRules([]byte(`
rules:
  - name: quota2
    per: remote
    metric: tx_bytes
    threshold: 1.15M
    period: 1d
    expire: 1h
    actions: [{log: true}]
`))
	e.SetRules(rs2)
	store(e, 14)
	l, _ = e.List(false)
	if len(l) != 2 || l[1].Rule != "quota2" || l[1].Value != 1_200_000 {
		t.Fatalf("after the reload: %+v", l)
	}

	// A period shorter than what is stored: only its windows count.
	rs3, _ := ParseRules([]byte(`
rules:
  - name: hourly
    per: remote
    metric: tx_bytes
    threshold: 450k
    period: 100s
    expire: 1h
    actions: [{log: true}]
`))
	e.SetRules(rs3)
	store(e, 15) // windows 11..15: 500 kB
	l, _ = e.List(false)
	if len(l) != 3 || l[2].Rule != "hourly" || l[2].Value != 500_000 {
		t.Fatalf("a 100 s period: %+v", l)
	}
}

// The incidents file is checked before bbolt may write to it: a window
// database, a device, a file that is not bbolt and someone else's bbolt
// file are refused and left as they were.
func TestOpenRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	win := filepath.Join(dir, "w.db")
	wdb, err := storage.Open(win, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wdb.Close()
	other := filepath.Join(dir, "other.db")
	b, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err })
	b.Close()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("precious\n"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{win, "is a window database"},
		{other, `bucket "theirs"`},
		{text, "not a dstwatch database"},
		{"/dev/null", "not a regular file"},
	} {
		before, _ := os.ReadFile(tc.path)
		if e, err := Open(Options{Path: tc.path}); err == nil || !strings.Contains(err.Error(), tc.want) {
			if e != nil {
				e.Close()
			}
			t.Errorf("Open %s: %v, want %q", tc.path, err, tc.want)
		}
		if after, _ := os.ReadFile(tc.path); string(after) != string(before) {
			t.Errorf("Open %s changed it", tc.path)
		}
	}
}

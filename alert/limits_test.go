package alert

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// concurrency reads a file of "+" and "-" lines, one per action start and
// end, and returns how many runs there were and the most at once.
func concurrency(t *testing.T, path string) (runs, most int) {
	t.Helper()
	now := 0
	for _, l := range lines(t, path) {
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

func storm(n int) *window.Window {
	var rs []remote
	for i := range n {
		rs = append(rs, remote{addr: fmt.Sprintf("203.0.113.%d", i%250+1), rxBytes: 1000})
		if i >= 250 {
			rs[i].addr = fmt.Sprintf("198.51.100.%d", i-249)
		}
	}
	return win(0, rs...)
}

// One packet from each of 300 sources with a per-remote exec rule: no
// more incidents open than the limits allow, no more commands run at once
// than limits.running, the rest is counted as suppressed, and evaluation
// does not wait for the commands.
func TestStormOfRemotesIsBounded(t *testing.T) {
	dir := t.TempDir()
	script(t, dir, "act.sh", `echo + >> `+dir+`/runs; sleep 0.05; echo - >> `+dir+`/runs`)
	rg := newRig(t, `
limits:
  incidents_per_window: 50
  active: 60
  running: 2
rules:
  - name: scan
    per: remote
    metric: rx_pps
    threshold: 0.01
    expire: 1h
    actions:
      - exec: [`+dir+`/act.sh, "{remote}"]
`)
	w := storm(300)
	start := time.Now()
	if err := rg.e.Evaluate(w); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("evaluation took %v: it waited for the actions", took)
	}
	// While the actions run: never more than 2 at once, the rest queued.
	mostRunning, mostQueued := 0, 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		st, _ := rg.e.Stats()
		mostRunning, mostQueued = max(mostRunning, st.Running), max(mostQueued, st.Queued)
		if n, _ := concurrency(t, filepath.Join(dir, "runs")); n == 50 && st.Running == 0 {
			break
		}
	}
	if mostRunning != 2 || mostQueued < 40 {
		t.Errorf("while the actions ran: at most %d running, %d queued", mostRunning, mostQueued)
	}
	rg.e.Wait()
	w1 := storm(300)
	w1.Start = w.End()
	rg.eval(w1)
	runs, most := concurrency(t, filepath.Join(dir, "runs"))
	if runs != 60 || most > 2 || most < 1 {
		t.Errorf("%d runs, %d at once; want 60 runs (50 in the first window, 10 more up to 60 active), at most 2 at once", runs, most)
	}
	if n := len(rg.list()); n != 60 {
		t.Errorf("%d incidents", n)
	}
	st, err := rg.e.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Suppressed{PerWindow: 250, Active: 240}
	if got := st.ByRule["scan"]; got.PerWindow != want.PerWindow || got.Active != want.Active || got.Queue != 0 ||
		got.Last == nil || !got.Last.Equal(w1.Start) || st.Suppressed.Total() != 490 || st.Active != 60 {
		t.Errorf("stats %+v, by rule %+v", st, got)
	}
	rec := rg.rec.String()
	for _, s := range []string{
		`!!! alert suppressed rule=scan window=2026-11-22T13:00:00Z incidents=250 reason=per_window limit="50 new incidents per rule and window"`,
		`!!! alert suppressed rule=scan window=2026-11-22T13:00:20Z incidents=240 reason=active limit="60 open incidents"`,
	} {
		if !strings.Contains(rec, s) {
			t.Errorf("record log lacks %s:\n%s", s, rec)
		}
	}
	// The counts are in the file: a restart (or 'incidents' without a
	// daemon) sees them.
	rg.crash()
	rg.open()
	if st, _ := rg.e.Stats(); st.Suppressed.Total() != 490 {
		t.Errorf("after a restart: %+v", st)
	}
}

// Past limits.running, new incidents queue up to limits.queued; more are
// suppressed for the queue. The heaviest remotes get the incidents.
func TestStormQueueBound(t *testing.T) {
	dir := t.TempDir()
	script(t, dir, "act.sh", `echo + >> `+dir+`/runs; sleep 0.3; echo - >> `+dir+`/runs`)
	rg := newRig(t, `
limits: {running: 1, queued: 2, incidents_per_window: 100}
rules:
  - name: scan
    per: remote
    metric: rx_bps
    threshold: 1
    expire: 1h
    actions:
      - exec: [`+dir+`/act.sh]
`)
	var rs []remote
	for i := 1; i <= 10; i++ {
		rs = append(rs, remote{addr: fmt.Sprintf("192.0.2.%d", i), rxBytes: uint64(1000 * i)})
	}
	rg.eval(win(0, rs...))
	l := rg.list()
	if len(l) != 3 || l[0].Key != "192.0.2.10" || l[1].Key != "192.0.2.9" || l[2].Key != "192.0.2.8" {
		t.Fatalf("incidents %+v", l)
	}
	if runs, most := concurrency(t, filepath.Join(dir, "runs")); runs != 3 || most != 1 {
		t.Errorf("%d runs, %d at once", runs, most)
	}
	if st, _ := rg.e.Stats(); st.Suppressed.Queue != 7 || st.Suppressed.Total() != 7 {
		t.Errorf("stats %+v", st)
	}
}

func TestLimitsParse(t *testing.T) {
	rs, err := ParseRules([]byte("limits: {running: 8}\nrules: []\n"))
	if err != nil || rs.Limits != (Limits{PerWindow: 20, Active: 500, Running: 8, Queued: 100}) {
		t.Fatalf("%+v %v", rs, err)
	}
	if rs, _ := ParseRules(nil); rs.Limits != DefaultLimits {
		t.Errorf("empty file: %+v", rs.Limits)
	}
	for doc, want := range map[string]string{
		"limits: {running: 0}\n": `1: limits.running: "0": want a whole number from 1 to 256`,
		"limits: {runing: 2}\n":  `1: limits.runing: unknown field`,
		"limits: {queued: -1}\n": `limits.queued: "-1"`,
		"limits: [1]\n":          `limits must be a mapping`,
		"limits:\n  active: x\n": `2: limits.active: "x"`,
	} {
		if _, err := ParseRules([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", doc, err, want)
		}
	}
}

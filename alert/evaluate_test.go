package alert

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// The evaluator alone: rules and windows in, candidates out, no file.

func mustRules(t *testing.T, yml string) *RuleSet {
	t.Helper()
	rs, err := ParseRules([]byte(yml))
	if err != nil {
		t.Fatalf("rules: %v\n%s", err, yml)
	}
	return rs
}

func keys(cs []candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.rule.Name+"/"+c.key)
	}
	return out
}

func TestEvaluatorStreakAndGap(t *testing.T) {
	rs := mustRules(t, `
rules:
  - name: flood
    per: remote
    metric: rx_bps
    threshold: 50M
    windows: 3
    expire: 1h
    actions: [{log: true}]
`)
	v := newEvaluator(slog.New(slog.DiscardHandler), nil)
	hot := remote{addr: "203.0.113.7", rxBytes: mbit(80)}
	cold := remote{addr: "203.0.113.8", rxBytes: mbit(10)}
	for _, tc := range []struct {
		name string
		w    *window.Window
		want int
	}{
		{"first window", win(0, hot, cold), 0},
		{"second window", win(1, hot, cold), 0},
		{"third consecutive window fires", win(2, hot, cold), 1},
		{"fourth still over", win(3, hot, cold), 1},
		{"below threshold ends the streak", win(4, cold), 0},
		{"over again: streak restarts", win(5, hot), 0},
		{"a gap: nothing is consecutive", win(7, hot), 0},
		{"after the gap", win(8, hot), 0},
		{"three since the gap", win(9, hot), 1},
	} {
		got := v.evaluate(rs, tc.w)
		if len(got) != tc.want {
			t.Fatalf("%s: candidates %v, want %d", tc.name, keys(got), tc.want)
		}
		if len(got) == 1 && (got[0].key != "203.0.113.7" || got[0].value != 80e6 || !got[0].window.Equal(tc.w.Start)) {
			t.Fatalf("%s: candidate %+v", tc.name, got[0])
		}
	}
}

// A rule changed by a reload starts again; one left alone keeps its streak;
// a rule removed is forgotten.
func TestEvaluatorReload(t *testing.T) {
	const a = `
  - name: a
    metric: rx_bps
    threshold: 1M
    windows: 2
    expire: 1h
    actions: [{log: true}]
`
	const b = `
  - name: b
    metric: rx_bps
    threshold: 1M
    windows: 2
    expire: 1h
    actions: [{log: true}]
`
	v := newEvaluator(slog.New(slog.DiscardHandler), nil)
	r := remote{addr: "198.51.100.1", rxBytes: mbit(5)}
	if got := v.evaluate(mustRules(t, "rules:"+a+b), win(0, r)); len(got) != 0 {
		t.Fatalf("first window: %v", keys(got))
	}
	bChanged := `
  - name: b
    metric: rx_bps
    threshold: 2M
    windows: 2
    expire: 1h
    actions: [{log: true}]
`
	got := v.evaluate(mustRules(t, "rules:"+a+bChanged), win(1, r))
	if len(got) != 1 || got[0].rule.Name != "a" {
		t.Fatalf("after reload: %v, want only a (b changed, so its streak restarts)", keys(got))
	}
	v.evaluate(mustRules(t, "rules:"+a), win(2, r))
	if _, ok := v.state["b"]; ok {
		t.Fatal("state of a removed rule kept")
	}
}

// A bytes rule over a period sums its previous windows from storage when
// its evaluation starts, and within a rule the heaviest key comes first.
func TestEvaluatorSeedsPeriodAndOrders(t *testing.T) {
	rs := mustRules(t, `
rules:
  - name: quota
    per: remote
    metric: tx_bytes
    threshold: 1Mi
    period: 1m
    expire: 1h
    actions: [{log: true}]
`)
	// The period is 3 windows: the one under test (2) and 0 and 1, read
	// from storage; -1 is before the period.
	stored := []*window.Window{
		win(-1, remote{addr: "192.0.2.1", txBytes: 5 << 20}),
		win(0, remote{addr: "192.0.2.1", txBytes: 600 << 10}),
		win(1, remote{addr: "192.0.2.1", txBytes: 100 << 10}, remote{addr: "192.0.2.2", txBytes: 900 << 10}),
	}
	var asked [2]time.Time
	hist := func(_ context.Context, from, to time.Time, fn func(*window.Window) error) error {
		asked = [2]time.Time{from, to}
		for _, w := range stored {
			if !w.Start.Before(from) && w.Start.Before(to) {
				if err := fn(w); err != nil {
					return err
				}
			}
		}
		return nil
	}
	v := newEvaluator(slog.New(slog.DiscardHandler), hist)
	w := win(2, remote{addr: "192.0.2.1", txBytes: 400 << 10}, remote{addr: "192.0.2.2", txBytes: 300 << 10})
	got := v.evaluate(rs, w)
	if !asked[0].Equal(win(0).Start) || !asked[1].Equal(w.Start) {
		t.Fatalf("seed asked for %v, want %v to %v", asked, win(0).Start, w.Start)
	}
	if len(got) != 2 || got[0].key != "192.0.2.2" || got[0].value != 1200<<10 || got[1].key != "192.0.2.1" || got[1].value != 1100<<10 {
		t.Fatalf("candidates %v %+v", keys(got), got)
	}
	// The next window drops window 0 from the sum without reading storage.
	asked = [2]time.Time{}
	got = v.evaluate(rs, win(3, remote{addr: "192.0.2.1", txBytes: 100 << 10}))
	if !asked[0].IsZero() {
		t.Fatalf("storage read again for a consecutive window: %v", asked)
	}
	if len(got) != 1 || got[0].key != "192.0.2.2" || got[0].value != 1200<<10 {
		t.Fatalf("next window: %v %+v", keys(got), got)
	}
}

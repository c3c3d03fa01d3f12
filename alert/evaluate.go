package alert

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// evaluator is the pure half of evaluation: rules and windows in, the keys
// over their thresholds out. It keeps the streaks and period sums between
// windows and reads stored windows only through hist (to seed a period
// sum), so tests drive it without any file. The Engine calls it under
// evalMu; it is not safe for concurrent use on its own.
type evaluator struct {
	log *slog.Logger
	// hist reads stored windows with from <= Start < to, oldest first; may
	// be nil (Options.History).
	hist  func(ctx context.Context, from, to time.Time, fn func(*window.Window) error) error
	state map[string]*ruleState // rule name -> what it remembers
}

func newEvaluator(log *slog.Logger, hist func(ctx context.Context, from, to time.Time, fn func(*window.Window) error) error) evaluator {
	return evaluator{log: log, hist: hist, state: map[string]*ruleState{}}
}

// ruleState is what evaluation remembers of a rule between windows.
type ruleState struct {
	rule   *Rule
	last   time.Time // start of the last window seen
	length time.Duration
	streak map[string]int // key -> consecutive windows over the threshold
	hist   []histWindow   // bytes metrics: the previous windows of the period, oldest first
}

// histWindow is a previous window's traffic per key, for period sums.
type histWindow struct {
	start time.Time
	aggs  map[string]*keyAgg
}

// keyAgg is a key's traffic in one window.
type keyAgg struct {
	counts  window.Counts
	prefix  string
	country string
	asn     uint32
}

// candidate is a key over its rule's threshold for long enough in window:
// the evaluator's decision, which apply turns into an incident, a refire
// or a suppressed count.
type candidate struct {
	rule   *Rule
	key    string
	agg    *keyAgg
	value  float64
	window time.Time
}

// seed reads the stored windows of r's period before the window at end:
// those of the same length from from on. Windows missing from the database
// (the daemon was down) are missing from the sum, as they would be had it
// run on; what the database no longer holds as raw windows (--retention)
// is not seen either.
func (v *evaluator) seed(r *Rule, from, end time.Time, length time.Duration) []histWindow {
	if v.hist == nil {
		return nil
	}
	var out []histWindow
	// The sink's goroutine has no request that could go away: the read is
	// bounded by the rule's period.
	err := v.hist(context.Background(), from, end, func(w *window.Window) error {
		if w.Length == length && !w.Start.Before(from) && w.Start.Before(end) {
			out = append(out, histWindow{w.Start, aggregate(r, w)})
		}
		return nil
	})
	if err != nil {
		v.log.Error("alerts: read stored windows for a period sum; summing from now on", "rule", r.Name, "err", err)
		return nil
	}
	if len(out) > 0 {
		v.log.Info("alerts: period sum seeded from storage", "rule", r.Name, "windows", len(out), "from", out[0].start)
	}
	return out
}

func sameRule(a, b *Rule) bool {
	return fmt.Sprintf("%+v", *a) == fmt.Sprintf("%+v", *b)
}

// aggregate sums w's traffic in r's scope per key.
func aggregate(r *Rule, w *window.Window) map[string]*keyAgg {
	out := map[string]*keyAgg{}
	filtered := len(r.Remotes)+len(r.Countries)+len(r.ASNs) > 0
	remotes := w.Remotes
	if len(r.Services) > 0 {
		// A service scope: the whole host's share is the services' exact
		// totals; per remote (or prefix), only the remotes each service
		// kept rows for (its heaviest, --service-top per window) are seen.
		remotes = nil
		for i := range w.Services {
			sv := &w.Services[i]
			if !slices.ContainsFunc(r.Services, func(m ServiceMatch) bool { return m.matches(sv.Key) }) {
				continue
			}
			if r.Per == PerHost && !filtered {
				a := out["host"]
				if a == nil {
					a = &keyAgg{}
					out["host"] = a
				}
				a.counts.Add(sv.Counts)
				continue
			}
			remotes = append(remotes, sv.Top...)
		}
		if r.Per == PerHost && !filtered {
			return out
		}
		filtered = true // folded remotes are not the service's
	}
	for i := range remotes {
		rm := &remotes[i]
		if filtered && !r.matches(rm) {
			continue
		}
		var key, prefix string
		switch r.Per {
		case PerHost:
			key = "host"
		case PerRemote:
			key = rm.Addr.String()
			prefix = netip.PrefixFrom(rm.Addr, rm.Addr.BitLen()).String()
		case PerPrefix:
			bits := r.PrefixV6
			if rm.Addr.Is4() {
				bits = r.PrefixV4
			}
			p, _ := rm.Addr.Prefix(bits)
			key, prefix = p.String(), p.String()
		}
		a := out[key]
		if a == nil {
			// The heaviest remote comes first and names the key's country.
			a = &keyAgg{prefix: prefix, country: rm.Country, asn: rm.ASN}
			out[key] = a
		}
		a.counts.Add(rm.Counts)
	}
	if r.Per == PerHost && !filtered {
		a := out["host"]
		if a == nil {
			a = &keyAgg{}
			out["host"] = a
		}
		a.counts.Add(w.Other) // folded remotes count for the host as a whole
	}
	return out
}

func (r *Rule) matches(rm *window.Remote) bool {
	if len(r.Remotes) > 0 && !slices.ContainsFunc(r.Remotes, func(p netip.Prefix) bool { return p.Contains(rm.Addr) }) {
		return false
	}
	if len(r.Countries) > 0 {
		cc := rm.Country
		if cc == "" {
			cc = "--"
		}
		if !slices.Contains(r.Countries, cc) {
			return false
		}
	}
	if len(r.ASNs) > 0 && !slices.Contains(r.ASNs, rm.ASN) {
		return false
	}
	return true
}

func (m Metric) of(c window.Counts, seconds float64) float64 {
	switch m {
	case TxBps:
		return float64(c.TxBytes) * 8 / seconds
	case RxBps:
		return float64(c.RxBytes) * 8 / seconds
	case Bps:
		return float64(c.TxBytes+c.RxBytes) * 8 / seconds
	case TxPps:
		return float64(c.TxPackets) / seconds
	case RxPps:
		return float64(c.RxPackets) / seconds
	case Pps:
		return float64(c.TxPackets+c.RxPackets) / seconds
	case TxBytes:
		return float64(c.TxBytes)
	case RxBytes:
		return float64(c.RxBytes)
	case BothBytes:
		return float64(c.TxBytes + c.RxBytes)
	}
	return 0
}

// evaluate runs the rules on one window: it counts each key's consecutive
// windows over its threshold and returns the keys that are over it for
// long enough, heaviest first within a rule. Windows must come in order.
// Whether a candidate opens an incident, refires an active one or is
// suppressed is the store's decision (apply).
func (v *evaluator) evaluate(rs *RuleSet, w *window.Window) []candidate {
	var cands []candidate
	names := map[string]bool{}
	for _, r := range rs.Rules {
		names[r.Name] = true
		st := v.state[r.Name]
		if st == nil || !sameRule(st.rule, r) {
			st = &ruleState{rule: r}
			v.state[r.Name] = st
		}
		k := max(int(math.Ceil(float64(r.Period)/float64(w.Length))), 1)
		// The period is the k windows ending with w.
		cutoff := w.Start.Add(-time.Duration(k-1) * w.Length)
		if st.last.IsZero() || !w.Start.Equal(st.last.Add(st.length)) || w.Length != st.length {
			st.streak, st.hist = map[string]int{}, nil // a gap: nothing is consecutive
			if r.Metric.isBytes() && k > 1 {
				// The bytes of the period are in the database: a restart,
				// a gap or a reload must not forget them.
				st.hist = v.seed(r, cutoff, w.Start, w.Length)
			}
		}
		st.last, st.length = w.Start, w.Length
		aggs := aggregate(r, w)
		values := map[string]*keyAgg{}
		if r.Metric.isBytes() {
			i := 0
			for i < len(st.hist) && st.hist[i].start.Before(cutoff) {
				i++
			}
			st.hist = st.hist[i:]
			for _, h := range append(slices.Clip(st.hist), histWindow{w.Start, aggs}) {
				for key, a := range h.aggs {
					s := values[key]
					if s == nil {
						s = &keyAgg{prefix: a.prefix, country: a.country, asn: a.asn}
						values[key] = s
					}
					s.counts.Add(a.counts)
				}
			}
			if k > 1 {
				st.hist = append(st.hist, histWindow{w.Start, aggs})
			}
		} else {
			values = aggs
		}
		streak := map[string]int{}
		secs := w.Length.Seconds()
		for key, a := range values {
			v := r.Metric.of(a.counts, secs)
			if v <= r.Threshold {
				continue
			}
			streak[key] = st.streak[key] + 1
			if streak[key] >= r.Windows {
				cands = append(cands, candidate{rule: r, key: key, agg: a, value: v, window: w.Start})
			}
		}
		st.streak = streak
	}
	for name := range v.state {
		if !names[name] {
			delete(v.state, name)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	// Within a rule the heaviest keys come first: when a limit suppresses
	// some, it suppresses the lightest.
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].rule.Name != cands[j].rule.Name {
			return cands[i].rule.Name < cands[j].rule.Name
		}
		if cands[i].value != cands[j].value {
			return cands[i].value > cands[j].value
		}
		return cands[i].key < cands[j].key
	})
	return cands
}

package metrics

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/window"

	"github.com/prometheus/common/expfmt"
)

// series gathers m as metric name -> "k=v,k=v" -> value.
func series(t *testing.T, m *Metrics) map[string]map[string]float64 {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		byLabels := map[string]float64{}
		for _, mt := range mf.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
			byLabels[strings.Join(ls, ",")] = v
		}
		out[mf.GetName()] = byLabels
	}
	return out
}

// sumBy adds a metric's series up per value of one label.
func sumBy(s map[string]float64, label string) map[string]float64 {
	out := map[string]float64{}
	for ls, v := range s {
		for _, kv := range strings.Split(ls, ",") {
			if k, val, _ := strings.Cut(kv, "="); k == label {
				out[val] += v
			}
		}
	}
	return out
}

func remote(i int, cc string, asn uint32, tx, rx uint64) window.Remote {
	return window.Remote{
		Addr:    netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}),
		Country: cc, ASN: asn,
		Counts: window.Counts{TxPackets: 1, TxBytes: tx, RxPackets: 2, RxBytes: rx},
	}
}

func mkWindow(i int, rs ...window.Remote) *window.Window {
	return &window.Window{Start: time.Unix(int64(1_800_000_000+20*i), 0).UTC(), Length: 20 * time.Second, Remotes: rs}
}

func TestCountryLabel(t *testing.T) {
	for cc, want := range map[string]string{"DE": "DE", "": Unknown, "de": Unknown, "D": Unknown, "DEU": Unknown, "D1": Unknown, "--": Unknown, "ÄÖ": Unknown} {
		if got := CountryLabel(cc); got != want {
			t.Errorf("CountryLabel(%q) = %q, want %q", cc, got, want)
		}
	}
}

// The first ASNs to rank in a window's top N keep their series; the rest,
// however heavy later, go to "other".
func TestASNAdmission(t *testing.T) {
	m := New(Config{ASNTop: 3})
	m.Observe(mkWindow(0, remote(1, "DE", 100, 100, 0), remote(2, "NL", 200, 50, 0), remote(3, "", 0, 7000, 0)))
	w := mkWindow(1, remote(4, "DE", 300, 10, 0), remote(5, "US", 400, 1000, 0), remote(6, "JP", 500, 500, 0), remote(7, "xx", 600, 1, 0))
	w.Other = window.Counts{TxBytes: 9, TxPackets: 3}
	w.Stats = window.Stats{Folded: 4, Frames: 13, Tallied: 8, NonIP: 2, Oversize: 2, Spoofed: 1}
	m.Observe(w)
	m.Observe(mkWindow(2, remote(8, "JP", 500, 99999, 0), remote(1, "DE", 100, 1, 0)))

	s := series(t, m)
	got := sumBy(s["dstwatch_asn_traffic_bytes_total"], "asn")
	want := map[string]float64{"100": 101, "200": 50, "400": 1000, Unknown: 7000, Other: 10 + 500 + 1 + 9 + 99999}
	if len(got) != len(want) {
		t.Errorf("asn labels %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("asn %s: %v bytes, want %v (all: %v)", k, got[k], v, got)
		}
	}
	byCC := sumBy(s["dstwatch_traffic_bytes_total"], "country")
	wantCC := map[string]float64{"DE": 111, "NL": 50, "US": 1000, "JP": 100499, Unknown: 7001, Other: 9}
	for k, v := range wantCC {
		if byCC[k] != v {
			t.Errorf("country %s: %v bytes, want %v (all: %v)", k, byCC[k], v, byCC)
		}
	}
	if len(byCC) != len(wantCC) {
		t.Errorf("countries %v, want %v", byCC, wantCC)
	}
	if v := s["dstwatch_asn_traffic_packets_total"]["asn=other,direction=tx"]; v != 3+3+1 {
		t.Errorf("tx packets of asn other: %v, want 7", v)
	}
	if v := s["dstwatch_remotes_folded_total"][""]; v != 4 {
		t.Errorf("folded %v, want 4", v)
	}
	if v := s["dstwatch_frames_skipped_total"]["reason=non_ip"]; v != 2 {
		t.Errorf("skipped non_ip %v, want 2", v)
	}
	if v := s["dstwatch_frames_skipped_total"]["reason=transit"]; v != 0 {
		t.Errorf("skipped transit %v, want 0", v)
	}
	if o, sp := s["dstwatch_frames_skipped_total"]["reason=oversize"], s["dstwatch_frames_skipped_total"]["reason=spoofed"]; o != 2 || sp != 1 {
		t.Errorf("skipped oversize %v, spoofed %v; want 2 and 1", o, sp)
	}
	if v := s["dstwatch_windows_stored_total"][""]; v != 3 {
		t.Errorf("windows %v, want 3", v)
	}
	if v := s["dstwatch_last_stored_window_end_timestamp_seconds"][""]; v != 1_800_000_060 {
		t.Errorf("last window end %v", v)
	}
}

// Whatever the traffic, the asn label takes at most N+2 values, every
// series only grows, and the totals are exact.
func TestASNBoundedAndMonotonic(t *testing.T) {
	const top = 5
	m := New(Config{ASNTop: top})
	rng := rand.New(rand.NewPCG(1, 2))
	prev := map[string]map[string]float64{}
	var total uint64
	for i := range 300 {
		var rs []window.Remote
		for j := range 1 + rng.IntN(40) {
			tx, rx := rng.Uint64N(1e6), rng.Uint64N(1e6)
			total += tx + rx
			cc := []string{"DE", "NL", "", "zz", "US"}[rng.IntN(5)]
			rs = append(rs, remote(j, cc, uint32(rng.IntN(1000)), tx, rx))
		}
		m.Observe(mkWindow(i, rs...))
		s := series(t, m)
		for name, byLabels := range prev {
			if !strings.HasPrefix(name, "dstwatch_") || !strings.HasSuffix(name, "_total") {
				continue
			}
			for ls, v := range byLabels {
				if now, ok := s[name][ls]; !ok || now < v {
					t.Fatalf("window %d: %s{%s} went from %v to %v (present %v)", i, name, ls, v, now, ok)
				}
			}
		}
		prev = s
	}
	asns := sumBy(prev["dstwatch_asn_traffic_bytes_total"], "asn")
	if len(asns) > top+2 {
		t.Errorf("%d asn label values, want at most %d: %v", len(asns), top+2, asns)
	}
	if len(prev["dstwatch_asn_info"]) != 0 {
		t.Errorf("asn_info without organisations: %v", prev["dstwatch_asn_info"])
	}
	var sumASN, sumCC float64
	for _, v := range asns {
		sumASN += v
	}
	for _, v := range sumBy(prev["dstwatch_traffic_bytes_total"], "country") {
		sumCC += v
	}
	if sumASN != float64(total) || sumCC != float64(total) {
		t.Errorf("bytes by asn %v, by country %v, want %v", sumASN, sumCC, total)
	}
}

func TestASNZeroTop(t *testing.T) {
	m := New(Config{ASNTop: 0})
	m.Observe(mkWindow(0, remote(1, "DE", 100, 5, 5)))
	if got := sumBy(series(t, m)["dstwatch_asn_traffic_bytes_total"], "asn"); len(got) != 1 || got[Other] != 10 {
		t.Errorf("got %v, want everything in other", got)
	}
}

func TestASNInfoFollowsOrg(t *testing.T) {
	m := New(Config{ASNTop: 2})
	r := remote(1, "DE", 64500, 5, 5)
	r.ASOrg = "Old Name"
	m.Observe(mkWindow(0, r))
	r.ASOrg = "New Name"
	m.Observe(mkWindow(1, r))
	info := series(t, m)["dstwatch_asn_info"]
	if len(info) != 1 || info["asn=64500,org=New Name"] != 1 {
		t.Errorf("asn_info %v, want one series with the new name", info)
	}
}

// promtool's linter has nothing to say about the names, types and help.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		netnstest.Unable(t, "promtool not installed (apt-get install prometheus); scripts/test installs it as root")
	}
	m := New(Config{ASNTop: 2, Version: "test", Health: func() Health {
		return Health{GeoIP: []GeoFile{{Path: "/x.mmdb", Type: "GeoLite2-Country", Build: time.Unix(1_700_000_000, 0)}},
			Alerts: &Alerts{Active: 1, Suppressed: map[string]uint64{"queue": 2}}}
	}})
	w := mkWindow(0, remote(1, "DE", 64500, 5, 5), remote(2, "", 0, 1, 1))
	w.Remotes[0].ASOrg = "Example"
	w.Other = window.Counts{TxBytes: 1}
	m.Observe(w)
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	checkMetricsText(t, promtool, text.Bytes())
}

// checkMetricsText runs promtool check metrics on an exposition and fails
// on any complaint about dstwatch's own metrics.
func checkMetricsText(t *testing.T, promtool string, text []byte) {
	t.Helper()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	var bad []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			bad = append(bad, l)
		}
	}
	sort.Strings(bad)
	if err != nil || len(bad) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\n--- input:\n%s", err, strings.Join(bad, "\n"), text)
	}
}

// Label values that are not UTF-8 (an organisation from an old stored window
// or a database, a database type, a file name) neither panic the writer's
// Observe nor fail the scrape: geo cleans what it reads, and the collector
// checks again.
func TestInvalidUTF8Labels(t *testing.T) {
	m := New(Config{ASNTop: 2, Version: "test", Health: func() Health {
		return Health{GeoIP: []GeoFile{
			{Path: "/geo/\xff.mmdb", Type: "GeoLite2-\xfe\xffCountry", Build: time.Unix(1_700_000_000, 0)},
			{Path: "/geo/\xfe.mmdb", Type: "GeoLite2-\xfe\xffCountry", Build: time.Unix(1_700_000_000, 0)},
		}}
	}})
	r := remote(1, "NL", 64496, 100, 0)
	r.ASOrg = "Bad \xc3\x28 Org"
	m.Observe(mkWindow(0, r))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d\n%s", rec.Code, rec.Body)
	}
	if !utf8.Valid(rec.Body.Bytes()) {
		t.Errorf("scrape is not UTF-8:\n%q", rec.Body)
	}
	for _, want := range []string{"dstwatch_asn_info{asn=\"64496\",org=\"Bad \uFFFD( Org\"} 1", "dstwatch_geoip_build_timestamp_seconds{path=\"/geo/\uFFFD.mmdb\""} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("scrape lacks %s:\n%s", want, rec.Body)
		}
	}
}

// The alert limits' state is exported while alerts are on, and only then.
func TestAlertSeries(t *testing.T) {
	var on *Alerts
	m := New(Config{Health: func() Health { return Health{Alerts: on} }})
	if s := series(t, m); s["dstwatch_alert_incidents_suppressed_total"] != nil {
		t.Errorf("alert series while alerts are off: %v", s["dstwatch_alert_incidents_suppressed_total"])
	}
	on = &Alerts{Active: 20, Running: 4, Queued: 16, Suppressed: map[string]uint64{"per_window": 280}}
	s := series(t, m)
	if s["dstwatch_alert_incidents_open"][""] != 20 || s["dstwatch_alert_actions_running"][""] != 4 || s["dstwatch_alert_actions_queued"][""] != 16 {
		t.Errorf("gauges %v", s)
	}
	if got := s["dstwatch_alert_incidents_suppressed_total"]; len(got) != 3 || got["reason=per_window"] != 280 || got["reason=queue"] != 0 {
		t.Errorf("suppressed %v", got)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/query"
)

// nsClient is an HTTP client whose sockets are opened inside namespace ns.
func nsClient(ns string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = netnstest.Do(ns, func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// freePort is a TCP port free on 127.0.0.1 inside ns.
func freePort(t *testing.T, ns string) int {
	t.Helper()
	var port int
	err := netnstest.Do(ns, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		return ln.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// prometheus is a real Prometheus server, run inside a namespace.
type prometheus struct {
	base string
	http *http.Client
}

// startPrometheus runs Debian's prometheus inside ns, scraping target
// every second with rules loaded, and waits until it is ready. Jobs are
// more scrape_configs entries, as YAML list items.
func startPrometheus(t *testing.T, bin, ns, target, rules string, jobs ...string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: dstwatch
    static_configs:
      - targets: [%q]
`, rules, target) + strings.Join(jobs, "")
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, ns))
	out := &syncBuffer{}
	cmd := netnstest.Command(ns, bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	p := &prometheus{base: "http://" + addr, http: nsClient(ns)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := p.http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s (%v):\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get fetches path from Prometheus's HTTP API and decodes its data.
func (p *prometheus) get(t *testing.T, path string, data any) {
	t.Helper()
	resp, err := p.http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.Status != "success" {
		t.Fatalf("%s: %s", path, r.Error)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// sums runs an instant query and keys its samples by the given labels
// joined with "/"; zero samples are left out.
func (p *prometheus) sums(t *testing.T, expr string, labels ...string) map[string]uint64 {
	t.Helper()
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(expr), &data)
	out := map[string]uint64{}
	for _, r := range data.Result {
		var key []string
		for _, l := range labels {
			key = append(key, r.Metric[l])
		}
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: sample %q is not a whole number", expr, s)
		}
		if v != 0 {
			out[strings.Join(key, "/")] = v
		}
	}
	return out
}

// queryJSON runs 'dstwatch query' in-process over the daemon's lifetime.
func queryJSON(t *testing.T, db string, by string, v any) {
	t.Helper()
	code, out, stderr := runCmd(t, "query", "--db", db, "--by", by, "--format", "json", "--from", "-1h", "--to", "+1h")
	if code != 0 {
		t.Fatalf("query --by %s: exit %d: %s", by, code, stderr)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// addCounts adds a row's counts to want under key/direction.
func addCounts(want map[string]uint64, key string, c query.CountsJSON, packets bool) {
	tx, rx := c.TxBytes, c.RxBytes
	if packets {
		tx, rx = c.TxPackets, c.RxPackets
	}
	for dir, v := range map[string]uint64{"tx": tx, "rx": rx} {
		if v != 0 {
			want[key+"/"+dir] += v
		}
	}
}

func equal(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A real Prometheus scrapes the daemon while it captures; what it holds
// equals what 'dstwatch query' answers for the same windows, exactly.
func TestLiveMetricsPrometheus(t *testing.T) {
	t.Parallel() // in namespaces of its own
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		netnstest.Unable(t, "needs Prometheus: apt-get install prometheus (scripts/test installs it when run as root)")
	}
	promtool, _ := exec.LookPath("promtool")
	rules, err := filepath.Abs("../../packaging/prometheus/dstwatch-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := netnstest.New(t)
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	if err := mmdbtest.Country(country, map[string]string{"198.51.100.0/24": "NL", "2001:db8::/33": "DE"}); err != nil {
		t.Fatal(err)
	}
	if err := mmdbtest.ASN(asn, map[string]mmdbtest.Entry{
		"198.51.100.2/32": {ASN: 64496, ASOrg: "Doc One"},
		"198.51.100.3/32": {ASN: 64497, ASOrg: "Doc Two"},
		"2001:db8::/32":   {ASN: 64501, ASOrg: "Example Six"},
	}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "live.db")
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t, p.A))
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--geoip", country, "--geoip", asn,
		"--window", "1s", "--metrics", target, "--metrics-asn-top", "2")
	prom := startPrometheus(t, promBin, p.A, target, rules)

	sink(t, p.A, netnstest.A4)
	sink(t, p.A, netnstest.A6)
	sink(t, p.B, netnstest.B4)
	sink(t, p.B, netnstest.B6)
	// The two heavy ASNs come first, so they take the two ASN series
	// whichever windows the traffic falls into; 64497 (B4b), the lightest
	// and last, is left in asn="other".
	send(t, p.B, netnstest.B4, netnstest.A4, 60, 1000) // rx NL 64496
	send(t, p.A, netnstest.A4, netnstest.B4, 40, 300)  // tx NL 64496
	send(t, p.B, netnstest.B6, netnstest.A6, 30, 800)  // rx DE 64501
	send(t, p.A, netnstest.A6, netnstest.B6, 20, 1000) // tx DE 64501
	send(t, p.B, netnstest.B4b, netnstest.A4, 25, 10)  // rx NL 64497

	// Windows close a second and a half after their end; then the
	// counters stay put (the windows that follow are empty), and
	// Prometheus must come to hold exactly what query says.
	var wantCC, wantCCPkts, wantASN, wantASNPkts, gotCC, gotCCPkts, gotASN, gotASNPkts map[string]uint64
	var tallied, gotTallied uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		time.Sleep(time.Second)
		var countries []query.CountryJSON
		queryJSON(t, db, "country", &countries)
		wantCC, wantCCPkts = map[string]uint64{}, map[string]uint64{}
		tallied = 0
		for _, r := range countries {
			cc := r.Country
			if cc == "" {
				cc = "unknown"
			}
			addCounts(wantCC, cc, r.CountsJSON, false)
			addCounts(wantCCPkts, cc, r.CountsJSON, true)
			tallied += r.TxPackets + r.RxPackets
		}
		gotCC = prom.sums(t, `sum by (country, direction) (dstwatch_traffic_bytes_total{job="dstwatch"})`, "country", "direction")
		gotCCPkts = prom.sums(t, `sum by (country, direction) (dstwatch_traffic_packets_total{job="dstwatch"})`, "country", "direction")

		var asns []query.ASNJSON
		queryJSON(t, db, "asn", &asns)
		gotASN = prom.sums(t, `sum by (asn, direction) (dstwatch_asn_traffic_bytes_total{job="dstwatch"})`, "asn", "direction")
		gotASNPkts = prom.sums(t, `sum by (asn, direction) (dstwatch_asn_traffic_packets_total{job="dstwatch"})`, "asn", "direction")
		wantASN, wantASNPkts = map[string]uint64{}, map[string]uint64{}
		for _, r := range asns {
			label := strconv.FormatUint(uint64(r.ASN), 10)
			switch {
			case r.Other:
				label = "other"
			case r.ASN == 0:
				label = "unknown"
			case r.ASN != 64496 && r.ASN != 64501:
				label = "other"
			}
			addCounts(wantASN, label, r.CountsJSON, false)
			addCounts(wantASNPkts, label, r.CountsJSON, true)
		}
		gotTallied = prom.sums(t, `sum(dstwatch_frames_tallied_total{job="dstwatch"})`)[""]
		if equal(wantCC, gotCC) && equal(wantCCPkts, gotCCPkts) && equal(wantASN, gotASN) &&
			equal(wantASNPkts, gotASNPkts) && gotTallied == tallied && tallied == 175 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not agree with query after 30s:\n"+
				"bytes by country: prometheus %v\n                        query %v\n"+
				"packets by country: prometheus %v\n                          query %v\n"+
				"bytes by asn: prometheus %v\n                    query %v\n"+
				"packets by asn: prometheus %v\n                      query %v\n"+
				"tallied frames: prometheus %d, query %d, sent 175",
				gotCC, wantCC, gotCCPkts, wantCCPkts, gotASN, wantASN, gotASNPkts, wantASNPkts, gotTallied, tallied)
		}
	}
	t.Logf("agreed: bytes by country %v, by asn %v", gotCC, gotASN)
	if wantASN["other/rx"] != 25*38 {
		t.Errorf("asn other rx bytes %d, want AS64497's %d", wantASN["other/rx"], 25*38)
	}

	if up := prom.sums(t, `up{job="dstwatch"}`, "instance"); up[target] != 1 {
		t.Errorf("up = %v, want 1 for %s", up, target)
	}
	if info := prom.sums(t, `dstwatch_asn_info`, "asn", "org"); !equal(info, map[string]uint64{"64496/Doc One": 1, "64501/Example Six": 1}) {
		t.Errorf("dstwatch_asn_info %v", info)
	}
	if n := prom.sums(t, `count(dstwatch_frames_skipped_total) by (reason)`, "reason"); len(n) != 7 {
		t.Errorf("skip reasons %v, want 7", n)
	}
	if geo := prom.sums(t, `dstwatch_geoip_build_timestamp_seconds`, "path"); !equal(geo, map[string]uint64{country: uint64(mmdbtest.BuildEpoch), asn: uint64(mmdbtest.BuildEpoch)}) {
		t.Errorf("dstwatch_geoip_build_timestamp_seconds by path %v, want both files at %d", geo, mmdbtest.BuildEpoch)
	}
	var ruleData struct {
		Groups []struct {
			Rules []struct {
				Name, Health, LastError string
			}
		}
	}
	prom.get(t, "/api/v1/rules", &ruleData)
	nrules := 0
	for _, g := range ruleData.Groups {
		for _, r := range g.Rules {
			nrules++
			if r.Health == "err" {
				t.Errorf("rule %s: %s", r.Name, r.LastError)
			}
		}
	}
	if nrules == 0 {
		t.Error("the example rules did not load")
	}
	// Nothing failed, so no rule may fire, but for the test GeoIP files'
	// age (built in 2023): that one shows the rules see the metrics.
	var alerts struct {
		Alerts []struct {
			Labels map[string]string
			State  string
		}
	}
	for wait := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		prom.get(t, "/api/v1/alerts", &alerts)
		geoOld := 0
		for _, a := range alerts.Alerts {
			if a.Labels["alertname"] == "DstwatchGeoIPOld" {
				geoOld++
			}
		}
		if geoOld == 2 {
			break
		}
		if time.Now().After(wait) {
			t.Errorf("DstwatchGeoIPOld is active for %d files after 15s, want both", geoOld)
			break
		}
	}
	for _, a := range alerts.Alerts {
		if a.Labels["alertname"] != "DstwatchGeoIPOld" {
			t.Errorf("alert %s is %s", a.Labels["alertname"], a.State)
		}
	}

	// promtool lints the exposition the daemon serves.
	resp, err := nsClient(p.A).Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	for _, want := range []string{`dstwatch_traffic_bytes_total{country="NL",direction="tx"}`, `dstwatch_build_info{goversion=`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(text), netnstest.B4.String()) || strings.Contains(string(text), netnstest.B6.String()) {
		t.Errorf("/metrics holds a remote address:\n%s", text)
	}
	if promtool != "" {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(string(text))
		if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
	d.stop(t)
}

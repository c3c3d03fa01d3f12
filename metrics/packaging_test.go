package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/window"
)

const (
	dashboardFile = "../packaging/grafana/dstwatch.json"
	rulesFile     = "../packaging/prometheus/dstwatch-rules.yml"
)

var metricName = regexp.MustCompile(`\bdstwatch_[a-z_]+\b`)

// exported is every metric name the daemon exports, once all have a value.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := New(Config{ASNTop: 2, Health: func() Health {
		return Health{GeoIP: []GeoFile{{Path: "/x.mmdb", Type: "GeoLite2-Country", Build: time.Now()}}}
	}})
	w := mkWindow(0, remote(1, "DE", 64500, 5, 5))
	w.Remotes[0].ASOrg = "Example"
	w.Other = window.Counts{TxBytes: 1}
	m.Observe(w)
	names := map[string]bool{}
	for name := range series(t, m) {
		names[name] = true
	}
	return names
}

// The dashboard and the rules only use metrics that exist.
func TestPackagingUsesExportedMetrics(t *testing.T) {
	names := exported(t)
	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	used := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				used++
				if !names[n] {
					t.Errorf("dashboard panel %q uses %s, which dstwatch does not export", p.Title, n)
				}
			}
		}
	}
	if used == 0 {
		t.Error("the dashboard uses no dstwatch metric")
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricName.FindAllString(string(rules), -1) {
		if !names[n] {
			t.Errorf("rules use %s, which dstwatch does not export", n)
		}
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		netnstest.Unable(t, "promtool not installed (apt-get install prometheus); scripts/test installs it as root")
	}
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

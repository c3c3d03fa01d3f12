package alert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fullExample = `# every field
rules:
  - name: mark-flooded-remote
    scope:
      remote: [203.0.113.0/24, "2001:db8::/32"]
      country: [NL, DE]
      asn: [AS64500, 64501]
    per: remote
    metric: rx_bps
    threshold: 50M
    windows: 3
    expire: 1h
    cooldown: 10m
    on_refire: extend
    actions:
      - exec: [/bin/echo, announce, "{prefix}", "community 65100:888", "{{literal}}"]
        undo: [/bin/echo, withdraw, "{prefix}"]
        timeout: 10s
      - webhook: http://127.0.0.1:8080/hook
        timeout: 2s
        retries: 5
        backoff: 500ms
      - log: true
  - name: month-quota
    per: prefix
    prefix_v4: 24
    prefix_v6: 48
    metric: tx_bytes
    threshold: 10Gi
    period: 1d
    expire: 2d
    on_refire: record
    actions: [{log: true}]
`

func TestParseFullExample(t *testing.T) {
	rs, err := ParseRules([]byte(fullExample))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) != 2 {
		t.Fatalf("%d rules", len(rs.Rules))
	}
	r := rs.Rules[0]
	if r.Line != 3 || r.Per != PerRemote || r.Threshold != 50e6 || r.Windows != 3 || r.Expire != time.Hour || r.Cooldown != 10*time.Minute ||
		len(r.Remotes) != 2 || r.Countries[1] != "DE" || r.ASNs[0] != 64500 || len(r.Actions) != 3 {
		t.Errorf("%+v", r)
	}
	if a := r.Actions[1]; a.Kind != KindWebhook || a.Retries != 5 || a.Backoff != 500*time.Millisecond || a.Timeout != 2*time.Second {
		t.Errorf("%+v", a)
	}
	q := rs.Rules[1]
	if q.Threshold != 10*(1<<30) || q.Period != 24*time.Hour || q.PrefixV6 != 48 || q.OnRefire != RefireRecord {
		t.Errorf("%+v", q)
	}
	got := expandAll(r.Actions[0].Argv, Fields{Prefix: "203.0.113.9/32"})
	if strings.Join(got, "|") != "/bin/echo|announce|203.0.113.9/32|community 65100:888|{literal}" {
		t.Errorf("expanded %q", got)
	}
}

func TestRuleErrorsNameLineAndField(t *testing.T) {
	base := "rules:\n  - name: r\n    metric: rx_bps\n    threshold: 1M\n    expire: 1h\n    actions: [{log: true}]\n"
	for _, c := range []struct{ doc, want string }{
		{base + "    treshold: 2M\n", `7: rule.treshold: unknown field`},
		{strings.Replace(base, "1M", "lots", 1), `4: rule "r": threshold: "lots": want a positive number`},
		{strings.Replace(base, "rx_bps", "rx_bits", 1), `3: rule "r": metric: "rx_bits": want one of tx_bps`},
		{base + "    scope: {service: https}\n", `7: rule "r": scope.service: "https": want PORT/PROTO`},
		{base + "    scope: {service: 443/tcp/sideways}\n", `7: rule "r": scope.service: "443/tcp/sideways": want PORT/PROTO`},
		{base + "    scope: {remote: 300.1.1.1}\n", `7: rule "r": scope.remote: "300.1.1.1": not an address`},
		{base + "    windows: 0\n", `7: rule "r": windows: "0": want a whole number from 1`},
		{base + "    period: 1h\n", `7: rule "r": period: only with a bytes metric`},
		{strings.Replace(base, "rx_bps", "rx_bytes", 1), `2: rule "r": period: missing`},
		{strings.Replace(base, "    expire: 1h\n", "", 1), `2: rule "r": expire: missing`},
		{strings.Replace(base, "{log: true}", "{exec: [/nonexistent/gobgp, x]}", 1), `6: rule "r": actions[0].exec: "/nonexistent/gobgp": no such file`},
		{strings.Replace(base, "{log: true}", "{exec: [/bin/echo, \"{remot}\"]}", 1), `6: rule "r": actions[0].exec: "{remot}": unknown field {remot}`},
		{strings.Replace(base, "{log: true}", "{exec: \"/bin/echo hi\"}", 1), `6: rule "r": actions[0].exec: want the command as a list`},
		{strings.Replace(base, "{log: true}", "{webhook: ftp://x}", 1), `6: rule "r": actions[0].webhook: "ftp://x": want an http`},
		{strings.Replace(base, "{log: true}", "{log: true, retries: 3}", 1), `6: rule "r": actions[0].retries: not a field of a log action`},
		{strings.Replace(base, "{log: true}", "{log: true, exec: [/bin/true]}", 1), `6: rule "r": actions[0]: an action is exactly one of`},
		{base + "  - name: r\n    metric: pps\n    threshold: 1\n    expire: 1s\n    actions: [{log: true}]\n", `7: name: rule "r" is already defined at line 2`},
		{"rules:\n  - name: [x\n", `: not valid YAML: did not find`},
		// Shape errors come from decoding into the document's structs.
		{base + "    scope: {nope: 1}\n", `7: rule.scope.nope: unknown field (want one of remote, country, asn, service)`},
		{base + "    scope: x\n", `7: rule.scope must be a mapping`},
		{base + "    metric: pps\n", `7: metric: given twice (first at line 3)`},
		{strings.Replace(base, "[{log: true}]", "x", 1), `6: rule.actions: want a list`},
		{strings.Replace(base, "[{log: true}]", "[{}]", 1), `6: rule "r": actions[0]: an action is exactly one of exec, webhook or log (got 0)`},
		{"rules: x\n", `1: rules: want a list of rules`},
		{"x\n", `1: the document must be a mapping`},
		{"rules:\n  -\n", `2: rule must be a mapping`},
		{"rules:\n  - &r {name: r, metric: pps, threshold: 1, expire: 1s, actions: [{log: true}]}\n  - *r\n", `2: name: rule "r" is already defined at line 2`},
	} {
		_, err := ParseRules([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q, got %v\n%s", c.want, err, c.doc)
		}
	}
}

func TestLoadRulesNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(p, []byte("rules:\n  - name: r\n    metric: bps\n"), 0o644)
	_, err := LoadRules(p)
	if err == nil || !strings.HasPrefix(err.Error(), "rules "+p+":2: rule \"r\": threshold: missing") {
		t.Errorf("%v", err)
	}
	// The parts are there for a program, not only in the text.
	var re *RuleError
	if !errors.As(err, &re) || re.File != p || re.Line != 2 || re.Field != `rule "r": threshold` || re.Msg != "missing" {
		t.Errorf("%#v", re)
	}
	if rs, err := LoadRules(os.DevNull); err != nil || len(rs.Rules) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

// Small thresholds read right: 0.1 pkt/s is not "0pkt/s".
func TestFormatValueSmall(t *testing.T) {
	for _, c := range []struct {
		m    Metric
		v    float64
		want string
	}{
		{RxPps, 0.1, "0.1pkt/s"}, {RxPps, 0.0125, "0.0125pkt/s"}, {Pps, 2.5, "2.5pkt/s"}, {Pps, 61.24, "61.2pkt/s"},
		{Pps, 150, "150pkt/s"}, {Pps, 999.4, "999pkt/s"}, {Pps, 1500, "1.5kpkt/s"}, {RxBps, 50e6, "50.0Mbit/s"},
		{TxBytes, 0, "0B"}, {TxBytes, 512, "512B"},
	} {
		if got := FormatValue(c.m, c.v); got != c.want {
			t.Errorf("FormatValue(%s, %v) = %q, want %q", c.m, c.v, got, c.want)
		}
	}
	f := Fields{Metric: RxPps, Value: 0.25, Threshold: 0.1}
	for name, want := range map[string]string{"threshold": "0.1", "value": "0.25", "rate": "0.25pkt/s"} {
		if got, _ := f.get(name); got != want {
			t.Errorf("{%s} = %q, want %q", name, got, want)
		}
	}
	if got, _ := (Fields{Threshold: 50e6}).get("threshold"); got != "50000000" {
		t.Errorf("{threshold} = %q", got)
	}
}

// Whatever the file holds, ParseRules answers a rule set or a RuleError;
// it never panics.
func FuzzParseRules(f *testing.F) {
	f.Add([]byte(fullExample))
	f.Add([]byte("rules:\n  - &r {name: r, metric: pps, threshold: 1, expire: 1s, actions: [{log: true}]}\n  - *r\n"))
	f.Add([]byte("x: &m {metric: rx_bps, actions: [{log: true}]}\nrules:\n  - name: r\n    <<: *m\n"))
	f.Add([]byte("limits: {running: 2}\nrules: [~]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseRules(b)
		var re *RuleError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("%T %v", err, err)
		}
		if err == nil && rs == nil {
			t.Fatal("no rule set and no error")
		}
	})
}

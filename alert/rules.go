package alert

import (
	"errors"
	"fmt"
	"github.com/dstwatch/dstwatch/capture"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
)

// Metric is what a rule measures in each window.
type Metric string

// Rates are averaged over the window (bits or packets per second); byte
// metrics are summed over the rule's period.
const (
	TxBps     Metric = "tx_bps"
	RxBps     Metric = "rx_bps"
	Bps       Metric = "bps"
	TxPps     Metric = "tx_pps"
	RxPps     Metric = "rx_pps"
	Pps       Metric = "pps"
	TxBytes   Metric = "tx_bytes"
	RxBytes   Metric = "rx_bytes"
	BothBytes Metric = "bytes"
)

var metrics = []Metric{TxBps, RxBps, Bps, TxPps, RxPps, Pps, TxBytes, RxBytes, BothBytes}

func (m Metric) isBytes() bool { return m == TxBytes || m == RxBytes || m == BothBytes }

// Per says how a rule groups the traffic it sees.
type Per string

const (
	PerHost   Per = "host"   // all traffic in scope together: one incident at a time
	PerRemote Per = "remote" // each remote address on its own
	PerPrefix Per = "prefix" // remotes summed per prefix (prefix_v4, prefix_v6)
)

// Refire says what a rule that fires again for a still active incident does.
const (
	RefireExtend = "extend" // the expiry restarts from now
	RefireRecord = "record" // only counted and remembered; the expiry stays
)

// Action kinds.
const (
	KindExec    = "exec"
	KindUndo    = "undo"
	KindWebhook = "webhook"
	KindLog     = "log"
)

// Rule is one validated rule.
type Rule struct {
	Name      string
	Line      int // where the rule starts in its file
	Remotes   []netip.Prefix
	Countries []string
	ASNs      []uint32
	Services  []ServiceMatch // empty: all traffic
	Per       Per
	PrefixV4  int
	PrefixV6  int
	Metric    Metric
	Threshold float64
	Period    time.Duration // byte metrics: the span summed
	Windows   int           // consecutive windows the condition must hold
	Expire    time.Duration
	Cooldown  time.Duration
	OnRefire  string
	Actions   []ActionSpec
}

// ActionSpec is one action of a rule, with its templates unexpanded.
type ActionSpec struct {
	Kind    string   // exec, webhook or log
	Argv    []string // exec
	Undo    []string // exec: run at expiry; empty for none
	URL     string   // webhook
	Timeout time.Duration
	Retries int           // webhook: attempts after the first
	Backoff time.Duration // webhook: first pause between attempts; doubles
}

// RuleSet is a validated rules file.
type RuleSet struct {
	Path   string
	Rules  []*Rule
	Limits Limits
}

// Limits bound what traffic can make the engine do: one spoofed packet
// from each of thousands of sources must not start thousands of
// processes. A new incident over a limit is suppressed (not opened, so
// nothing runs and nothing needs undoing) and counted; the key stays a
// candidate and opens in a later window when there is room.
type Limits struct {
	PerWindow int `json:"incidents_per_window"` // new incidents one rule opens per window
	Active    int `json:"active"`               // open incidents (active and expiring) in all
	Running   int `json:"running"`              // incidents running actions at once
	Queued    int `json:"queued"`               // incidents waiting for a free slot to run
}

// DefaultLimits apply where the rules file's limits block says nothing.
var DefaultLimits = Limits{PerWindow: 20, Active: 500, Running: 4, Queued: 100}

// Defaults and bounds of the rules format.
const (
	DefaultExecTimeout    = 30 * time.Second
	DefaultWebhookTimeout = 10 * time.Second
	DefaultRetries        = 3
	DefaultBackoff        = time.Second
	maxBackoff            = time.Minute
	maxWindows            = 10000
	maxPeriod             = 7 * 24 * time.Hour
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// LoadRules reads and validates a rules file. The error names the file, the
// line and the field at fault.
func LoadRules(path string) (*RuleSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	rs, err := ParseRules(b)
	if err != nil {
		return nil, fmt.Errorf("rules %s:%w", path, err)
	}
	rs.Path = path
	return rs, nil
}

// fieldError is a validation error at a line; Error starts with the line
// number so that LoadRules can put the file name before it.
type fieldError struct {
	line  int
	field string
	msg   string
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return fmt.Sprintf("%d: %s", e.line, e.msg)
	}
	return fmt.Sprintf("%d: %s: %s", e.line, e.field, e.msg)
}

func errAt(n *yaml.Node, field, format string, args ...any) error {
	return &fieldError{line: n.Line, field: field, msg: fmt.Sprintf(format, args...)}
}

// ParseRules validates a rules document (YAML; see the README's Alerts
// section for the format).
func ParseRules(b []byte) (*RuleSet, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf(" %v", err)
		}
		// yaml/v3 says "yaml: line N: ..."
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if l, rest, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && strings.HasPrefix(msg, "line ") {
			return nil, fmt.Errorf("%s: not valid YAML: %s", l, rest)
		}
		return nil, fmt.Errorf(" not valid YAML: %s", msg)
	}
	rs := &RuleSet{Limits: DefaultLimits}
	if len(doc.Content) == 0 {
		return rs, nil // an empty file: no rules
	}
	root := doc.Content[0]
	fields, err := mapping(root, "", "rules", "limits")
	if err != nil {
		return nil, err
	}
	if l, ok := fields["limits"]; ok {
		if rs.Limits, err = parseLimits(l); err != nil {
			return nil, err
		}
	}
	list, ok := fields["rules"]
	if !ok {
		return rs, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, errAt(list, "rules", "want a list of rules")
	}
	seen := map[string]int{}
	for _, n := range list.Content {
		r, err := parseRule(n)
		if err != nil {
			return nil, err
		}
		if l, dup := seen[r.Name]; dup {
			return nil, errAt(n, "name", "rule %q is already defined at line %d", r.Name, l)
		}
		seen[r.Name] = r.Line
		rs.Rules = append(rs.Rules, r)
	}
	return rs, nil
}

func parseLimits(n *yaml.Node) (Limits, error) {
	l := DefaultLimits
	f, err := mapping(n, "limits", "incidents_per_window", "active", "running", "queued")
	if err != nil {
		return l, err
	}
	for _, x := range []struct {
		name   string
		dst    *int
		lo, hi int
	}{{"incidents_per_window", &l.PerWindow, 1, 100000}, {"active", &l.Active, 1, 100000}, {"running", &l.Running, 1, 256}, {"queued", &l.Queued, 0, 100000}} {
		if v, ok := f[x.name]; ok {
			if *x.dst, err = intField(v, "limits."+x.name, x.lo, x.hi); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

// mapping returns a mapping node's values by key, rejecting keys not in
// allowed and repeated keys: a typo must not be silently ignored.
func mapping(n *yaml.Node, where string, allowed ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		what := "the document"
		if where != "" {
			what = where
		}
		return nil, errAt(n, where, "%s must be a mapping (key: value)", what)
	}
	m := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(where, k.Value)
		if !slices.Contains(allowed, k.Value) {
			return nil, errAt(k, name, "unknown field (want one of %s)", strings.Join(allowed, ", "))
		}
		if _, dup := m[k.Value]; dup {
			return nil, errAt(k, name, "given twice")
		}
		m[k.Value] = v
	}
	return m, nil
}

func join(where, field string) string {
	if where == "" {
		return field
	}
	return where + "." + field
}

func scalar(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errAt(n, field, "want a single value")
	}
	return n.Value, nil
}

// stringList takes a scalar or a list of scalars.
func stringList(n *yaml.Node, field string) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, field, "want a value or a list of values")
	}
	var out []string
	for _, c := range n.Content {
		s, err := scalar(c, field)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func intField(n *yaml.Node, field string, lo, hi int) (int, error) {
	s, err := scalar(n, field)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, errAt(n, field, "%q: want a whole number from %d to %d", s, lo, hi)
	}
	return v, nil
}

func durField(n *yaml.Node, field string, lo, hi time.Duration) (time.Duration, error) {
	s, err := scalar(n, field)
	if err != nil {
		return 0, err
	}
	d, err := units.ParseDuration(s, hi)
	if err != nil || d < lo {
		return 0, errAt(n, field, "%q: want a duration from %v to %v (e.g. 30s, 10m, 1h, 2d)", s, lo, hi)
	}
	return d, nil
}

// ParseThreshold takes a number with an optional SI (k, M, G, T: powers of
// 1000) or binary (Ki, Mi, Gi, Ti: powers of 1024) multiplier: "50M" is
// 50,000,000.
func ParseThreshold(s string) (float64, error) {
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.m
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v <= 0 || v != v || v > 1e18 {
		return 0, fmt.Errorf("not a positive number")
	}
	return v * mult, nil
}

var ruleFields = []string{"name", "scope", "per", "prefix_v4", "prefix_v6", "metric", "threshold", "period", "windows", "expire", "cooldown", "on_refire", "actions"}

func parseRule(n *yaml.Node) (*Rule, error) {
	f, err := mapping(n, "rule", ruleFields...)
	if err != nil {
		return nil, err
	}
	r := &Rule{Line: n.Line, Per: PerHost, PrefixV4: 24, PrefixV6: 64, Windows: 1, OnRefire: RefireExtend}
	nameNode, ok := f["name"]
	if !ok {
		return nil, errAt(n, "name", "every rule needs a name")
	}
	if r.Name, err = scalar(nameNode, "name"); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(r.Name) {
		return nil, errAt(nameNode, "name", "%q: want letters, digits, '.', '_' or '-', at most 64", r.Name)
	}
	at := func(field string) string { return fmt.Sprintf("rule %q: %s", r.Name, field) }
	if s, ok := f["scope"]; ok {
		if err := r.parseScope(s, at("scope")); err != nil {
			return nil, err
		}
	}
	if p, ok := f["per"]; ok {
		v, err := scalar(p, at("per"))
		if err != nil {
			return nil, err
		}
		switch Per(v) {
		case PerHost, PerRemote, PerPrefix:
			r.Per = Per(v)
		default:
			return nil, errAt(p, at("per"), "%q: want host, remote or prefix", v)
		}
	}
	for _, x := range []struct {
		name string
		dst  *int
		max  int
	}{{"prefix_v4", &r.PrefixV4, 32}, {"prefix_v6", &r.PrefixV6, 128}} {
		if p, ok := f[x.name]; ok {
			if r.Per != PerPrefix {
				return nil, errAt(p, at(x.name), "only with per: prefix")
			}
			if *x.dst, err = intField(p, at(x.name), 0, x.max); err != nil {
				return nil, err
			}
		}
	}
	m, ok := f["metric"]
	if !ok {
		return nil, errAt(n, at("metric"), "missing (want one of %s)", metricList())
	}
	v, err := scalar(m, at("metric"))
	if err != nil {
		return nil, err
	}
	if !slices.Contains(metrics, Metric(v)) {
		return nil, errAt(m, at("metric"), "%q: want one of %s", v, metricList())
	}
	r.Metric = Metric(v)
	th, ok := f["threshold"]
	if !ok {
		return nil, errAt(n, at("threshold"), "missing")
	}
	tv, err := scalar(th, at("threshold"))
	if err != nil {
		return nil, err
	}
	if r.Threshold, err = ParseThreshold(tv); err != nil {
		return nil, errAt(th, at("threshold"), "%q: want a positive number, optionally with k, M, G, T (x1000) or Ki, Mi, Gi, Ti (x1024), e.g. 50M", tv)
	}
	if p, ok := f["period"]; ok {
		if !r.Metric.isBytes() {
			return nil, errAt(p, at("period"), "only with a bytes metric (tx_bytes, rx_bytes, bytes); rates are per window")
		}
		if r.Period, err = durField(p, at("period"), time.Second, maxPeriod); err != nil {
			return nil, err
		}
	} else if r.Metric.isBytes() {
		return nil, errAt(n, at("period"), "missing: a bytes metric needs the period to sum over, e.g. period: 1h")
	}
	if w, ok := f["windows"]; ok {
		if r.Windows, err = intField(w, at("windows"), 1, maxWindows); err != nil {
			return nil, err
		}
	}
	e, ok := f["expire"]
	if !ok {
		return nil, errAt(n, at("expire"), "missing: how long an incident lasts, e.g. expire: 1h")
	}
	if r.Expire, err = durField(e, at("expire"), time.Second, 366*24*time.Hour); err != nil {
		return nil, err
	}
	if c, ok := f["cooldown"]; ok {
		if r.Cooldown, err = durField(c, at("cooldown"), 0, 366*24*time.Hour); err != nil {
			return nil, err
		}
	}
	if o, ok := f["on_refire"]; ok {
		v, err := scalar(o, at("on_refire"))
		if err != nil {
			return nil, err
		}
		if v != RefireExtend && v != RefireRecord {
			return nil, errAt(o, at("on_refire"), "%q: want extend or record", v)
		}
		r.OnRefire = v
	}
	acts, ok := f["actions"]
	if !ok {
		return nil, errAt(n, at("actions"), "missing: a rule needs at least one action (exec, webhook or log)")
	}
	if acts.Kind != yaml.SequenceNode || len(acts.Content) == 0 {
		return nil, errAt(acts, at("actions"), "want a list of at least one action")
	}
	for i, a := range acts.Content {
		spec, err := parseAction(a, fmt.Sprintf("rule %q: actions[%d]", r.Name, i))
		if err != nil {
			return nil, err
		}
		r.Actions = append(r.Actions, spec)
	}
	return r, nil
}

func metricList() string {
	s := make([]string, len(metrics))
	for i, m := range metrics {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

func (r *Rule) parseScope(n *yaml.Node, where string) error {
	f, err := mapping(n, where, "remote", "country", "asn", "service")
	if err != nil {
		return err
	}
	if v, ok := f["service"]; ok {
		list, err := stringList(v, join(where, "service"))
		if err != nil {
			return err
		}
		for _, s := range list {
			m, ok := parseServiceMatch(s)
			if !ok {
				return errAt(v, join(where, "service"), "%q: want PORT/PROTO or PORT/PROTO/SIDE, e.g. 443/tcp/out, 8080/tcp/in, 0/icmp", s)
			}
			r.Services = append(r.Services, m)
		}
	}
	if v, ok := f["remote"]; ok {
		list, err := stringList(v, join(where, "remote"))
		if err != nil {
			return err
		}
		for _, s := range list {
			p, err := query.ParsePrefix(s)
			if err != nil {
				return errAt(v, join(where, "remote"), "%q: not an address or CIDR prefix", s)
			}
			r.Remotes = append(r.Remotes, p)
		}
	}
	if v, ok := f["country"]; ok {
		list, err := stringList(v, join(where, "country"))
		if err != nil {
			return err
		}
		for _, s := range list {
			if len(s) != 2 {
				return errAt(v, join(where, "country"), "%q: want a two-letter code, or -- for unknown", s)
			}
			r.Countries = append(r.Countries, strings.ToUpper(s))
		}
	}
	if v, ok := f["asn"]; ok {
		list, err := stringList(v, join(where, "asn"))
		if err != nil {
			return err
		}
		for _, s := range list {
			a, err := query.ParseASN(s)
			if err != nil {
				return errAt(v, join(where, "asn"), "%q: want an AS number", s)
			}
			r.ASNs = append(r.ASNs, a)
		}
	}
	return nil
}

func parseAction(n *yaml.Node, where string) (ActionSpec, error) {
	f, err := mapping(n, where, "exec", "undo", "timeout", "webhook", "retries", "backoff", "log")
	if err != nil {
		return ActionSpec{}, err
	}
	var kinds []string
	for _, k := range []string{KindExec, KindWebhook, KindLog} {
		if _, ok := f[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		return ActionSpec{}, errAt(n, where, "an action is exactly one of exec, webhook or log (got %d)", len(kinds))
	}
	a := ActionSpec{Kind: kinds[0]}
	allowed := map[string][]string{
		KindExec:    {"exec", "undo", "timeout"},
		KindWebhook: {"webhook", "timeout", "retries", "backoff"},
		KindLog:     {"log"},
	}[a.Kind]
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(allowed, k.Value) {
			return a, errAt(k, join(where, k.Value), "not a field of a %s action (want %s)", a.Kind, strings.Join(allowed, ", "))
		}
	}
	switch a.Kind {
	case KindExec:
		a.Timeout = DefaultExecTimeout
		if a.Argv, err = argv(f["exec"], join(where, "exec")); err != nil {
			return a, err
		}
		if u, ok := f["undo"]; ok {
			if a.Undo, err = argv(u, join(where, "undo")); err != nil {
				return a, err
			}
		}
	case KindWebhook:
		a.Timeout, a.Retries, a.Backoff = DefaultWebhookTimeout, DefaultRetries, DefaultBackoff
		w := f["webhook"]
		if a.URL, err = scalar(w, join(where, "webhook")); err != nil {
			return a, err
		}
		u, err := url.Parse(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return a, errAt(w, join(where, "webhook"), "%q: want an http:// or https:// URL", RedactURL(a.URL))
		}
		if r, ok := f["retries"]; ok {
			if a.Retries, err = intField(r, join(where, "retries"), 0, 20); err != nil {
				return a, err
			}
		}
		if b, ok := f["backoff"]; ok {
			if a.Backoff, err = durField(b, join(where, "backoff"), time.Millisecond, maxBackoff); err != nil {
				return a, err
			}
		}
	case KindLog:
		v, err := scalar(f["log"], join(where, "log"))
		if err != nil || v != "true" {
			return a, errAt(f["log"], join(where, "log"), "write log: true")
		}
	}
	if t, ok := f["timeout"]; ok {
		if a.Timeout, err = durField(t, join(where, "timeout"), time.Millisecond, time.Hour); err != nil {
			return a, err
		}
	}
	return a, nil
}

// argv checks a command: a list, its program found, its templates known.
func argv(n *yaml.Node, field string) ([]string, error) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, errAt(n, field, "want the command as a list: [program, arg, ...] (no shell)")
	}
	var out []string
	for _, c := range n.Content {
		s, err := scalar(c, field)
		if err != nil {
			return nil, err
		}
		if _, err := expand(s, Fields{}); err != nil {
			return nil, errAt(c, field, "%v", err)
		}
		out = append(out, s)
	}
	if strings.Contains(out[0], "{") {
		return nil, errAt(n.Content[0], field, "the program may not be templated")
	}
	if _, err := exec.LookPath(out[0]); err != nil {
		return nil, errAt(n.Content[0], field, "%q: %v", out[0], unwrapExec(err))
	}
	return out, nil
}

func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err
}

// ServiceMatch selects a service: port and protocol, and a side unless it
// is SideNone (either side).
type ServiceMatch struct {
	Port  uint16
	Proto capture.Proto
	Side  capture.Side
}

func (m ServiceMatch) matches(k capture.Service) bool {
	return k.Port() == m.Port && k.Proto() == m.Proto && (m.Side == capture.SideNone || k.Side() == m.Side)
}

// parseServiceMatch reads PORT/PROTO[/SIDE].
func parseServiceMatch(s string) (ServiceMatch, bool) {
	f := strings.Split(strings.ToLower(s), "/")
	if len(f) < 2 || len(f) > 3 {
		return ServiceMatch{}, false
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil {
		return ServiceMatch{}, false
	}
	proto, err := capture.ParseProto(f[1])
	if err != nil {
		return ServiceMatch{}, false
	}
	m := ServiceMatch{Port: uint16(port), Proto: proto}
	if len(f) == 3 {
		if m.Side, err = query.ParseSide(f[2]); err != nil || m.Side == capture.SideNone {
			return ServiceMatch{}, false
		}
	}
	return m, true
}

package alert

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
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
		var re *RuleError
		if errors.As(err, &re) {
			re.File = path
		}
		return nil, err
	}
	rs.Path = path
	return rs, nil
}

// RuleError is what is wrong with a rules document: where (File when it
// was read from one, Line when known: 0 is not) and in which field.
type RuleError struct {
	File  string
	Line  int
	Field string // "limits.running", `rule "r": expire`; "" for the document
	Msg   string
}

func (e *RuleError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString("rules " + e.File)
		if e.Line > 0 {
			b.WriteString(":")
		} else {
			b.WriteString(": ")
		}
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line) + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func errAt(n *yaml.Node, field, format string, args ...any) error {
	return &RuleError{Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// The rules document as decoded, before validation. Values are nodes: the
// validation pass reads them with the lines they are on, for its messages.
// Decoding with KnownFields refuses keys these structs do not have.
type rulesDoc struct {
	Rules  []ruleDoc  `yaml:"rules"`
	Limits *limitsDoc `yaml:"limits"`
}

type limitsDoc struct {
	PerWindow yaml.Node `yaml:"incidents_per_window"`
	Active    yaml.Node `yaml:"active"`
	Running   yaml.Node `yaml:"running"`
	Queued    yaml.Node `yaml:"queued"`
}

type ruleDoc struct {
	Name      yaml.Node   `yaml:"name"`
	Scope     *scopeDoc   `yaml:"scope"`
	Per       yaml.Node   `yaml:"per"`
	PrefixV4  yaml.Node   `yaml:"prefix_v4"`
	PrefixV6  yaml.Node   `yaml:"prefix_v6"`
	Metric    yaml.Node   `yaml:"metric"`
	Threshold yaml.Node   `yaml:"threshold"`
	Period    yaml.Node   `yaml:"period"`
	Windows   yaml.Node   `yaml:"windows"`
	Expire    yaml.Node   `yaml:"expire"`
	Cooldown  yaml.Node   `yaml:"cooldown"`
	OnRefire  yaml.Node   `yaml:"on_refire"`
	Actions   []actionDoc `yaml:"actions"`
}

type scopeDoc struct {
	Remote  yaml.Node `yaml:"remote"`
	Country yaml.Node `yaml:"country"`
	ASN     yaml.Node `yaml:"asn"`
	Service yaml.Node `yaml:"service"`
}

type actionDoc struct {
	Exec    yaml.Node `yaml:"exec"`
	Undo    yaml.Node `yaml:"undo"`
	Timeout yaml.Node `yaml:"timeout"`
	Webhook yaml.Node `yaml:"webhook"`
	Retries yaml.Node `yaml:"retries"`
	Backoff yaml.Node `yaml:"backoff"`
	Log     yaml.Node `yaml:"log"`
}

// docPaths name the document's parts in messages, by the type decoded.
var docPaths = map[reflect.Type]string{
	reflect.TypeFor[rulesDoc]():  "",
	reflect.TypeFor[limitsDoc](): "limits",
	reflect.TypeFor[ruleDoc]():   "rule",
	reflect.TypeFor[scopeDoc]():  "rule.scope",
	reflect.TypeFor[actionDoc](): "rule.actions",
}

// given says whether a field was in the document.
func given(n yaml.Node) bool { return n.Kind != 0 }

// ParseRules validates a rules document (YAML; see docs/alerts.md's Alerts
// section for the format).
func ParseRules(b []byte) (*RuleSet, error) {
	// The tree is for the lines of the lists' items, which decoding into
	// structs does not keep; it also reports syntax errors first.
	var tree yaml.Node
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return nil, yamlError(err)
	}
	rs := &RuleSet{Limits: DefaultLimits}
	if len(tree.Content) == 0 {
		return rs, nil // an empty file: no rules
	}
	var doc rulesDoc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, yamlError(err)
	}
	if doc.Limits != nil {
		var err error
		if rs.Limits, err = doc.Limits.validate(); err != nil {
			return nil, err
		}
	}
	items := child(tree.Content[0], "rules")
	if items != nil && items.Kind == yaml.SequenceNode {
		// The decoder makes nothing of an empty item ("-" alone, "~").
		for _, it := range items.Content {
			if it = deref(it); it.Kind != yaml.MappingNode {
				return nil, errAt(it, "", "rule must be a mapping (key: value)")
			}
		}
	}
	seen := map[string]int{}
	for i := range doc.Rules {
		r, err := doc.Rules[i].validate(item(items, i, tree.Content[0]))
		if err != nil {
			return nil, err
		}
		if l, dup := seen[r.Name]; dup {
			return nil, errAt(&doc.Rules[i].Name, "name", "rule %q is already defined at line %d", r.Name, l)
		}
		seen[r.Name] = r.Line
		rs.Rules = append(rs.Rules, r)
	}
	return rs, nil
}

// child is the value of key in mapping n (nil when n is not a mapping or
// lacks it, as when the key comes from a merge).
func child(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return deref(n.Content[i+1])
		}
	}
	return nil
}

// item is the i-th item of sequence n, or near when the tree does not
// have it where the decoder found it (an alias, a merge).
func item(n *yaml.Node, i int, near *yaml.Node) *yaml.Node {
	if n = deref(n); n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return deref(n.Content[i])
	}
	return near
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

var (
	yamlLineRE     = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownRE  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	yamlDupRE      = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	yamlDupFieldRE = regexp.MustCompile(`^field (\S+) already set in type (\S+)$`)
	yamlTypeRE     = regexp.MustCompile(`^cannot unmarshal \S+(?: .*)? into (\S+)$`)
)

// yamlError turns the YAML package's error into a RuleError. Its decoding
// errors are strings ("line 7: field treshold not found in type
// alert.ruleDoc"); the forms it has are put in the words of the other
// messages, and one it may add later keeps its line and its own words.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A syntax error: "yaml: line N: ..."
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return &RuleError{Line: n, Msg: "not valid YAML: " + m[2]}
		}
		return &RuleError{Msg: "not valid YAML: " + msg}
	}
	e := &RuleError{Msg: strings.Join(te.Errors, "; ")}
	m := yamlLineRE.FindStringSubmatch(te.Errors[0])
	if m == nil {
		return e
	}
	e.Line, _ = strconv.Atoi(m[1])
	e.Msg = m[2]
	path := func(typ string) (string, reflect.Type, bool) {
		for t, p := range docPaths {
			if t.String() == typ {
				return p, t, true
			}
		}
		return "", nil, false
	}
	if u := yamlUnknownRE.FindStringSubmatch(m[2]); u != nil {
		if where, t, ok := path(u[2]); ok {
			e.Field, e.Msg = join(where, u[1]), "unknown field (want one of "+strings.Join(yamlFields(t), ", ")+")"
		}
	} else if d := yamlDupRE.FindStringSubmatch(m[2]); d != nil {
		e.Field, e.Msg = d[1], "given twice (first at line "+d[2]+")"
	} else if d := yamlDupFieldRE.FindStringSubmatch(m[2]); d != nil {
		if where, _, ok := path(d[2]); ok {
			e.Field, e.Msg = join(where, d[1]), "given twice"
		}
	} else if c := yamlTypeRE.FindStringSubmatch(m[2]); c != nil {
		typ := c[1]
		list := strings.HasPrefix(typ, "[]")
		if where, _, ok := path(strings.TrimPrefix(strings.TrimPrefix(typ, "[]"), "*")); ok {
			switch {
			case list && where == "rule":
				e.Field, e.Msg = "rules", "want a list of rules"
			case list:
				e.Field, e.Msg = where, "want a list"
			case where == "":
				e.Msg = "the document must be a mapping (key: value)"
			default:
				e.Msg = where + " must be a mapping (key: value)"
			}
		}
	}
	return e
}

// yamlFields are the keys a document struct has.
func yamlFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		out = append(out, name)
	}
	return out
}

func (d *limitsDoc) validate() (Limits, error) {
	l := DefaultLimits
	for _, x := range []struct {
		name   string
		n      *yaml.Node
		dst    *int
		lo, hi int
	}{
		{"incidents_per_window", &d.PerWindow, &l.PerWindow, 1, 100000},
		{"active", &d.Active, &l.Active, 1, 100000},
		{"running", &d.Running, &l.Running, 1, 256},
		{"queued", &d.Queued, &l.Queued, 0, 100000},
	} {
		if given(*x.n) {
			var err error
			if *x.dst, err = intField(x.n, "limits."+x.name, x.lo, x.hi); err != nil {
				return l, err
			}
		}
	}
	return l, nil
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

// validate checks a rule; n is its node in the document's tree, for the
// lines of the rule and of its actions.
func (d *ruleDoc) validate(n *yaml.Node) (*Rule, error) {
	r := &Rule{Line: n.Line, Per: PerHost, PrefixV4: 24, PrefixV6: 64, Windows: 1, OnRefire: RefireExtend}
	if !given(d.Name) {
		return nil, errAt(n, "name", "every rule needs a name")
	}
	var err error
	if r.Name, err = scalar(&d.Name, "name"); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(r.Name) {
		return nil, errAt(&d.Name, "name", "%q: want letters, digits, '.', '_' or '-', at most 64", r.Name)
	}
	at := func(field string) string { return fmt.Sprintf("rule %q: %s", r.Name, field) }
	if d.Scope != nil {
		if err := r.validateScope(d.Scope, at("scope")); err != nil {
			return nil, err
		}
	}
	if given(d.Per) {
		v, err := scalar(&d.Per, at("per"))
		if err != nil {
			return nil, err
		}
		switch Per(v) {
		case PerHost, PerRemote, PerPrefix:
			r.Per = Per(v)
		default:
			return nil, errAt(&d.Per, at("per"), "%q: want host, remote or prefix", v)
		}
	}
	for _, x := range []struct {
		name string
		n    *yaml.Node
		dst  *int
		max  int
	}{{"prefix_v4", &d.PrefixV4, &r.PrefixV4, 32}, {"prefix_v6", &d.PrefixV6, &r.PrefixV6, 128}} {
		if given(*x.n) {
			if r.Per != PerPrefix {
				return nil, errAt(x.n, at(x.name), "only with per: prefix")
			}
			if *x.dst, err = intField(x.n, at(x.name), 0, x.max); err != nil {
				return nil, err
			}
		}
	}
	if !given(d.Metric) {
		return nil, errAt(n, at("metric"), "missing (want one of %s)", metricList())
	}
	v, err := scalar(&d.Metric, at("metric"))
	if err != nil {
		return nil, err
	}
	if !slices.Contains(metrics, Metric(v)) {
		return nil, errAt(&d.Metric, at("metric"), "%q: want one of %s", v, metricList())
	}
	r.Metric = Metric(v)
	if !given(d.Threshold) {
		return nil, errAt(n, at("threshold"), "missing")
	}
	tv, err := scalar(&d.Threshold, at("threshold"))
	if err != nil {
		return nil, err
	}
	if r.Threshold, err = ParseThreshold(tv); err != nil {
		return nil, errAt(&d.Threshold, at("threshold"), "%q: want a positive number, optionally with k, M, G, T (x1000) or Ki, Mi, Gi, Ti (x1024), e.g. 50M", tv)
	}
	if given(d.Period) {
		if !r.Metric.isBytes() {
			return nil, errAt(&d.Period, at("period"), "only with a bytes metric (tx_bytes, rx_bytes, bytes); rates are per window")
		}
		if r.Period, err = durField(&d.Period, at("period"), time.Second, maxPeriod); err != nil {
			return nil, err
		}
	} else if r.Metric.isBytes() {
		return nil, errAt(n, at("period"), "missing: a bytes metric needs the period to sum over, e.g. period: 1h")
	}
	if given(d.Windows) {
		if r.Windows, err = intField(&d.Windows, at("windows"), 1, maxWindows); err != nil {
			return nil, err
		}
	}
	if !given(d.Expire) {
		return nil, errAt(n, at("expire"), "missing: how long an incident lasts, e.g. expire: 1h")
	}
	if r.Expire, err = durField(&d.Expire, at("expire"), time.Second, 366*24*time.Hour); err != nil {
		return nil, err
	}
	if given(d.Cooldown) {
		if r.Cooldown, err = durField(&d.Cooldown, at("cooldown"), 0, 366*24*time.Hour); err != nil {
			return nil, err
		}
	}
	if given(d.OnRefire) {
		v, err := scalar(&d.OnRefire, at("on_refire"))
		if err != nil {
			return nil, err
		}
		if v != RefireExtend && v != RefireRecord {
			return nil, errAt(&d.OnRefire, at("on_refire"), "%q: want extend or record", v)
		}
		r.OnRefire = v
	}
	acts := child(n, "actions")
	if len(d.Actions) == 0 {
		if acts == nil {
			return nil, errAt(n, at("actions"), "missing: a rule needs at least one action (exec, webhook or log)")
		}
		return nil, errAt(acts, at("actions"), "want a list of at least one action")
	}
	for i := range d.Actions {
		spec, err := d.Actions[i].validate(item(acts, i, n), fmt.Sprintf("rule %q: actions[%d]", r.Name, i))
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

func (r *Rule) validateScope(d *scopeDoc, where string) error {
	if given(d.Service) {
		list, err := stringList(&d.Service, join(where, "service"))
		if err != nil {
			return err
		}
		for _, s := range list {
			m, ok := parseServiceMatch(s)
			if !ok {
				return errAt(&d.Service, join(where, "service"), "%q: want PORT/PROTO or PORT/PROTO/SIDE, e.g. 443/tcp/out, 8080/tcp/in, 0/icmp", s)
			}
			r.Services = append(r.Services, m)
		}
	}
	if given(d.Remote) {
		list, err := stringList(&d.Remote, join(where, "remote"))
		if err != nil {
			return err
		}
		for _, s := range list {
			p, err := query.ParsePrefix(s)
			if err != nil {
				return errAt(&d.Remote, join(where, "remote"), "%q: not an address or CIDR prefix", s)
			}
			r.Remotes = append(r.Remotes, p)
		}
	}
	if given(d.Country) {
		list, err := stringList(&d.Country, join(where, "country"))
		if err != nil {
			return err
		}
		for _, s := range list {
			if len(s) != 2 {
				return errAt(&d.Country, join(where, "country"), "%q: want a two-letter code, or -- for unknown", s)
			}
			r.Countries = append(r.Countries, strings.ToUpper(s))
		}
	}
	if given(d.ASN) {
		list, err := stringList(&d.ASN, join(where, "asn"))
		if err != nil {
			return err
		}
		for _, s := range list {
			a, err := query.ParseASN(s)
			if err != nil {
				return errAt(&d.ASN, join(where, "asn"), "%q: want an AS number", s)
			}
			r.ASNs = append(r.ASNs, a)
		}
	}
	return nil
}

// validate checks an action; n is its node, for its line.
func (d *actionDoc) validate(n *yaml.Node, where string) (ActionSpec, error) {
	var kinds []string
	for _, k := range []struct {
		kind string
		n    *yaml.Node
	}{{KindExec, &d.Exec}, {KindWebhook, &d.Webhook}, {KindLog, &d.Log}} {
		if given(*k.n) {
			kinds = append(kinds, k.kind)
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
	for _, f := range []struct {
		name string
		n    *yaml.Node
	}{{"undo", &d.Undo}, {"timeout", &d.Timeout}, {"retries", &d.Retries}, {"backoff", &d.Backoff}} {
		if given(*f.n) && !slices.Contains(allowed, f.name) {
			return a, &RuleError{Line: keyLine(n, f.name, f.n.Line), Field: join(where, f.name),
				Msg: fmt.Sprintf("not a field of a %s action (want %s)", a.Kind, strings.Join(allowed, ", "))}
		}
	}
	var err error
	switch a.Kind {
	case KindExec:
		a.Timeout = DefaultExecTimeout
		if a.Argv, err = argv(&d.Exec, join(where, "exec")); err != nil {
			return a, err
		}
		if given(d.Undo) {
			if a.Undo, err = argv(&d.Undo, join(where, "undo")); err != nil {
				return a, err
			}
		}
	case KindWebhook:
		a.Timeout, a.Retries, a.Backoff = DefaultWebhookTimeout, DefaultRetries, DefaultBackoff
		if a.URL, err = scalar(&d.Webhook, join(where, "webhook")); err != nil {
			return a, err
		}
		u, err := url.Parse(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return a, errAt(&d.Webhook, join(where, "webhook"), "%q: want an http:// or https:// URL", RedactURL(a.URL))
		}
		if given(d.Retries) {
			if a.Retries, err = intField(&d.Retries, join(where, "retries"), 0, 20); err != nil {
				return a, err
			}
		}
		if given(d.Backoff) {
			if a.Backoff, err = durField(&d.Backoff, join(where, "backoff"), time.Millisecond, maxBackoff); err != nil {
				return a, err
			}
		}
	case KindLog:
		v, err := scalar(&d.Log, join(where, "log"))
		if err != nil || v != "true" {
			return a, errAt(&d.Log, join(where, "log"), "write log: true")
		}
	}
	if given(d.Timeout) {
		if a.Timeout, err = durField(&d.Timeout, join(where, "timeout"), time.Millisecond, time.Hour); err != nil {
			return a, err
		}
	}
	return a, nil
}

// keyLine is the line of key in mapping n, or def.
func keyLine(n *yaml.Node, key string, def int) int {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i].Line
			}
		}
	}
	return def
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
	Proto window.Proto
	Side  window.Side
}

func (m ServiceMatch) matches(k window.ServiceKey) bool {
	return k.Port() == m.Port && k.Proto() == m.Proto && (m.Side == window.SideNone || k.Side() == m.Side)
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
	proto, err := window.ParseProto(f[1])
	if err != nil {
		return ServiceMatch{}, false
	}
	m := ServiceMatch{Port: uint16(port), Proto: proto}
	if len(f) == 3 {
		if m.Side, err = query.ParseSide(f[2]); err != nil || m.Side == window.SideNone {
			return ServiceMatch{}, false
		}
	}
	return m, true
}

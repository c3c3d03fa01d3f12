// Package metrics exposes dstwatch to Prometheus: daemon health and traffic
// counters with bounded labels, on an opt-in HTTP listener (/metrics), or
// HTTPS with auth as a web configuration file says (internal/webconfig).
//
// Traffic and per-window health counters are fed by Observe, which the
// writer calls after each window was stored, so that they agree exactly
// with what 'dstwatch query' reads for the same windows. They only grow
// while the process lives and start from zero after a restart, as
// Prometheus counters should. Gauges and the writer's own counters are read
// at scrape time through Config.Health.
//
// Cardinality is bounded by construction: never one series per remote.
//
//   - country: the two upper-case letters of an ISO 3166-1 code, "unknown"
//     (no country, or anything else the database says), or "other" (the
//     remotes a window folded under --max-remotes);
//
//   - asn: at most Config.ASNTop AS numbers for the process lifetime (see
//     asnSet), "unknown" (AS 0) and "other" (every other AS, and the folded
//     remotes).
//
//   - service and side: at most Config.ServiceTop services for the process
//     lifetime, bounded the same way, and "other" (services.go).
package metrics

import (
	"cmp"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dstwatch/dstwatch/internal/webconfig"
	"github.com/dstwatch/dstwatch/window"
)

// Label values with a meaning of their own.
const (
	Unknown = "unknown" // no country (or an invalid code), AS number 0
	Other   = "other"   // folded by --max-remotes; for asn also every AS without a series of its own
)

// DefaultASNTop is the default of --metrics-asn-top.
const DefaultASNTop = 20

// Config configures New.
type Config struct {
	// ASNTop is how many AS numbers get series of their own over the
	// process lifetime; 0 puts every known AS into "other".
	ASNTop int
	// ServiceTop bounds the services with series of their own
	// (services.go) as ASNTop bounds the ASNs.
	ServiceTop int
	Version    string // for dstwatch_build_info
	// Health is called once per scrape for the gauges and the writer's
	// counters; nil exports none of them.
	Health func() Health
	// WebConfig is an exporter-toolkit web configuration file (TLS,
	// client certificates, basic auth) the listener serves by, re-read on
	// every connection; "" serves plain HTTP. Log gets the toolkit's and
	// the TLS handshakes' messages.
	WebConfig string
	Log       *slog.Logger
}

// Health is the daemon's state at scrape time.
type Health struct {
	WriterBacklog  int    // closed windows waiting to be stored
	StoreErrors    uint64 // failed store transactions
	WindowsDropped uint64 // windows given up because the store queue was full
	CaptureGaps    uint64 // live capture outages (interface down or gone)
	InterfacesDown int    // interfaces not capturing now
	GeoIP          []GeoFile
	Export         *ExportLag // nil without an export to ClickHouse
	Alerts         *Alerts    // nil while alerts are off
}

// Alerts is the alert engine's state under its limits.
type Alerts struct {
	Active, Running, Queued int
	Suppressed              map[string]uint64 // by reason: per_window, active, queue
}

// ExportLag is how far the export to ClickHouse is behind the database.
type ExportLag struct{ Windows, Seconds int64 }

// GeoFile is one opened .mmdb file.
type GeoFile struct {
	Path  string
	Type  string // database type, e.g. GeoLite2-Country
	Build time.Time
}

// Metrics holds the daemon's collectors and registry.
type Metrics struct {
	reg *prometheus.Registry

	mu   sync.Mutex // Observe: the ASN set and org labels
	asns *asnSet
	orgs map[string]string // asn label -> org label of its dstwatch_asn_info series

	bytes, packets       *prometheus.CounterVec // direction, country
	asnBytes, asnPackets *prometheus.CounterVec // direction, asn
	asnInfo              *prometheus.GaugeVec   // asn, org
	services             *serviceMetrics        // direction, service, side

	windows, frames, tallied prometheus.Counter
	skipped                  *prometheus.CounterVec // reason
	drops, late, folded      prometheus.Counter
	overflow                 prometheus.Counter
	lastWindow               prometheus.Gauge
	lastEnd                  int64 // Unix seconds of lastWindow

	webConfig string // Config.WebConfig, for Listen
	log       *slog.Logger
}

// New makes the collectors and registers them, with the Go runtime and
// process collectors, on a registry of their own.
func New(cfg Config) *Metrics {
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		asns: newASNSet(cfg.ASNTop),
		orgs: map[string]string{},

		webConfig: cfg.WebConfig,
		log:       cfg.Log,
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.services = newServiceMetrics(cfg.ServiceTop)
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m.bytes = counterVec("dstwatch_traffic_bytes_total",
		"IP bytes (total length) exchanged with remotes, by direction (tx: sent by this host) and the remote's country, over the stored windows.",
		"direction", "country")
	m.packets = counterVec("dstwatch_traffic_packets_total",
		"IP packets exchanged with remotes, by direction and the remote's country, over the stored windows.",
		"direction", "country")
	m.asnBytes = counterVec("dstwatch_asn_traffic_bytes_total",
		"IP bytes exchanged with remotes, by direction and the remote's AS number (the first --metrics-asn-top ASNs to rank in a window's top; the rest in asn=\"other\").",
		"direction", "asn")
	m.asnPackets = counterVec("dstwatch_asn_traffic_packets_total",
		"IP packets exchanged with remotes, by direction and the remote's AS number, as dstwatch_asn_traffic_bytes_total.",
		"direction", "asn")
	m.asnInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dstwatch_asn_info",
		Help: "Organisation name of each AS number with series of its own; always 1."}, []string{"asn", "org"})
	m.windows = counter("dstwatch_windows_stored_total", "Windows stored in the database.")
	m.frames = counter("dstwatch_frames_total", "Frames seen by dstwatch in the stored windows: tallied plus skipped.")
	m.tallied = counter("dstwatch_frames_tallied_total", "Frames counted for a remote in the stored windows.")
	m.skipped = counterVec("dstwatch_frames_skipped_total",
		"Frames seen but not tallied in the stored windows, by reason: non_ip, transit (neither address local), malformed, excluded (--exclude), local (both addresses local), oversize (IP length larger than the wire carried), spoofed (received with a local source address).",
		"reason")
	m.drops = counter("dstwatch_kernel_drops_total", "Frames the kernel dropped before dstwatch saw them, in the stored windows.")
	m.late = counter("dstwatch_late_frames_total", "Frames stamped for an already closed window, counted in a later one.")
	m.folded = counter("dstwatch_remotes_folded_total", "Remotes folded into the 'other' row by --max-remotes, summed over the stored windows.")
	m.overflow = counter("dstwatch_overflow_frames_total", "Frames of remotes that came when the open window was full (--max-open-remotes), summed exactly into 'other'.")
	m.lastWindow = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dstwatch_last_stored_window_end_timestamp_seconds",
		Help: "End of the newest stored window, in Unix seconds."})
	for _, r := range skipReasons {
		m.skipped.WithLabelValues(r.name) // present from the start, at 0
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "dstwatch_build_info",
		Help:        "dstwatch's version and the Go version it was built with; always 1.",
		ConstLabels: prometheus.Labels{"version": cfg.Version, "goversion": runtime.Version()}})
	build.Set(1)

	m.reg.MustRegister(m.bytes, m.packets, m.asnBytes, m.asnPackets, m.asnInfo, m.services.bytes, m.services.pkts,
		m.windows, m.frames, m.tallied, m.skipped, m.drops, m.late, m.folded, m.overflow, m.lastWindow, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Health != nil {
		m.reg.MustRegister(&healthCollector{fn: cfg.Health})
	}
	return m
}

// Gatherer is the registry, for tests and other exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

var skipReasons = []struct {
	name string
	n    func(*window.Stats) uint64
}{
	{"non_ip", func(s *window.Stats) uint64 { return s.NonIP }},
	{"transit", func(s *window.Stats) uint64 { return s.Transit }},
	{"malformed", func(s *window.Stats) uint64 { return s.Malformed }},
	{"excluded", func(s *window.Stats) uint64 { return s.Excluded }},
	{"local", func(s *window.Stats) uint64 { return s.Local }},
	{"oversize", func(s *window.Stats) uint64 { return s.Oversize }},
	{"spoofed", func(s *window.Stats) uint64 { return s.Spoofed }},
}

// CountryLabel is the country label of a stored country code: the code
// when it is two upper-case ASCII letters, else "unknown".
func CountryLabel(cc string) string {
	if len(cc) == 2 && 'A' <= cc[0] && cc[0] <= 'Z' && 'A' <= cc[1] && cc[1] <= 'Z' {
		return cc
	}
	return Unknown
}

// labelValue makes s a valid label value. geo cleans what it reads, but a
// label value that is not UTF-8 makes WithLabelValues panic (killing the
// writer and the daemon) and a scrape fail, so the collector checks again.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Observe adds a stored window to the counters. The writer calls it once
// per window, after the window was stored, from one goroutine.
func (m *Metrics) Observe(w *window.Window) {
	m.mu.Lock()
	defer m.mu.Unlock()
	byCountry := map[string]*window.Counts{}
	byASN := map[uint32]*window.Counts{}
	orgs := map[uint32]string{}
	add := func(m map[string]*window.Counts, k string, c window.Counts) {
		if m[k] == nil {
			m[k] = &window.Counts{}
		}
		m[k].Add(c)
	}
	for i := range w.Remotes {
		r := &w.Remotes[i]
		add(byCountry, CountryLabel(r.Country), r.Counts)
		if byASN[r.ASN] == nil {
			byASN[r.ASN] = &window.Counts{}
		}
		byASN[r.ASN].Add(r.Counts)
		if r.ASOrg != "" {
			orgs[r.ASN] = labelValue(r.ASOrg)
		}
	}
	// Admit the window's heaviest ASNs while there is room, then sort
	// every AS into its own series or "other".
	asns := make([]asnBytes, 0, len(byASN))
	for asn, c := range byASN {
		if asn != 0 {
			asns = append(asns, asnBytes{asn, c.Bytes()})
		}
	}
	m.asns.admit(asns)
	labelled := map[string]*window.Counts{}
	for asn, c := range byASN {
		add(labelled, m.asns.label(asn), *c)
	}
	if !w.Other.IsZero() {
		add(byCountry, Other, w.Other)
		add(labelled, Other, w.Other)
	}
	addCounts(m.bytes, m.packets, byCountry)
	addCounts(m.asnBytes, m.asnPackets, labelled)
	for asn, org := range orgs {
		l := m.asns.label(asn)
		if l == Other || l == Unknown || m.orgs[l] == org {
			continue
		}
		if old, ok := m.orgs[l]; ok {
			m.asnInfo.DeleteLabelValues(l, old)
		}
		m.orgs[l] = org
		m.asnInfo.WithLabelValues(l, org).Set(1)
	}
	m.services.observe(w.Services) // services.go

	s := &w.Stats
	m.windows.Inc()
	m.frames.Add(float64(s.Frames))
	m.tallied.Add(float64(s.Tallied))
	for _, r := range skipReasons {
		m.skipped.WithLabelValues(r.name).Add(float64(r.n(s)))
	}
	m.drops.Add(float64(s.Drops))
	m.late.Add(float64(s.Late))
	m.folded.Add(float64(s.Folded))
	m.overflow.Add(float64(s.Overflow))
	if end := w.End().Unix(); end > m.lastEnd {
		m.lastEnd = end
		m.lastWindow.Set(float64(end))
	}
}

// addCounts adds each label's counts to the bytes and packets vectors,
// both directions, so a label's four series appear together.
func addCounts(bytes, packets *prometheus.CounterVec, by map[string]*window.Counts) {
	for l, c := range by {
		bytes.WithLabelValues("tx", l).Add(float64(c.TxBytes))
		bytes.WithLabelValues("rx", l).Add(float64(c.RxBytes))
		packets.WithLabelValues("tx", l).Add(float64(c.TxPackets))
		packets.WithLabelValues("rx", l).Add(float64(c.RxPackets))
	}
}

// asnBytes is an AS number with a window's bytes, both ways.
type asnBytes struct {
	asn   uint32
	bytes uint64
}

// asnSet is the bounded set of AS numbers with series of their own.
//
// A counter's series cannot move to another label without breaking either
// monotonicity (its value would shrink) or the bound (a new series per
// newcomer), so admission is for the process lifetime: an AS gets its own
// series the first time it ranks among the top max ASNs (by bytes, both
// ways; AS 0 never competes) of a stored window, while fewer than max ASNs
// have one. Its traffic before that window is in "other", and so is every
// AS that was not admitted. Thus the asn label takes at most max+2 values
// (those ASNs, "unknown", "other") whatever the traffic does, and every
// series only grows. A restart chooses afresh, as the counters restart.
type asnSet struct {
	max int
	in  map[uint32]string // admitted AS -> its label
}

func newASNSet(max int) *asnSet { return &asnSet{max: max, in: map[uint32]string{}} }

// admit gives series to the window's top ASNs while there is room.
func (s *asnSet) admit(window []asnBytes) {
	if len(s.in) >= s.max {
		return
	}
	slices.SortFunc(window, func(a, b asnBytes) int {
		if c := cmp.Compare(b.bytes, a.bytes); c != 0 {
			return c
		}
		return cmp.Compare(a.asn, b.asn)
	})
	for _, a := range window[:min(len(window), s.max)] {
		if len(s.in) >= s.max {
			return
		}
		if _, ok := s.in[a.asn]; !ok {
			s.in[a.asn] = strconv.FormatUint(uint64(a.asn), 10)
		}
	}
}

// label is the asn label of an AS number.
func (s *asnSet) label(asn uint32) string {
	if asn == 0 {
		return Unknown
	}
	if l, ok := s.in[asn]; ok {
		return l
	}
	return Other
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Server is the /metrics HTTP listener.
type Server struct {
	srv       *http.Server
	ln        net.Listener
	webConfig string
	log       *slog.Logger
}

// Listen opens the TCP listener on addr (host:port), so that a busy port
// fails the start; Serve then serves it.
func (m *Metrics) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("dstwatch: metrics are at /metrics\n"))
	})
	return &Server{ln: ln, webConfig: m.webConfig, log: m.log, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown or Close; it then returns nil.
func (s *Server) Serve() error {
	if err := webconfig.Serve(s.ln, s.srv, s.webConfig, s.log); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops serving and closes the listener, also when Serve never ran.
func (s *Server) Close() error {
	err := s.srv.Close()
	if cerr := s.ln.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}

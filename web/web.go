// Package web is the daemon's opt-in, read-only dashboard (dstwatch run
// --web ADDR): one page with embedded assets (no CDN), whose charts are the
// report package's SVG, fed by a small JSON API over the database and a
// server-sent-events stream of windows as the daemon stores them.
package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/hub"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/internal/webconfig"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/report"
	"github.com/dstwatch/dstwatch/window"
)

//go:embed assets
var assets embed.FS

// Config is the dashboard's.
type Config struct {
	Addr     string // host:port
	Token    string // non-empty: require it (Bearer header, ?token= once, then a cookie)
	User     string // non-empty: require HTTP basic auth with Password
	Password string
	Reader   query.Reader
	Status   func() (api.Status, error)
	Log      *slog.Logger
	Location *time.Location // times shown; nil: local
	// WebConfig is an exporter-toolkit web configuration file (TLS,
	// client certificates, basic auth) to serve by, re-read on every
	// connection; "" serves plain HTTP. Its basic auth or verified client
	// certificates count as auth beyond loopback, as Token and User do.
	WebConfig string
}

// Server serves the dashboard.
type Server struct {
	cfg Config
	ln  net.Listener
	srv *http.Server
	tls webconfig.Info // what cfg.WebConfig set at Listen
	hub *hub.Hub       // the event streams: one 16 windows behind is dropped (the page reconnects)
}

// writeTimeout bounds one write to a page.
const writeTimeout = 10 * time.Second

const (
	maxStreams   = 64 // event streams open at once
	streamBuffer = 16 // windows a stream may lag behind before it is dropped
)

// ErrNeedsAuth refuses a listener beyond loopback without auth.
var ErrNeedsAuth = errors.New("a dashboard on an address beyond loopback needs a token, a user with a password, or a web config with basic_auth_users or client_auth_type RequireAndVerifyClientCert")

// ErrTwoBasicAuths refuses a dashboard user beside a web config's users:
// both would want the one Authorization header.
var ErrTwoBasicAuths = errors.New("a dashboard user and the basic_auth_users of the web config both want the Authorization header: keep one of them")

// Loopback reports whether addr's host is a loopback address or localhost.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackHost reports whether a request's Host header names this machine
// by a loopback name: localhost, 127.0.0.0/8 or ::1, with any port. A web
// page elsewhere can point its own host name at 127.0.0.1 (DNS rebinding)
// and read an open dashboard; its requests still carry its host name.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// cookieName holds the session cookie: an HMAC of the token, never the
// token itself, so that a cookie store or a leaked header does not hand
// out the token that scripts use as Bearer.
const cookieName = "dstwatch_session"

// session is the cookie value for token.
func session(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("dstwatch dashboard session v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// CheckAuth says whether cfg's auth fits where it listens, given what its
// web config sets (info): ErrNeedsAuth or ErrTwoBasicAuths. Listen checks
// it; a caller checks first to refuse a start before it opens anything.
func CheckAuth(cfg Config, info webconfig.Info) error {
	if cfg.Token == "" && cfg.User == "" && !info.Auth() && !Loopback(cfg.Addr) {
		return ErrNeedsAuth
	}
	if cfg.User != "" && info.Users {
		return ErrTwoBasicAuths
	}
	return nil
}

// Listen checks cfg and binds its address.
func Listen(cfg Config) (*Server, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("dashboard address %q: want host:port, e.g. 127.0.0.1:9751", cfg.Addr)
	}
	var info webconfig.Info
	if cfg.WebConfig != "" {
		var err error
		if info, err = webconfig.Check(cfg.WebConfig); err != nil {
			return nil, fmt.Errorf("web config: %w", err)
		}
	}
	if err := CheckAuth(cfg, info); err != nil {
		return nil, err
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("web dashboard: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln, tls: info, hub: hub.New(maxStreams, streamBuffer)}
	mux := http.NewServeMux()
	static := http.FileServerFS(assets)
	mux.Handle("GET /assets/", static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := assets.ReadFile("assets/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b)
	})
	mux.HandleFunc("GET /assets/report.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Write([]byte(report.Style))
	})
	mux.HandleFunc("GET /api/view", s.view)
	mux.HandleFunc("GET /api/status", s.status)
	mux.HandleFunc("GET /api/current", s.current)
	mux.HandleFunc("GET /api/events", s.events)
	s.srv = &http.Server{Handler: s.auth(mux), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
	return s, nil
}

// Addr is where the dashboard listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the dashboard's address, https:// when its web config set TLS.
func (s *Server) URL() string { return s.tls.Scheme() + "://" + s.ln.Addr().String() + "/" }

// Serve serves until Close.
func (s *Server) Serve() error {
	log := s.cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := webconfig.Serve(s.ln, s.srv, s.cfg.WebConfig, log.With("listener", "web")); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close ends the event streams and the server.
func (s *Server) Close() {
	s.hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	s.ln.Close()
}

func (s *Server) auth(next http.Handler) http.Handler {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	// A web config's users or client certificates authenticate before
	// this handler runs.
	open := s.cfg.User == "" && s.cfg.Token == "" && !s.tls.Auth()
	var sess string
	if s.cfg.Token != "" {
		sess = session(s.cfg.Token)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		if open && !loopbackHost(r.Host) {
			// Without auth only loopback is served (Listen), and only to
			// pages that call it by a loopback name.
			http.Error(w, "this dashboard answers only to localhost, 127.0.0.1 or [::1] (it has no token)", http.StatusMisdirectedRequest)
			return
		}
		if s.cfg.User != "" {
			u, p, ok := r.BasicAuth()
			if !ok || !eq(u, s.cfg.User) || !eq(p, s.cfg.Password) {
				w.Header().Set("WWW-Authenticate", `Basic realm="dstwatch"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		if s.cfg.Token != "" {
			ok := false
			if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
				ok = eq(strings.TrimPrefix(h, "Bearer "), s.cfg.Token)
			} else if c, err := r.Cookie(cookieName); err == nil {
				ok = eq(c.Value, sess)
			}
			if q := r.URL.Query().Get("token"); q != "" && eq(q, s.cfg.Token) {
				http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sess, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
				ok = true
			}
			if !ok {
				http.Error(w, "token required: open the dashboard once as /?token=TOKEN", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// RowJSON is one line of a dashboard table.
type RowJSON struct {
	Name    string `json:"name"`
	Country string `json:"country,omitempty"`
	Org     string `json:"org,omitempty"`
	query.CountsJSON
	Human [2]string `json:"human"` // tx and rx bytes for people
}

// ViewJSON is what the page shows for a range.
type ViewJSON struct {
	From      string            `json:"from"`
	To        string            `json:"to"`
	Title     string            `json:"title"`
	Units     int               `json:"units"`
	Total     query.CountsJSON  `json:"total"`
	Human     [2]string         `json:"human"`
	Remotes   []RowJSON         `json:"remotes"`
	Countries []RowJSON         `json:"countries"`
	ASNs      []RowJSON         `json:"asns"`
	Services  []RowJSON         `json:"services"`
	Notes     []string          `json:"notes"`
	Summary   query.SummaryJSON `json:"summary"`
	SeriesSVG string            `json:"series_svg"`
	BarsSVG   string            `json:"bars_svg"`
	MapSVG    string            `json:"map_svg"`
}

func row(name, cc, org string, c query.CountsJSON) RowJSON {
	return RowJSON{name, cc, org, c, [2]string{units.Bytes(c.TxBytes), units.Bytes(c.RxBytes)}}
}

// viewRange reads from/to (RFC 3339) or span (a Go duration back from now).
func viewRange(r *http.Request, now time.Time) (from, to time.Time, err error) {
	q := r.URL.Query()
	if f, t := q.Get("from"), q.Get("to"); f != "" || t != "" {
		if from, err = time.Parse(time.RFC3339, f); err != nil {
			return from, to, fmt.Errorf("from %q: want RFC 3339", f)
		}
		if to, err = time.Parse(time.RFC3339, t); err != nil {
			return from, to, fmt.Errorf("to %q: want RFC 3339", t)
		}
	} else {
		span := time.Hour
		if sp := q.Get("span"); sp != "" {
			if span, err = time.ParseDuration(sp); err != nil || span <= 0 {
				return from, to, fmt.Errorf("span %q: want a duration such as 1h or 168h", sp)
			}
		}
		to = now
		from = now.Add(-span)
	}
	if !to.After(from) || to.Sub(from) > api.MaxRange {
		return from, to, errors.New("want from before to, at most ten years apart")
	}
	return from, to, nil
}

func (s *Server) view(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	from, to, err := viewRange(r, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rep, err := report.Collect(r.Context(), s.cfg.Reader, from, to, now, report.Options{Top: 10, Buckets: 180})
	if err != nil {
		s.cfg.Log.Error("web view", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	loc := s.cfg.Location
	v := ViewJSON{
		From: from.UTC().Format(time.RFC3339), To: to.UTC().Format(time.RFC3339), Title: rep.Title(loc),
		Units: rep.Summary.Units(), Total: query.ToCounts(rep.Total),
		Human:   [2]string{units.Bytes(rep.Total.TxBytes), units.Bytes(rep.Total.RxBytes)},
		Notes:   rep.Notes(loc),
		Summary: query.ToSummaryJSON(rep.Summary),
		Remotes: []RowJSON{}, Countries: []RowJSON{}, ASNs: []RowJSON{}, Services: []RowJSON{},
		SeriesSVG: report.SeriesSVG(rep.Series, from, to, loc),
		MapSVG:    report.MapSVG(rep.CountryBytes),
	}
	var bars []report.Bar
	for _, x := range rep.Remotes {
		cc := report.CC(x.Country)
		if x.IsOther() {
			cc = ""
		}
		v.Remotes = append(v.Remotes, row(report.RowName(x, query.ByRemote), cc, "", query.ToCounts(x.Counts)))
	}
	for _, x := range rep.Countries {
		v.Countries = append(v.Countries, row(report.RowName(x, query.ByCountry), "", "", query.ToCounts(x.Counts)))
		bars = append(bars, report.Bar{Label: report.RowName(x, query.ByCountry), Tx: x.TxBytes, Rx: x.RxBytes})
	}
	for _, x := range rep.ASNs {
		v.ASNs = append(v.ASNs, row(report.RowName(x, query.ByASN), "", x.ASOrg, query.ToCounts(x.Counts)))
	}
	for _, x := range rep.Services {
		v.Services = append(v.Services, row(report.ServiceName(x), "", "", query.ToCounts(x.Counts)))
	}
	v.BarsSVG = report.BarsSVG(bars)
	writeJSON(w, v)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Status == nil {
		writeJSON(w, api.Status{})
		return
	}
	st, err := s.cfg.Status()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, st)
}

// WindowEvent is a window as the page shows it: totals and its heaviest
// remotes.
type WindowEvent struct {
	Start string `json:"start"`
	End   string `json:"end"`
	// Shown is Start as the rest of the page shows times (24-hour, in the
	// daemon's zone), not as the browser's locale would (2:03:20 PM).
	Shown   string `json:"shown"`
	Seconds int64  `json:"seconds"`
	Remotes int    `json:"remotes"`
	query.CountsJSON
	Human [2]string `json:"human"`
	Rate  [2]string `json:"rate"`
	Top   []RowJSON `json:"top"`
}

func windowEvent(w *window.Window, loc *time.Location) WindowEvent {
	var c = w.Other
	for i := range w.Remotes {
		c.Add(w.Remotes[i].Counts)
	}
	e := WindowEvent{
		Start: w.Start.UTC().Format(time.RFC3339), End: w.End().UTC().Format(time.RFC3339),
		Shown:   w.Start.In(loc).Format("2006-01-02 15:04:05 MST"),
		Seconds: int64(w.Length / time.Second), Remotes: len(w.Remotes), CountsJSON: query.ToCounts(c),
		Human: [2]string{units.Bytes(c.TxBytes), units.Bytes(c.RxBytes)},
		Rate:  [2]string{report.Rate(c.TxBytes, w.Length), report.Rate(c.RxBytes, w.Length)},
		Top:   []RowJSON{},
	}
	for i, r := range w.Remotes {
		if i == 5 {
			break
		}
		e.Top = append(e.Top, row(r.Addr.String(), report.CC(r.Country), "", query.ToCounts(r.Counts)))
	}
	return e
}

func (s *Server) current(w http.ResponseWriter, r *http.Request) {
	var ev *WindowEvent
	err := s.cfg.Reader.Windows(r.Context(), query.Range{Last: 1}, func(win *window.Window) error {
		e := windowEvent(win, s.cfg.Location)
		ev = &e
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, ev)
}

// Publish hands a stored window to the open event streams; a stream that
// lags 16 windows behind is dropped (the page reconnects).
func (s *Server) Publish(win *window.Window) {
	if !s.hub.Active() {
		return
	}
	b, err := json.Marshal(windowEvent(win, s.cfg.Location))
	if err != nil {
		return
	}
	s.hub.Publish(b)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	sub, err := s.hub.Subscribe()
	if err != nil { // closing, or maxStreams open
		http.Error(w, "no more streams", http.StatusServiceUnavailable)
		return
	}
	defer s.hub.Unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(": dstwatch windows\n\n"))
	fl.Flush()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	// A page that stops reading is dropped after writeTimeout per event,
	// not kept for good.
	rc := http.NewResponseController(w)
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err = w.Write([]byte(": ping\n\n"))
		case b, ok := <-sub.C():
			if !ok {
				return
			}
			rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err = fmt.Fprintf(w, "event: window\ndata: %s\n\n", b)
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

// Package api owns the daemon's local API: HTTP over a unix socket, so that
// while the daemon holds the database (bbolt locks it exclusively) people
// can still read it. The server answers windows, aggregates, status and a
// stream of windows as they are stored; Client is what the CLI uses.
//
// Endpoints (all GET, JSON; errors are {"error": "..."} with a 4xx or 5xx):
//
//	/v1/windows    windows in a range, oldest first: a JSON array of query.WindowJSON
//	/v1/aggregate  the range added up: a JSON array of rows (query.RowsJSON);
//	               with summary=1 an object {"summary": query.SummaryJSON,
//	               "rows": [...]}; header X-Dstwatch-Resolution either way
//	/v1/status     the daemon's state: Status
//	/v1/stream     newline-delimited query.WindowJSON, one per window as it is stored
//	/v1/incidents  alert incidents, and POST /v1/incidents/{id}/expire (incidents.go)
//
// Everyone who may connect may read; POST needs root or the daemon's own
// user (peer.go).
//
// Range parameters: from and to (RFC 3339; from inclusive, to exclusive, by
// window start) or last (the N newest windows). Filter parameters: remote
// (address or CIDR, repeatable), country (repeatable), asn (repeatable),
// direction (tx, rx, both). Aggregate also takes by (remote, country, asn,
// prefix with prefix4 and prefix6, or hour, day, week, month with tz),
// sort (bytes, packets), top and summary (1 or 0). A from..to aggregate is
// read from the rollup tiers where they are exact (storage.DB.Span), so a
// month costs the daemon a few hundred units, not 130,000 windows; last=N
// reads the N newest raw windows.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dstwatch/dstwatch/internal/hub"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// Source is what the server reads: the daemon's windows and answers (a
// query.Reader, which calls fn outside any transaction), and its state.
type Source interface {
	query.Reader
	Status() (Status, error)
}

// Limits on what one request may ask for. The socket is local and 0600 by
// default, but its requests are still input: a typo must not make the
// daemon read for minutes or hold a gigabyte.
const (
	MaxRange       = 10 * 366 * 24 * time.Hour // longest from..to
	MaxLast        = 1 << 20                   // largest last=N
	MaxTop         = 1 << 20
	maxFilterItems = 256 // remote, country and asn values together
	maxReaders     = 4   // concurrent window and aggregate reads of the database
	maxInFlight    = 64  // concurrent requests other than streams
	maxSubscribers = 64  // concurrent streams
	streamBuffer   = 64  // windows a stream subscriber may lag behind
)

// Time limits on a connection. A client that stops reading is cut off
// after writeTimeout without progress: the deadline is renewed for each
// chunk of a long answer and each window of a stream, never for a whole
// answer that may rightly take longer.
const (
	readTimeout  = 10 * time.Second // the request, headers and body
	writeTimeout = 10 * time.Second // one write to the client
	readerWait   = 2 * time.Second  // for a reader slot before answering 503
	chunkSize    = 64 << 10         // bytes of a windows answer written at a time
)

// errBusy is a request over a limit; it is answered 503 with Retry-After.
var errBusy = errors.New("the daemon is busy with other API requests; retry in a second")

// Server serves the API. Publish and Shutdown are safe from any goroutine.
type Server struct {
	src     Source
	inc     IncidentSource // nil: alerts are off
	log     *slog.Logger
	hub     *hub.Hub // the streams: a subscriber streamBuffer windows behind is dropped
	srv     *http.Server
	readers chan struct{} // a slot per concurrent read of the database, never held while writing to a client
	flight  chan struct{} // a slot per request in flight (streams have the hub's limit)
}

// New returns a server reading src and inc (nil: the daemon keeps no
// incidents); log gets one line per failed request.
func New(src Source, inc IncidentSource, log *slog.Logger) *Server {
	s := &Server{src: src, inc: inc, log: log, hub: hub.New(maxSubscribers, streamBuffer), readers: make(chan struct{}, maxReaders), flight: make(chan struct{}, maxInFlight)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/windows", s.handle(s.windows))
	mux.HandleFunc("GET /v1/aggregate", s.handle(s.aggregate))
	mux.HandleFunc("GET /v1/status", s.handle(s.status))
	mux.HandleFunc("GET /v1/stream", s.handle(s.stream))
	s.registerIncidents(mux) // incidents.go
	s.registerServices(mux)  // services.go
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint %s %s: see /v1/windows, /v1/aggregate, /v1/services, /v1/status, /v1/stream, /v1/incidents", r.Method, r.URL.Path)
	})
	s.srv = &http.Server{
		Handler:           s.limit(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout, // handlers that answer at length renew it
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext:       peerContext, // peer.go: who may act
	}
	return s
}

// limit answers 503 at once when maxInFlight requests are running, so
// that a crowd of clients costs the daemon a bounded number of goroutines
// and buffers and a quick "busy" rather than a queue nobody sees.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/stream" {
			next.ServeHTTP(w, r) // bounded by maxSubscribers
			return
		}
		select {
		case s.flight <- struct{}{}:
			defer func() { <-s.flight }()
		default:
			busy(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func busy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "%v", errBusy)
}

// acquire takes a reader slot, waiting at most readerWait; release gives
// it back (once; later calls do nothing).
func (s *Server) acquire(ctx context.Context) (release func(), err error) {
	return s.acquireWithin(ctx, readerWait)
}

func (s *Server) acquireWithin(ctx context.Context, wait time.Duration) (release func(), err error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.readers <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, errBusy
	}
	held := true
	return func() {
		if held {
			held = false
			<-s.readers
		}
	}, nil
}

// Handler is the API's HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Serve answers requests on l until Shutdown; it then returns nil.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// Publish hands a stored window to every stream subscriber. It never
// blocks: a subscriber whose buffer is full is disconnected.
func (s *Server) Publish(w *window.Window) {
	if !s.hub.Active() {
		return
	}
	b, err := json.Marshal(query.ToWindowJSON(w))
	if err != nil {
		s.log.Error("api: encode window", "err", err)
		return
	}
	s.hub.Publish(append(b, '\n'))
}

// Shutdown ends the streams, lets running requests finish until ctx is
// done, then closes every connection. The listener is closed, which removes
// its socket file.
func (s *Server) Shutdown(ctx context.Context) error {
	s.hub.Close()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

type errorJSON struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"` // for clients to tell errors by
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeReason(w, code, "", fmt.Sprintf(format, args...))
}

func writeReason(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(errorJSON{Error: msg, Reason: reason})
}

// writeJSON sends v with a write deadline of its own: an answer that took
// long to compute still has writeTimeout to go out.
func writeJSON(w http.ResponseWriter, v any) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// badRequest is a parameter error: 400 with its message.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

// params reads a query string strictly: unknown names and repeated
// single-valued names are errors, so that a typo is not silently ignored.
type params struct {
	v url.Values
}

func newParams(r *http.Request, allowed ...string) (*params, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, bad("query string: %v", err)
	}
	for k := range v {
		found := false
		for _, a := range allowed {
			found = found || a == k
		}
		if !found {
			return nil, bad("unknown parameter %q (want %s)", k, strings.Join(allowed, ", "))
		}
	}
	return &params{v: v}, nil
}

func (p *params) one(name string) (string, error) {
	vs := p.v[name]
	if len(vs) > 1 {
		return "", bad("parameter %s given %d times", name, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

func (p *params) intParam(name string, max int) (int, bool, error) {
	s, err := p.one(name)
	if err != nil || s == "" {
		return 0, false, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, false, bad("%s %q: want an integer from 0 to %d", name, s, max)
	}
	return n, true, nil
}

// span is the range a request asks for: from..to, or the last N windows.
func (p *params) span() (query.Range, error) {
	last, hasLast, err := p.intParam("last", MaxLast)
	if err != nil {
		return query.Range{}, err
	}
	from, err := p.one("from")
	if err != nil {
		return query.Range{}, err
	}
	to, err := p.one("to")
	if err != nil {
		return query.Range{}, err
	}
	if hasLast {
		if from != "" || to != "" {
			return query.Range{}, bad("give either last or from and to")
		}
		if last == 0 {
			return query.Range{}, bad("last must be at least 1")
		}
		return query.Range{Last: last}, nil
	}
	if from == "" || to == "" {
		return query.Range{}, bad("give from and to (RFC 3339), or last")
	}
	var sp query.Range
	if sp.From, err = time.Parse(time.RFC3339Nano, from); err != nil {
		return query.Range{}, bad("from %q: not an RFC 3339 time", from)
	}
	if sp.To, err = time.Parse(time.RFC3339Nano, to); err != nil {
		return query.Range{}, bad("to %q: not an RFC 3339 time", to)
	}
	switch {
	case !sp.To.After(sp.From):
		return query.Range{}, bad("to must be after from")
	case sp.To.Sub(sp.From) > MaxRange:
		return query.Range{}, bad("range longer than %d days", MaxRange/(24*time.Hour))
	}
	return sp, nil
}

func (p *params) filter() (query.Filter, error) {
	var f query.Filter
	if n := len(p.v["remote"]) + len(p.v["country"]) + len(p.v["asn"]); n > maxFilterItems {
		return f, bad("%d filter values; at most %d", n, maxFilterItems)
	}
	for _, s := range p.v["remote"] {
		pf, err := query.ParsePrefix(s)
		if err != nil {
			return f, bad("remote %q: not an address or CIDR prefix", s)
		}
		f.Remotes = append(f.Remotes, pf)
	}
	for _, s := range p.v["country"] {
		if len(s) != 2 {
			return f, bad("country %q: want a two-letter code, or -- for unknown", s)
		}
		f.Countries = append(f.Countries, strings.ToUpper(s))
	}
	for _, s := range p.v["asn"] {
		n, err := query.ParseASN(s)
		if err != nil {
			return f, bad("asn %q: want an AS number", s)
		}
		f.ASNs = append(f.ASNs, n)
	}
	d, err := p.one("direction")
	if err != nil {
		return f, err
	}
	if f.Direction, err = query.ParseDirection(d); err != nil {
		return f, bad("%v", err)
	}
	return f, nil
}

// handle adapts a handler that returns its error instead of answering it:
// it returns nil once it has written its answer, or an error before it has
// written anything, which fail answers.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}
}

// fail answers a handler's error: a parameter error 400, a limit 503, the
// incidents' errors 404 or 409 (incidents.go), and anything else 500 (and
// a log line), unless the client has gone.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br badRequest
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, "%s", br.msg)
	case errors.Is(err, errBusy):
		busy(w)
	case incidentFail(w, err):
	case r.Context().Err() != nil:
		// The client went away; nobody reads an answer.
	default:
		s.log.Error("api request", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "%v", err)
	}
}

// windows streams a JSON array, one window at a time, so that a long range
// costs the daemon one batch of windows and one chunk of memory. The reader
// slot is given back while a chunk goes out, and each chunk has its own
// write deadline: a client that stops reading holds no slot and is cut
// off after writeTimeout. A read error after the first chunk aborts the
// response; the client sees a truncated array.
func (s *Server) windows(w http.ResponseWriter, r *http.Request) error {
	p, err := newParams(r, "from", "to", "last", "remote", "country", "asn", "direction")
	if err != nil {
		return err
	}
	sp, err := p.span()
	if err != nil {
		return err
	}
	f, err := p.filter()
	if err != nil {
		return err
	}
	ctx := r.Context()
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { release() }()
	rc := http.NewResponseController(w)
	var buf bytes.Buffer
	started := false // the header and part of the array are out
	send := func() error {
		if !started {
			w.Header().Set("Content-Type", "application/json")
			started = true
		}
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		buf.Reset()
		return rc.Flush()
	}
	n := 0
	err = s.src.Windows(ctx, sp, func(win *window.Window) error {
		b, err := json.Marshal(query.ToWindowJSON(f.Apply(win)))
		if err != nil {
			return err
		}
		if n == 0 {
			buf.WriteString("[\n")
		} else {
			buf.WriteString(",\n")
		}
		n++
		buf.Write(b)
		if buf.Len() < chunkSize {
			return nil
		}
		release()
		if err := send(); err != nil {
			return err
		}
		// Half an answer is out: wait longer rather than cut it.
		again, err := s.acquireWithin(ctx, time.Minute)
		if err != nil {
			return err
		}
		release = again
		return nil
	})
	switch {
	case err != nil && !started:
		return err // the deferred release runs first: the answer goes out without a slot
	case err != nil:
		if ctx.Err() == nil && !isNetErr(err) {
			s.log.Error("api request", "path", r.URL.Path, "err", err)
		}
		panic(http.ErrAbortHandler)
	default:
		release()
		if n == 0 {
			buf.WriteString("[]\n")
		} else {
			buf.WriteString("\n]\n")
		}
		if send() != nil {
			panic(http.ErrAbortHandler)
		}
	}
	return nil
}

// isNetErr reports whether err came from writing to the client (it went
// away or stopped reading), which is not the daemon's error to log.
func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, http.ErrHandlerTimeout)
}

func (s *Server) aggregate(w http.ResponseWriter, r *http.Request) error {
	p, err := newParams(r, "from", "to", "last", "remote", "country", "asn", "direction", "by", "sort", "top", "summary",
		"tz", "prefix4", "prefix6")
	if err != nil {
		return err
	}
	sp, err := p.span()
	if err != nil {
		return err
	}
	f, err := p.filter()
	if err != nil {
		return err
	}
	byName, err := p.one("by")
	if err != nil {
		return err
	}
	if byName == "" {
		byName = string(query.ByRemote)
	}
	by, err := query.ParseBy(byName)
	if err == nil && by == query.ByWindow {
		err = errors.New("by window: use /v1/windows")
	}
	if err != nil {
		return bad("%v", err)
	}
	sortName, err := p.one("sort")
	if err != nil {
		return err
	}
	order, err := query.ParseSort(sortName)
	if err != nil {
		return bad("%v", err)
	}
	top, _, err := p.intParam("top", MaxTop)
	if err != nil {
		return err
	}
	wantSummary := false
	switch v, err := p.one("summary"); {
	case err != nil:
		return err
	case v == "1" || v == "true":
		wantSummary = true
	case v != "" && v != "0" && v != "false":
		return bad("summary %q: want 1 or 0", v)
	}
	q := query.Question{By: by, Filter: f, Sort: order, Top: top}
	if err := groupParams(p, &q); err != nil {
		return err
	}
	rows, sum, err := s.answer(r.Context(), sp, q)
	if err != nil {
		return err
	}
	w.Header().Set(ResolutionHeader, sum.Resolution.String())
	if wantSummary {
		writeJSON(w, AggregateJSON{Summary: query.ToSummaryJSON(sum), Rows: query.RowsJSON(rows, by)})
		return nil
	}
	writeJSON(w, query.RowsJSON(rows, by))
	return nil
}

// groupParams reads what periods and prefixes are grouped by: tz (UTC or
// an IANA name; periods only), prefix4 and prefix6 (ByPrefix only).
func groupParams(p *params, q *query.Question) error {
	tz, err := p.one("tz")
	if err != nil {
		return err
	}
	if tz != "" && !q.By.IsPeriod() {
		return bad("tz is for by hour, day, week or month")
	}
	if q.Loc, err = query.ParseZone(tz); err != nil {
		return bad("%v", err)
	}
	for _, b := range []struct {
		name string
		max  int
		to   *int
	}{{"prefix4", 32, &q.Prefix4}, {"prefix6", 128, &q.Prefix6}} {
		n, given, err := p.intParam(b.name, b.max)
		if err != nil {
			return err
		}
		if given && (q.By != query.ByPrefix || n == 0) {
			return bad("%s is for by prefix, from 1 to %d", b.name, b.max)
		}
		*b.to = n
	}
	return nil
}

// ResolutionHeader is set on every /v1/aggregate answer: "window" when the
// rows are exactly the raw windows' sums over the range, "hour" or "day"
// when raw windows (or hourly rollups) of the range were pruned and an
// edge was rounded to a coarser unit (storage.DB.Span).
const ResolutionHeader = "X-Dstwatch-Resolution"

// AggregateJSON is the /v1/aggregate answer with summary=1: the rows (the
// plain answer's array) and what they were read from.
type AggregateJSON struct {
	Summary query.SummaryJSON `json:"summary"`
	Rows    any               `json:"rows"`
}

// answer adds up sp as q asks, holding a reader slot: the source reads a
// range from its rollups.
func (s *Server) answer(ctx context.Context, sp query.Range, q query.Question) ([]query.Row, query.Summary, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, query.Summary{}, err
	}
	defer release()
	return s.src.Aggregate(ctx, sp, q)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	if _, err := newParams(r); err != nil {
		return err
	}
	st, err := s.src.Status()
	if err != nil {
		return err
	}
	writeJSON(w, st)
	return nil
}

// stream sends each window as it is stored, one JSON line each. The header
// is flushed at once: a client that has it is subscribed. The stream ends
// when the client goes, the daemon stops, or the client falls more than
// streamBuffer windows behind.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	if _, err := newParams(r); err != nil {
		return err
	}
	sub, err := s.hub.Subscribe()
	if err != nil {
		msg := "too many streams open"
		if errors.Is(err, hub.ErrClosed) {
			msg = "the daemon is stopping"
		}
		writeError(w, http.StatusServiceUnavailable, "%s", msg)
		return nil
	}
	defer s.hub.Unsubscribe(sub)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case line, ok := <-sub.C():
			if !ok {
				return nil
			}
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := w.Write(line); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// ErrNotRunning means no daemon answers on the socket: the file is missing
// or nobody listens on it.
var ErrNotRunning = errors.New("dstwatch is not running")

// Client talks to a daemon's API over its unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path. Nothing is dialled yet.
func NewClient(path string) *Client {
	d := &net.Dialer{Timeout: time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		ResponseHeaderTimeout: time.Minute, // a long aggregate; streams have their header at once
		MaxIdleConns:          2,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Socket is the socket's path.
func (c *Client) Socket() string { return c.socket }

// Client is a query.Reader: the daemon answers, from its database.
var _ query.Reader = (*Client)(nil)

// rangeValues are the parameters of r and f.
func rangeValues(r query.Range, f query.Filter) url.Values {
	v := url.Values{}
	if r.Last > 0 {
		v.Set("last", strconv.Itoa(r.Last))
	} else {
		v.Set("from", r.From.UTC().Format(time.RFC3339Nano))
		v.Set("to", r.To.UTC().Format(time.RFC3339Nano))
	}
	for _, p := range f.Remotes {
		v.Add("remote", p.String())
	}
	for _, c := range f.Countries {
		v.Add("country", c)
	}
	for _, a := range f.ASNs {
		v.Add("asn", strconv.FormatUint(uint64(a), 10))
	}
	if f.Direction != query.Both {
		v.Set("direction", f.Direction.String())
	}
	return v
}

// request sends one request and returns the answer if it is 200 OK. Any
// other answer is a *StatusError; a daemon that keeps no incidents answers
// ErrAlertsOff.
func (c *Client) request(ctx context.Context, method, path string, v url.Values) (*http.Response, error) {
	u := "http://dstwatch" + path
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	// A busy daemon (503, Retry-After) is asked once more after a second.
	if err == nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
		resp.Body.Close()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		resp, err = c.hc.Do(req)
	}
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w (no daemon listening on %s)", ErrNotRunning, c.socket)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("api socket %s: permission denied: run as root or as a member of the daemon's socket group", c.socket)
		}
		return nil, fmt.Errorf("api %s: %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e errorJSON
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		if e.Reason == reasonAlertsOff {
			return nil, ErrAlertsOff
		}
		return nil, &StatusError{Code: resp.StatusCode, Reason: e.Reason, Msg: e.Error}
	}
	return resp, nil
}

// get is request's GET, with the path in the error.
func (c *Client) get(ctx context.Context, path string, v url.Values) (*http.Response, error) {
	resp, err := c.request(ctx, http.MethodGet, path, v)
	var se *StatusError
	if errors.As(err, &se) {
		return nil, fmt.Errorf("api %s: %w", path, se)
	}
	return resp, err
}

// StatusError is an API error answer.
type StatusError struct {
	Code   int    // the HTTP status
	Reason string // what the daemon calls it, "" for most errors
	Msg    string
}

func (e *StatusError) Error() string { return e.Msg }

// Windows reads the windows of r, oldest first, calling fn for each as it
// arrives.
func (c *Client) Windows(ctx context.Context, r query.Range, fn func(*window.Window) error) error {
	resp, err := c.get(ctx, "/v1/windows", rangeValues(r, query.Filter{}))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	bad := func(err error) error { return fmt.Errorf("api /v1/windows: answer cut short or malformed: %w", err) }
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return bad(fmt.Errorf("want an array, got %v %v", t, err))
	}
	for dec.More() {
		var j query.WindowJSON
		if err := dec.Decode(&j); err != nil {
			return bad(err)
		}
		w, err := query.FromWindowJSON(&j)
		if err != nil {
			return bad(err)
		}
		if err := fn(w); err != nil {
			return err
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return bad(fmt.Errorf("want the array's end, got %v %v", t, err))
	}
	return nil
}

// Status reads the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	resp, err := c.get(ctx, "/v1/status", nil)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("api /v1/status: %w", err)
	}
	return st, nil
}

// Stream subscribes to windows as they are stored. subscribed (if not nil)
// runs once the daemon has accepted the subscription, before any window is
// read: windows stored from then on reach fn. Stream returns nil when the
// daemon ends the stream (it stops, or this reader fell too far behind),
// ctx's error when ctx is done.
func (c *Client) Stream(ctx context.Context, subscribed func() error, fn func(*window.Window) error) error {
	resp, err := c.get(ctx, "/v1/stream", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if subscribed != nil {
		if err := subscribed(); err != nil {
			return err
		}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var j query.WindowJSON
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			return fmt.Errorf("api /v1/stream: %w", err)
		}
		w, err := query.FromWindowJSON(&j)
		if err != nil {
			return fmt.Errorf("api /v1/stream: %w", err)
		}
		if err := fn(w); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// errNoSummary means the daemon is older than /v1/aggregate?summary=1.
var errNoSummary = errors.New("the daemon's API has no aggregate summaries")

// ErrZoneName means that a question by periods of the local time zone
// cannot be asked: the zone has no name the daemon could load (TZ unset
// and /etc/localtime a copy, or TZ naming a file).
var ErrZoneName = errors.New("the daemon needs its name for local periods")

// Aggregate asks the daemon to add up r as q asks: the rows (top N and
// order applied) and what they were read from. The daemon reads a range
// from its rollups, so a month-wide answer is small and quick. A daemon
// older than summaries sends its windows, which are added up here.
//
// Periods of time.Local are sent by the local zone's name: the daemon's
// own local zone may differ from this process's.
func (c *Client) Aggregate(ctx context.Context, r query.Range, q query.Question) ([]query.Row, query.Summary, error) {
	if q.By.IsPeriod() && q.Loc == time.Local {
		loc, err := query.NamedLocal()
		if err != nil {
			return nil, query.Summary{}, fmt.Errorf("%w; %w", err, ErrZoneName)
		}
		q.Loc = loc
	}
	rows, sum, err := c.aggregate(ctx, r, q)
	if !errors.Is(err, errNoSummary) {
		return rows, sum, err
	}
	a, err := query.NewAggregatorFor(q)
	if err != nil {
		return nil, query.Summary{}, err
	}
	if err := c.Windows(ctx, r, func(w *window.Window) error {
		a.Add(q.Filter.Apply(w))
		return nil
	}); err != nil {
		return nil, query.Summary{}, err
	}
	return query.Top(a.Rows(q.Sort), q.Top), a.Summary(), nil
}

func (c *Client) aggregate(ctx context.Context, r query.Range, q query.Question) ([]query.Row, query.Summary, error) {
	v := rangeValues(r, q.Filter)
	v.Set("by", string(q.By))
	if q.Sort != "" {
		v.Set("sort", string(q.Sort))
	}
	if q.Top > 0 {
		v.Set("top", strconv.Itoa(q.Top))
	}
	if q.By.IsPeriod() && q.Loc != nil {
		v.Set("tz", q.Loc.String()) // an IANA name: query.NamedLocal
	}
	if q.By == query.ByPrefix {
		if q.Prefix4 > 0 {
			v.Set("prefix4", strconv.Itoa(q.Prefix4))
		}
		if q.Prefix6 > 0 {
			v.Set("prefix6", strconv.Itoa(q.Prefix6))
		}
	}
	v.Set("summary", "1")
	resp, err := c.get(ctx, "/v1/aggregate", v)
	if err != nil {
		// Daemons older than summaries have no reason to send, so their
		// message is all there is to tell by.
		var se *StatusError
		if errors.As(err, &se) && se.Code == http.StatusBadRequest && strings.Contains(se.Msg, `unknown parameter "summary"`) {
			return nil, query.Summary{}, fmt.Errorf("%w: %v", errNoSummary, err)
		}
		return nil, query.Summary{}, err
	}
	defer resp.Body.Close()
	var j struct {
		Summary query.SummaryJSON `json:"summary"`
		Rows    json.RawMessage   `json:"rows"`
	}
	if err := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10)).Decode(&j); err != nil {
		return nil, query.Summary{}, fmt.Errorf("api /v1/aggregate: answer cut short or malformed: %w", err)
	}
	rows, err := query.RowsFromJSON(j.Rows, q.By)
	if err != nil {
		return nil, query.Summary{}, fmt.Errorf("api /v1/aggregate: %w", err)
	}
	sum, err := query.FromSummaryJSON(&j.Summary)
	if err != nil {
		return nil, query.Summary{}, fmt.Errorf("api /v1/aggregate: %w", err)
	}
	return rows, sum, nil
}

// Usage is what the daemon's tiers hold, from its status; a daemon older
// than tiered storage tells its raw windows only.
func (c *Client) Usage(ctx context.Context) ([3]query.Tier, error) {
	var u [3]query.Tier
	st, err := c.Status(ctx)
	if err != nil {
		return u, err
	}
	ts := []TierStats{{Units: st.DB.Windows, First: st.DB.First, Last: st.DB.Last}}
	if t := st.DB.Tiers; t != nil {
		ts = []TierStats{t.Windows, t.Hours, t.Days}
	}
	for i, t := range ts {
		if t.Units == 0 {
			continue
		}
		f, err1 := time.Parse(time.RFC3339, t.First)
		l, err2 := time.Parse(time.RFC3339, t.Last)
		if err1 != nil || err2 != nil {
			return u, fmt.Errorf("api /v1/status: tier times %q, %q", t.First, t.Last)
		}
		u[i] = query.Tier{Units: t.Units, First: f, Last: l}
	}
	return u, nil
}

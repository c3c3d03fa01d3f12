package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dstwatch/dstwatch/alert"
)

// incidentSource keeps two incidents: 1 active, 2 closed.
type incidentSource struct {
	fakeSource
	off     bool
	expired []uint64
}

func (s *incidentSource) Incidents(_ context.Context, openOnly bool) ([]*alert.Incident, error) {
	if s.off {
		// Wrapped, as a store would: the client must know it by the
		// answer's reason, not by the message's text.
		return nil, fmt.Errorf("incidents: %w", ErrAlertsOff)
	}
	all := []*alert.Incident{{ID: 1, Rule: "r", Key: "192.0.2.1", State: alert.Active}, {ID: 2, Rule: "r", Key: "host", State: alert.Closed}}
	if openOnly {
		return all[:1], nil
	}
	return all, nil
}

func (s *incidentSource) Incident(ctx context.Context, id uint64) (*alert.Incident, error) {
	l, _ := s.Incidents(ctx, false)
	for _, inc := range l {
		if inc.ID == id {
			return inc, nil
		}
	}
	return nil, alert.ErrNotFound
}

func (s *incidentSource) ExpireIncident(ctx context.Context, id uint64) (*alert.Incident, error) {
	inc, err := s.Incident(ctx, id)
	if err != nil {
		return nil, err
	}
	if inc.State == alert.Closed {
		return nil, alert.ErrClosed
	}
	s.expired = append(s.expired, id)
	inc.State, inc.Reason = alert.Closed, "expired early by request"
	return inc, nil
}

func TestIncidentsEndpoints(t *testing.T) {
	src := &incidentSource{}
	_, c := serve(t, src, src)
	ctx := context.Background()
	for state, want := range map[string][]uint64{"": {1, 2}, "all": {1, 2}, "open": {1}, "closed": {2}} {
		l, err := c.Incidents(ctx, state)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, inc := range l {
			got = append(got, inc.ID)
		}
		if len(got) != len(want) || got[0] != want[0] {
			t.Errorf("state %q: %v, want %v", state, got, want)
		}
	}
	inc, err := c.ExpireIncident(ctx, 1)
	if err != nil || inc.State != alert.Closed || len(src.expired) != 1 {
		t.Errorf("expire: %v %+v", err, inc)
	}
	var se *StatusError
	if _, err := c.ExpireIncident(ctx, 2); !errors.As(err, &se) || se.Code != http.StatusConflict {
		t.Errorf("expire closed: %v", err)
	}
	if _, err := c.ExpireIncident(ctx, 7); !errors.As(err, &se) || se.Code != http.StatusNotFound || !strings.Contains(se.Msg, "no such incident") {
		t.Errorf("expire unknown: %v", err)
	}
	src.off = true
	if _, err := c.Incidents(ctx, ""); !errors.Is(err, ErrAlertsOff) {
		t.Errorf("alerts off: %v", err)
	}
	// A daemon whose source keeps no incidents at all says the same.
	_, plain := serve(t, &fakeSource{}, nil)
	if _, err := plain.ExpireIncident(ctx, 1); !errors.Is(err, ErrAlertsOff) {
		t.Errorf("no incident source: %v", err)
	}
}

func TestIncidentsStrictParams(t *testing.T) {
	inc := &incidentSource{}
	s := New(inc, inc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, c := range []struct {
		method, url string
		code        int
		msg         string
	}{
		{"GET", "/v1/incidents?state=bogus", 400, `want open, closed or all`},
		{"GET", "/v1/incidents?stat=open", 400, `unknown parameter`},
		{"GET", "/v1/incidents?state=open&state=all", 400, "given 2 times"},
		{"GET", "/v1/incidents/abc", 400, `abc\": want a positive integer`},
		{"GET", "/v1/incidents/0", 400, `0\": want a positive integer`},
		{"GET", "/v1/incidents/1", 200, `"key": "192.0.2.1"`},
		{"GET", "/v1/incidents/1/expire", 404, "no such endpoint"},
		{"POST", "/v1/incidents/1/expire?now=1", 400, `unknown parameter`},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(c.method, c.url, nil)
		req = req.WithContext(context.WithValue(req.Context(), peerKey{}, peer{uid: 0})) // root
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.msg) {
			t.Errorf("%s %s: %d %s", c.method, c.url, rec.Code, rec.Body.String())
		}
	}
	// A peer that is not root nor the daemon's user may not act.
	for _, p := range []any{nil, peer{uid: 4242, gid: 4242}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/incidents/1/expire", nil)
		if p != nil {
			req = req.WithContext(context.WithValue(req.Context(), peerKey{}, p))
		}
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "may only read") {
			t.Errorf("expire by %v: %d %s", p, rec.Code, rec.Body.String())
		}
	}
	// A source without incidents says alerts are off.
	s = New(&fakeSource{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/incidents", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "alerts are off") {
		t.Errorf("%d %s", rec.Code, rec.Body.String())
	}
}

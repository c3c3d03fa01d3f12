package api

// Incident endpoints (see package alert):
//
//	GET  /v1/incidents              incidents, oldest first: a JSON array of alert.Incident;
//	                                state=open (active and expiring), closed, or all (the default)
//	GET  /v1/incidents/{id}         one incident
//	POST /v1/incidents/{id}/expire  end it now: its undo actions run; answers the incident
//	                                once they are through (or after 60 s, still expiring)

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dstwatch/dstwatch/alert"
)

// IncidentSource is where the server reads and ends alert incidents. It is
// not a query.Reader's business: incidents are not windows, and they are
// changed here, not only read.
type IncidentSource interface {
	// Incidents lists them, oldest first; openOnly leaves closed ones out.
	Incidents(ctx context.Context, openOnly bool) ([]*alert.Incident, error)
	Incident(ctx context.Context, id uint64) (*alert.Incident, error)
	// ExpireIncident ends one now and waits for its undo until ctx is done.
	ExpireIncident(ctx context.Context, id uint64) (*alert.Incident, error)
}

// ErrAlertsOff is what an IncidentSource returns when the daemon keeps no
// incidents (no --rules and no incidents file).
var ErrAlertsOff = errors.New("alerts are off: the daemon runs without rules and has no incidents file")

// reasonAlertsOff is ErrAlertsOff in an error answer's reason field, so
// that the client knows it without matching the message.
const reasonAlertsOff = "alerts_off"

// expireWait bounds how long POST .../expire waits for the undo actions.
const expireWait = 60 * time.Second

func (s *Server) registerIncidents(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/incidents", s.handle(s.incidents))
	mux.HandleFunc("GET /v1/incidents/{id}", s.handle(s.incident))
	mux.HandleFunc("POST /v1/incidents/{id}/expire", s.actor(s.handle(s.expireIncident))) // peer.go: root or the daemon's user
}

// incidentSource is the server's incidents; ErrAlertsOff when it has none.
func (s *Server) incidentSource() (IncidentSource, error) {
	if s.inc == nil {
		return nil, ErrAlertsOff
	}
	return s.inc, nil
}

// incidentFail answers the incidents' own errors, for fail; it reports
// whether err was one of them.
func incidentFail(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, ErrAlertsOff):
		writeReason(w, http.StatusNotFound, reasonAlertsOff, err.Error())
	case errors.Is(err, alert.ErrNotFound):
		writeError(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, alert.ErrClosed):
		writeError(w, http.StatusConflict, "%v", err)
	default:
		return false
	}
	return true
}

func (s *Server) incidents(w http.ResponseWriter, r *http.Request) error {
	p, err := newParams(r, "state")
	if err != nil {
		return err
	}
	state, err := p.one("state")
	if err != nil {
		return err
	}
	if state != "" && state != "open" && state != "closed" && state != "all" {
		return bad("state %q: want open, closed or all", state)
	}
	is, err := s.incidentSource()
	if err != nil {
		return err
	}
	list, err := is.Incidents(r.Context(), state == "open")
	if err != nil {
		return err
	}
	out := []*alert.Incident{}
	for _, inc := range list {
		if state != "closed" || inc.State == alert.Closed {
			out = append(out, inc)
		}
	}
	writeJSON(w, out)
	return nil
}

func incidentID(r *http.Request) (uint64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, bad("incident id %q: want a positive integer", s)
	}
	return id, nil
}

func (s *Server) incident(w http.ResponseWriter, r *http.Request) error {
	if _, err := newParams(r); err != nil {
		return err
	}
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	is, err := s.incidentSource()
	if err != nil {
		return err
	}
	inc, err := is.Incident(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, inc)
	return nil
}

func (s *Server) expireIncident(w http.ResponseWriter, r *http.Request) error {
	if _, err := newParams(r); err != nil {
		return err
	}
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	is, err := s.incidentSource()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), expireWait)
	defer cancel()
	inc, err := is.ExpireIncident(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, inc)
	return nil
}

// --- client ---

// do sends a request and decodes its JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, v url.Values, out any) error {
	resp, err := c.request(ctx, method, path, v)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("api %s: %w", path, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("api %s: %w", path, err)
	}
	return nil
}

// Incidents lists the daemon's incidents: state open, closed or all ("").
func (c *Client) Incidents(ctx context.Context, state string) ([]*alert.Incident, error) {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	var out []*alert.Incident
	err := c.do(ctx, http.MethodGet, "/v1/incidents", v, &out)
	return out, err
}

// ExpireIncident asks the daemon to end an incident now and run its undo.
func (c *Client) ExpireIncident(ctx context.Context, id uint64) (*alert.Incident, error) {
	var inc alert.Incident
	err := c.do(ctx, http.MethodPost, "/v1/incidents/"+strconv.FormatUint(id, 10)+"/expire", nil, &inc)
	return &inc, err
}

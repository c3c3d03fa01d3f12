package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// GET /v1/services: traffic per service over a range (query --by
// service, value, discover). Parameters: from, to or last; remote,
// country, asn, direction as for /v1/aggregate; port, proto, side (each
// comma-separated or repeated); sort; top. The answer is
// {"summary": {...}, "rows": [ServiceJSON...]}; a row folded by top has
// "service": "other".

func (s *Server) registerServices(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/services", s.handle(s.services))
}

func (s *Server) services(w http.ResponseWriter, r *http.Request) error {
	p, err := newParams(r, "from", "to", "last", "remote", "country", "asn", "direction", "port", "proto", "side", "sort", "top")
	if err != nil {
		return err
	}
	q, sp, err := p.serviceQuestion()
	if err != nil {
		return err
	}
	rows, sum, err := s.answerServices(r.Context(), sp, q)
	if err != nil {
		return err
	}
	out := struct {
		Summary query.SummaryJSON   `json:"summary"`
		Rows    []query.ServiceJSON `json:"rows"`
	}{query.ToSummaryJSON(sum), make([]query.ServiceJSON, 0, len(rows))}
	for _, row := range rows {
		j := query.ToServiceJSON(row)
		if row.Remotes == query.OtherService {
			j = query.ServiceJSON{Service: query.OtherKey, CountsJSON: query.ToCounts(row.Counts)}
		}
		out.Rows = append(out.Rows, j)
	}
	writeJSON(w, out)
	return nil
}

func (p *params) list(name string) []string {
	var out []string
	for _, v := range p.v[name] {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

func (p *params) serviceQuestion() (query.ServiceQuestion, query.Range, error) {
	var q query.ServiceQuestion
	sp, err := p.span()
	if err != nil {
		return q, sp, err
	}
	if q.Filter.Filter, err = p.filter(); err != nil {
		return q, sp, err
	}
	for _, v := range p.list("port") {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return q, sp, bad("port %q: want 0 to 65535", v)
		}
		q.Filter.Ports = append(q.Filter.Ports, uint16(n))
	}
	for _, v := range p.list("proto") {
		pr, err := window.ParseProto(v)
		if err != nil {
			return q, sp, bad("%v", err)
		}
		q.Filter.Protos = append(q.Filter.Protos, pr)
	}
	for _, v := range p.list("side") {
		sd, err := query.ParseSide(v)
		if err != nil {
			return q, sp, bad("%v", err)
		}
		q.Filter.Sides = append(q.Filter.Sides, sd)
	}
	so, err := p.one("sort")
	if err != nil {
		return q, sp, err
	}
	if q.Sort, err = query.ParseSort(so); err != nil {
		return q, sp, bad("%v", err)
	}
	if q.Top, _, err = p.intParam("top", MaxTop); err != nil {
		return q, sp, err
	}
	return q, sp, nil
}

// answerServices is answer (server.go) for services.
func (s *Server) answerServices(ctx context.Context, sp query.Range, q query.ServiceQuestion) ([]query.ServiceRow, query.Summary, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, query.Summary{}, err
	}
	defer release()
	return s.src.Services(ctx, sp, q)
}

// Services asks /v1/services.
func (c *Client) Services(ctx context.Context, r query.Range, q query.ServiceQuestion) ([]query.ServiceRow, query.Summary, error) {
	v := rangeValues(r, q.Filter.Filter)
	for _, p := range q.Filter.Ports {
		v.Add("port", strconv.Itoa(int(p)))
	}
	for _, p := range q.Filter.Protos {
		v.Add("proto", p.String())
	}
	for _, sd := range q.Filter.Sides {
		name := sd.String()
		if name == "" {
			name = "none"
		}
		v.Add("side", name)
	}
	if q.Sort != "" {
		v.Set("sort", string(q.Sort))
	}
	if q.Top > 0 {
		v.Set("top", strconv.Itoa(q.Top))
	}
	resp, err := c.get(ctx, "/v1/services", v)
	if err != nil {
		return nil, query.Summary{}, err
	}
	defer resp.Body.Close()
	var j struct {
		Summary query.SummaryJSON   `json:"summary"`
		Rows    []query.ServiceJSON `json:"rows"`
	}
	if err := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10)).Decode(&j); err != nil {
		return nil, query.Summary{}, fmt.Errorf("api /v1/services: answer cut short or malformed: %w", err)
	}
	rows := make([]query.ServiceRow, 0, len(j.Rows))
	for _, rj := range j.Rows {
		if rj.Service == query.OtherKey {
			rows = append(rows, query.ServiceRow{Remotes: query.OtherService, Counts: rj.CountsJSON.Counts()})
			continue
		}
		row, err := query.FromServiceJSON(rj)
		if err != nil {
			return nil, query.Summary{}, fmt.Errorf("api /v1/services: %w", err)
		}
		rows = append(rows, row)
	}
	sum, err := query.FromSummaryJSON(&j.Summary)
	if err != nil {
		return nil, query.Summary{}, fmt.Errorf("api /v1/services: %w", err)
	}
	return rows, sum, nil
}

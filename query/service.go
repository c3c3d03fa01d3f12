package query

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// ByService groups by service (protocol, side, port). It is answered by
// AnswerServices, not by Aggregator: services are their own section of a
// window.
const ByService By = "service"

// ServiceFilter selects services; a zero one keeps all. Ports, protocols
// and sides are each OR-ed, and AND-ed with each other and with Filter,
// whose remote-selecting fields (remote, country, ASN) see only the remotes
// a service kept rows for (the heaviest --service-top of each window).
type ServiceFilter struct {
	Filter
	Ports  []uint16
	Protos []window.Proto
	Sides  []window.Side
}

func (f *ServiceFilter) keeps(k window.ServiceKey) bool {
	return (len(f.Ports) == 0 || slices.Contains(f.Ports, k.Port())) &&
		(len(f.Protos) == 0 || slices.Contains(f.Protos, k.Proto())) &&
		(len(f.Sides) == 0 || slices.Contains(f.Sides, k.Side()))
}

// ServiceRow is one service's traffic over a range.
type ServiceRow struct {
	Key window.ServiceKey
	// Remotes is how many distinct remotes used it: exact for one raw
	// window; over several units a lower bound (the distinct addresses of
	// its rows, or the largest count of one unit if larger). With a
	// remote-selecting filter, the distinct matching addresses.
	Remotes int
	window.Counts
}

// Name is PORT/PROTO, as in 443/tcp.
func (r *ServiceRow) Name() string { return r.Key.String() }

// ServiceJSON is a --by service row.
type ServiceJSON struct {
	Service string `json:"service"`
	Proto   string `json:"proto"`
	Port    uint16 `json:"port"`
	Side    string `json:"side"`
	Remotes int    `json:"remotes"`
	CountsJSON
}

// Counts converts the JSON shape back.
func (c CountsJSON) Counts() window.Counts { return c.counts() }

// ToServiceJSON converts a row to its JSON shape.
func ToServiceJSON(r ServiceRow) ServiceJSON {
	return ServiceJSON{r.Name(), r.Key.Proto().String(), r.Key.Port(), r.Key.Side().String(), r.Remotes, ToCounts(r.Counts)}
}

// FromServiceJSON is the inverse of ToServiceJSON.
func FromServiceJSON(j ServiceJSON) (ServiceRow, error) {
	p, err := window.ParseProto(j.Proto)
	if err != nil {
		return ServiceRow{}, err
	}
	s, err := ParseSide(j.Side)
	if err != nil {
		return ServiceRow{}, err
	}
	return ServiceRow{Key: window.MakeServiceKey(p, s, j.Port), Remotes: j.Remotes, Counts: j.CountsJSON.counts()}, nil
}

// ParseSide reads in, out, or "" / none.
func ParseSide(s string) (window.Side, error) {
	switch strings.ToLower(s) {
	case "in":
		return window.SideIn, nil
	case "out":
		return window.SideOut, nil
	case "scan":
		return window.SideScan, nil
	case "", "none":
		return window.SideNone, nil
	}
	return 0, fmt.Errorf("side %q: want in, out, scan or none", s)
}

// ServiceAggregator adds windows up per service.
type ServiceAggregator struct {
	f     ServiceFilter
	rows  []ServiceRow
	at    map[window.ServiceKey]int
	addrs []map[netip.Addr]struct{}
	sum   Summary
}

// NewServiceAggregator returns an aggregator keeping what f selects.
func NewServiceAggregator(f ServiceFilter) *ServiceAggregator {
	return &ServiceAggregator{f: f, at: map[window.ServiceKey]int{}}
}

// Add adds one window or rollup (unfiltered: the aggregator filters).
func (a *ServiceAggregator) Add(w *window.Window) {
	a.sum.add(w)
	sel := a.f.SelectsRemotes()
	for i := range w.Services {
		s := &w.Services[i]
		if !a.f.keeps(s.Key) {
			continue
		}
		var c window.Counts
		var matched []netip.Addr
		if sel {
			for j := range s.Top {
				r := &s.Top[j]
				if a.f.match(r) {
					if rc := a.f.Direction.Apply(r.Counts); !rc.IsZero() {
						c.Add(rc)
						matched = append(matched, r.Addr)
					}
				}
			}
		} else {
			c = a.f.Direction.Apply(s.Counts)
		}
		if c.IsZero() {
			continue
		}
		k, ok := a.at[s.Key]
		if !ok {
			k = len(a.rows)
			a.at[s.Key] = k
			a.rows = append(a.rows, ServiceRow{Key: s.Key})
			a.addrs = append(a.addrs, map[netip.Addr]struct{}{})
		}
		row, seen := &a.rows[k], a.addrs[k]
		row.Counts.Add(c)
		if sel {
			for _, ad := range matched {
				seen[ad] = struct{}{}
			}
			row.Remotes = len(seen)
			continue
		}
		for j := range s.Top {
			seen[s.Top[j].Addr] = struct{}{}
		}
		row.Remotes = max(row.Remotes, s.Remotes, len(seen))
	}
}

// Summary describes the units added so far.
func (a *ServiceAggregator) Summary() Summary { return a.sum }

// Rows returns the services heaviest first by s, ties by key.
func (a *ServiceAggregator) Rows(s Sort) []ServiceRow {
	slices.SortFunc(a.rows, func(x, y ServiceRow) int {
		return cmp.Or(cmp.Compare(s.weight(y.Counts), s.weight(x.Counts)), cmp.Compare(x.Key, y.Key))
	})
	return a.rows
}

// ServiceQuestion is a --by service query.
type ServiceQuestion struct {
	Filter ServiceFilter
	Sort   Sort
	Top    int // 0: all
}

// AnswerServices adds up r of db (rollups where exact, as Answer), per
// service. Rows past Top are summed into one row with the zero Key and
// Remotes -1 (TopServices).
func AnswerServices(ctx context.Context, db *storage.DB, r Range, q ServiceQuestion) ([]ServiceRow, Summary, error) {
	a := NewServiceAggregator(q.Filter)
	sum, err := read(ctx, db, db.SpanWith, r, storage.SpanOptions{}, a.Add, a.Summary)
	if err != nil {
		return nil, Summary{}, err
	}
	return TopServices(a.Rows(q.Sort), q.Top), sum, nil
}

// OtherService marks the row TopServices folds the rest into.
const OtherService = -1

// TopServices keeps the n heaviest rows and sums the rest into a last row
// whose Remotes is OtherService. n <= 0 keeps all.
func TopServices(rows []ServiceRow, n int) []ServiceRow {
	if n <= 0 || len(rows) <= n {
		return rows
	}
	rest := ServiceRow{Remotes: OtherService}
	for _, r := range rows[n:] {
		rest.Counts.Add(r.Counts)
	}
	return append(rows[:n:n], rest)
}

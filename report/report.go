// Package report gathers and renders what the picture views show: a
// period's totals, its top remotes, countries, ASes and services, the
// busiest windows, traffic over time and data-quality notes, as text (for
// cron mail) or as one self-contained HTML file with SVG charts drawn here
// (charts.go, worldmap.go). The numbers come from the same query package
// that answers 'dstwatch query', so a report and a query over the same
// range agree.
package report

import (
	"context"
	"slices"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// Point is one bucket of the traffic-over-time chart.
type Point struct {
	Start  time.Time
	Length time.Duration
	window.Counts
}

// Busy is one of the busiest raw windows.
type Busy struct {
	Start  time.Time
	Length time.Duration
	window.Counts
}

// Gap is a time without stored windows: the daemon was down, or not yet
// installed.
type Gap struct{ From, To time.Time }

// Report is everything a report shows.
type Report struct {
	From, To  time.Time
	Generated time.Time
	Summary   query.Summary
	Total     window.Counts // all traffic of the range: the by-remote rows summed
	Remotes   []query.Row
	Countries []query.Row
	// CountryBytes is every known country's bytes, both ways, for the map.
	CountryBytes map[string]uint64
	ASNs         []query.Row
	Services     []query.ServiceRow // services seen in the range; none before storage format 3
	Busiest      []Busy
	Series       []Point // raw windows in buckets, for the chart
	Windows      int     // raw windows read for Series, Busiest and Gaps
	RawFrom      time.Time
	Gaps         []Gap
	Window       time.Duration // the raw windows' length (the most common)
	// Stored is what the database holds, set by the caller when nothing
	// of the range is: the notes then say where the data is.
	Stored *Stored
}

// Stored is the database's raw windows: how many, the first and last start.
type Stored struct {
	Windows     int
	First, Last time.Time
}

// Options shape Collect.
type Options struct {
	Top     int // rows per table; 0: 10
	Busiest int // busiest windows listed; 0: 5
	Buckets int // chart points at most; 0: 240
}

// Collect reads the report for [from, to). now bounds gap detection: the
// window still open is not a gap. src is the database, the daemon or its API: the numbers are those of
// 'dstwatch query' over the same range whichever it is.
func Collect(ctx context.Context, src query.Reader, from, to, now time.Time, o Options) (*Report, error) {
	if o.Top <= 0 {
		o.Top = 10
	}
	if o.Busiest <= 0 {
		o.Busiest = 5
	}
	if o.Buckets <= 0 {
		o.Buckets = 240
	}
	r := &Report{From: from, To: to, Generated: now}
	rng := query.Range{From: from, To: to}
	by := func(b query.By, top int) query.Question {
		return query.Question{By: b, Sort: query.SortBytes, Top: top}
	}
	var err error
	var all []query.Row
	if all, r.Summary, err = src.Aggregate(ctx, rng, by(query.ByRemote, 0)); err != nil {
		return nil, err
	}
	for _, row := range all {
		r.Total.Add(row.Counts)
	}
	r.Remotes = query.Top(all, o.Top)
	if all, _, err = src.Aggregate(ctx, rng, by(query.ByCountry, 0)); err != nil {
		return nil, err
	}
	r.CountryBytes = map[string]uint64{}
	for _, row := range all {
		if !row.IsOther() && row.Country != "" {
			r.CountryBytes[row.Country] = row.Bytes()
		}
	}
	r.Countries = query.Top(all, o.Top)
	if r.ASNs, _, err = src.Aggregate(ctx, rng, by(query.ByASN, o.Top)); err != nil {
		return nil, err
	}
	if r.Services, _, err = src.Services(ctx, rng, query.ServiceQuestion{Sort: query.SortBytes, Top: o.Top}); err != nil {
		return nil, err
	}

	// Raw windows: the chart, the busiest and the gaps.
	bucket := to.Sub(from) / time.Duration(o.Buckets)
	bucket = max(bucket.Truncate(time.Second), time.Second)
	lengths := map[time.Duration]int{}
	var prevEnd time.Time
	end := to
	if now.Before(end) {
		end = now
	}
	err = src.Windows(ctx, rng, func(w *window.Window) error {
		r.Windows++
		lengths[w.Length]++
		var c window.Counts
		for i := range w.Remotes {
			c.Add(w.Remotes[i].Counts)
		}
		c.Add(w.Other)
		if r.RawFrom.IsZero() {
			r.RawFrom = w.Start
		} else if w.Start.After(prevEnd) {
			r.Gaps = append(r.Gaps, Gap{prevEnd, w.Start})
		}
		if w.End().After(prevEnd) {
			prevEnd = w.End()
		}
		r.addBusy(Busy{w.Start, w.Length, c}, o.Busiest)
		bs := from.Add(w.Start.Sub(from) / bucket * bucket)
		if n := len(r.Series); n > 0 && r.Series[n-1].Start.Equal(bs) {
			r.Series[n-1].Counts.Add(c)
		} else {
			r.Series = append(r.Series, Point{Start: bs, Length: bucket, Counts: c})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for l, n := range lengths {
		if n > lengths[r.Window] || (n == lengths[r.Window] && l < r.Window) {
			r.Window = l
		}
	}
	// The edges: before the first window when it is not where raw windows
	// begin for pruning, and after the last one beyond the open window.
	// Rollups that start before the raw windows do show the daemon ran
	// then: the gap ends where the first unit read begins.
	if r.Windows > 0 && r.Summary.Resolution == window.Raw && r.RawFrom.After(from) {
		first := r.RawFrom
		if f := r.Summary.First; !f.IsZero() && f.Before(first) {
			first = f
		}
		if first.Sub(from) >= r.Window {
			r.Gaps = append([]Gap{{from, first}}, r.Gaps...)
		}
	}
	if r.Windows > 0 && end.Sub(prevEnd) > 2*r.Window+10*time.Second {
		r.Gaps = append(r.Gaps, Gap{prevEnd, end})
	}
	if r.Windows == 0 && r.Summary.Units() == 0 && end.After(from) {
		r.Gaps = append(r.Gaps, Gap{from, end})
	}
	return r, nil
}

func (r *Report) addBusy(b Busy, n int) {
	i, _ := slices.BinarySearchFunc(r.Busiest, b, func(x, y Busy) int {
		if x.Bytes() != y.Bytes() {
			if x.Bytes() > y.Bytes() {
				return -1
			}
			return 1
		}
		return x.Start.Compare(y.Start)
	})
	if i >= n {
		return
	}
	r.Busiest = slices.Insert(r.Busiest, i, b)
	if len(r.Busiest) > n {
		r.Busiest = r.Busiest[:n]
	}
}

// GapTime is the time the gaps cover together: the sum of each gap as
// Duration shows it (to the second), so that the total is their sum.
func (r *Report) GapTime() time.Duration {
	var d time.Duration
	for _, g := range r.Gaps {
		d += g.To.Sub(g.From).Round(time.Second)
	}
	return d
}

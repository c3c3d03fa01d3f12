package query

import (
	"context"
	"net/netip"
	"runtime"
	"time"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// maxWorkers bounds the goroutines of one answer (a variable for tests).
// A month-wide answer decodes and adds up about 1.5M remote entries: one
// core did it in about 200 ms, so Answer shares a range's units out among
// up to this many workers (no more than GOMAXPROCS), each with its own
// Aggregator, and merges their sums. Sums of integers and the newest-wins
// answers (kept with the time they were given) do not depend on which
// worker added which unit (each adds its own oldest first): the rows, their
// order and the summary are exactly those of one aggregator.
var maxWorkers = 4

func answerWorkers() int { return min(runtime.GOMAXPROCS(0), maxWorkers) }

// answerParallel is Answer for a range (not the last N, not periods) with
// workers aggregators. Were the span to call fn instead of the workers,
// the first aggregator would add everything up, and the answer would be
// the same.
func answerParallel(ctx context.Context, db *storage.DB, from, to time.Time, q Question, workers int) ([]Row, Summary, error) {
	aggs := make([]*Aggregator, workers)
	for i := range aggs {
		a, err := NewAggregatorFor(q)
		if err != nil {
			return nil, Summary{}, err
		}
		aggs[i] = a
	}
	filtered := make([]window.Window, workers) // each worker's, reused
	add := func(i int, w *window.Window) error {
		aggs[i].Add(q.Filter.applyInto(&filtered[i], w))
		return nil
	}
	span := func(ctx context.Context, from, to time.Time, opt storage.SpanOptions, fn func(*window.Window) error) (window.Resolution, error) {
		opt.Workers, opt.Parallel = workers, add           // the span stops the workers once ctx is done
		opt.NoOrgs = q.By == ByCountry || q.By == ByPrefix // their rows name no organisation
		return db.SpanWith(ctx, from, to, opt, fn)
	}
	summary := func() Summary {
		for _, b := range aggs[1:] {
			aggs[0].merge(b)
		}
		return aggs[0].Summary()
	}
	sum, err := read(ctx, db, span, Range{From: from, To: to}, storage.SpanOptions{Reuse: true},
		func(w *window.Window) { aggs[0].Add(q.Filter.Apply(w)) }, summary)
	if err != nil {
		return nil, Summary{}, err
	}
	rows := aggs[0].top(q.Sort, q.Top)
	for _, a := range aggs {
		if a.remotes != nil {
			a.remotes.release() // the rows are made: its memory is for the next answer
		}
	}
	return rows, sum, nil
}

// merge adds what b added up into a, as if a had added b's units too; b
// must not be used afterwards. Both group the same way (not by period).
func (a *Aggregator) merge(b *Aggregator) {
	a.sum.merge(&b.sum)
	if a.by == ByRemote {
		a.remotes.merge(b.remotes)
	}
	rowOf := make([]int32, len(b.rows)) // b's row j is a's row rowOf[j]
	for j := range b.rows {
		br := &b.rows[j]
		if int32(j) == b.other {
			if a.other < 0 {
				a.other = a.newOther()
			}
			a.rows[a.other].Counts.Add(br.Counts)
			rowOf[j] = a.other
			continue
		}
		var i int32
		switch a.by {
		case ByASN:
			var ok bool
			if i, ok = a.byASN[br.ASN]; !ok {
				i = a.adopt(br, b.at[j])
				a.byASN[br.ASN] = i
				break
			}
			row := &a.rows[i]
			row.Counts.Add(br.Counts)
			if b.at[j] > a.at[i] {
				row.ASOrg = br.ASOrg
				a.at[i] = b.at[j]
			}
		case ByCountry:
			i = a.countryRow(br.Country)
			a.rows[i].Counts.Add(br.Counts)
		case ByPrefix:
			var ok bool
			if i, ok = a.byPrefix[br.Prefix]; !ok {
				i = int32(len(a.rows))
				a.byPrefix[br.Prefix] = i
				a.rows = append(a.rows, Row{Prefix: br.Prefix})
			}
			a.rows[i].Counts.Add(br.Counts)
		}
		rowOf[j] = i
	}
	if b.seen == nil {
		return
	}
	// A row's distinct remotes are the union of both sets of (address,
	// row) pairs: b's are counted again, in a's rows.
	b.seen.each(func(addr netip.Addr, j uint32) {
		if i := rowOf[j]; a.seen.add(addr, uint32(i)) {
			a.rows[i].Remotes++
		}
	})
}

// adopt adds a copy of b's row br (answered at at) as a new row of a, its
// distinct remotes left for merge to count.
func (a *Aggregator) adopt(br *Row, at int64) int32 {
	r := *br
	r.Remotes = 0
	a.rows = append(a.rows, r)
	a.at = append(a.at, at)
	return int32(len(a.rows) - 1)
}

// merge adds o's units to s. Resolution, RawFrom and Damaged are the
// reader's, and are left alone.
func (s *Summary) merge(o *Summary) {
	s.Windows += o.Windows
	s.Hours += o.Hours
	s.Days += o.Days
	if !o.First.IsZero() && (s.First.IsZero() || o.First.Before(s.First)) {
		s.First = o.First
	}
	if o.Last.After(s.Last) {
		s.Last = o.Last
	}
	s.Stats.Add(o.Stats)
	s.DropUnits += o.DropUnits
	s.FoldUnits += o.FoldUnits
	s.PartialUnits += o.PartialUnits
	s.Capped += o.Capped
}

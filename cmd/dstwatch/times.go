package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/storage"
)

// extent is the first and last start of any stored unit, over all tiers:
// rollups outlive raw windows, so the oldest data is often a daily rollup.
func (s *store) extent(ctx context.Context) (first, last time.Time, ok bool, err error) {
	var tiers [3]storage.TierUsage
	if s.db != nil {
		if tiers, err = s.db.Usage(); err != nil {
			return first, last, false, err
		}
	} else {
		st, err := s.client.Status(ctx)
		if err != nil {
			return first, last, false, err
		}
		ts := []api.TierStats{{Units: st.DB.Windows, First: st.DB.First, Last: st.DB.Last}}
		if t := st.DB.Tiers; t != nil {
			ts = []api.TierStats{t.Windows, t.Hours, t.Days}
		}
		for i, t := range ts {
			if t.Units == 0 {
				continue
			}
			f, err1 := time.Parse(time.RFC3339, t.First)
			l, err2 := time.Parse(time.RFC3339, t.Last)
			if err1 != nil || err2 != nil {
				return first, last, false, fmt.Errorf("api status: tier times %q, %q", t.First, t.Last)
			}
			tiers[i] = storage.TierUsage{Units: t.Units, First: f, Last: l}
		}
	}
	for _, t := range tiers {
		if t.Units == 0 {
			continue
		}
		if !ok || t.First.Before(first) {
			first = t.First
		}
		if !ok || t.Last.After(last) {
			last = t.Last
		}
		ok = true
	}
	return first, last, ok, nil
}

// fitRange lets a range wider than api.MaxRange through by narrowing it to
// what is stored: a unit belongs to a range when its start does, so
// [max(from, first start), min(to, last start + 1s)) selects the same
// units. The guard stays where it protects something: a range still wider
// than MaxRange after that (ten years of stored history) is refused. With
// nothing of the range stored, r becomes its first second, which selects
// nothing either; the range asked for is returned for messages.
func (s *store) fitRange(ctx context.Context, r *api.Range) (asked api.Range, err error) {
	asked = *r
	if r.Last > 0 || r.To.Sub(r.From) <= api.MaxRange {
		return asked, nil
	}
	first, last, ok, err := s.extent(ctx)
	if err != nil {
		return asked, err
	}
	if ok {
		if first.After(r.From) {
			r.From = first
		}
		if end := last.Add(time.Second); end.Before(r.To) {
			r.To = end
		}
	}
	if !ok || !r.To.After(r.From) {
		r.From, r.To = asked.From, asked.From.Add(time.Second)
	}
	if r.To.Sub(r.From) > api.MaxRange {
		return asked, fmt.Errorf("%w: the stored history in the range is longer than %d days: give a shorter one", errUsage, api.MaxRange/(24*time.Hour))
	}
	return asked, nil
}

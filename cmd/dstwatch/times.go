package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/query"
)

// extent is the first and last start of any stored unit, over all tiers:
// rollups outlive raw windows, so the oldest data is often a daily rollup.
func extent(ctx context.Context, rd query.Reader) (first, last time.Time, ok bool, err error) {
	tiers, err := rd.Usage(ctx)
	if err != nil {
		return first, last, false, err
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
func fitRange(ctx context.Context, rd query.Reader, r *query.Range) (asked query.Range, err error) {
	asked = *r
	if r.Last > 0 || r.To.Sub(r.From) <= api.MaxRange {
		return asked, nil
	}
	first, last, ok, err := extent(ctx, rd)
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

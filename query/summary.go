package query

import (
	"context"
	"time"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// Summary describes what an answer was read from: how many raw windows and
// rollups, the time they cover, their statistics summed, and the tier
// resolution. Tables print their header and quality notes from it, so an
// answer added up by the daemon prints the same as one read from the file.
type Summary struct {
	Windows, Hours, Days int       // units read: raw windows, hourly and daily rollups
	First, Last          time.Time // the first unit's start, the last one's end; zero when none
	Stats                window.Stats
	DropUnits, FoldUnits int    // units with kernel drops, with remotes folded by --max-remotes
	PartialUnits         int    // units watched for only part of their time (window.Partial)
	Capped               uint64 // remote entries a rollup's cap folded into other

	// Resolution is the coarsest unit an edge of the range was rounded to
	// because finer data was pruned (storage.DB.Span); window.Raw means
	// the answer is exactly the raw windows'.
	Resolution window.Resolution
	// RawFrom is the start of the oldest raw window still stored, when
	// Resolution is not window.Raw; zero when none is left.
	RawFrom time.Time

	// Damaged are the stored windows and rollups of the range whose values
	// do not decode: they were skipped, so their counts are missing.
	Damaged []storage.Damage
}

// Units is how many windows and rollups were read.
func (s *Summary) Units() int { return s.Windows + s.Hours + s.Days }

// Rollups reports whether any rollup was read.
func (s *Summary) Rollups() bool { return s.Hours+s.Days > 0 }

// add counts one unit. A rollup is told from a window by its length (an
// hour or a day): with --window 1h a raw window counts as an hourly rollup,
// which holds exactly the same.
func (s *Summary) add(w *window.Window) {
	switch w.Length {
	case 24 * time.Hour:
		s.Days++
	case time.Hour:
		s.Hours++
	default:
		s.Windows++
	}
	if s.First.IsZero() || w.Start.Before(s.First) {
		s.First = w.Start
	}
	if end := w.End(); end.After(s.Last) {
		s.Last = end
	}
	s.Stats.Add(w.Stats)
	if w.Stats.Drops > 0 {
		s.DropUnits++
	}
	if w.Stats.Folded > 0 || w.Stats.Overflow > 0 {
		s.FoldUnits++
	}
	if w.Stats.Partial != 0 {
		s.PartialUnits++
	}
	s.Capped += w.Capped
}

// Summarize summarises windows read as they are (Resolution window.Raw).
func Summarize(ws []*window.Window) Summary {
	var s Summary
	for _, w := range ws {
		s.add(w)
	}
	return s
}

// Question is one aggregate: grouping, filter, order and top N (0: all).
type Question struct {
	By     By
	Filter Filter
	Sort   Sort
	Top    int // not for periods, which are all listed, oldest first

	Loc              *time.Location // periods: their time zone (nil: UTC)
	Prefix4, Prefix6 int            // ByPrefix: the networks' lengths (0: the defaults)
}

// Answer adds up r of db (its range [From, To), or its last N windows),
// as q asks. A range is read with storage.DB.SpanWith: rollups for its
// whole hours and days, raw windows for the rest, so a month costs a few
// hundred units rather than 130,000 windows; the last N windows are raw.
// ctx's end stops the read. The API's /v1/aggregate and the CLI reading a
// file both answer with this (through Local); a range (not the last N,
// not by period) is added up on up to one worker per core (parallel.go).
//
// Periods (ByHour ... ByMonth) widen the range to whole periods of q.Loc
// and read each period on its own, so that every unit lies within one.
func Answer(ctx context.Context, db *storage.DB, r Range, q Question) ([]Row, Summary, error) {
	if n := answerWorkers(); n > 1 && r.Last <= 0 && !q.By.IsPeriod() {
		return answerParallel(ctx, db, r.From, r.To, q, n) // parallel.go
	}
	a, err := NewAggregatorFor(q)
	if err != nil {
		return nil, Summary{}, err
	}
	span := db.SpanWith
	if q.By.IsPeriod() {
		span = func(ctx context.Context, from, to time.Time, opt storage.SpanOptions, fn func(*window.Window) error) (window.Resolution, error) {
			return readPeriods(ctx, db, q.By, a.period.loc, from, to, opt, fn)
		}
	}
	sum, err := read(ctx, db, span, r, storage.SpanOptions{Reuse: true},
		func(w *window.Window) { a.Add(q.Filter.Apply(w)) }, a.Summary)
	if err != nil {
		return nil, Summary{}, err
	}
	if q.By.IsPeriod() {
		return a.Rows(q.Sort), sum, nil
	}
	return a.top(q.Sort, q.Top), sum, nil
}

// spanFunc reads a range as storage.DB.SpanWith does.
type spanFunc func(ctx context.Context, from, to time.Time, opt storage.SpanOptions, fn func(*window.Window) error) (window.Resolution, error)

// read feeds r of db to add, its range read with span, its last N windows
// with LastWith, and returns summary() completed with the resolution the
// range was answered at and the damaged units skipped.
func read(ctx context.Context, db *storage.DB, span spanFunc, r Range, opt storage.SpanOptions,
	add func(*window.Window), summary func() Summary) (Summary, error) {
	feed := func(w *window.Window) error {
		add(w)
		return nil
	}
	res := window.Raw
	var err error
	var damaged []storage.Damage
	opt.Damaged = func(d storage.Damage) { damaged = append(damaged, d) }
	if r.Last > 0 {
		err = db.LastWith(ctx, r.Last, opt, feed)
	} else {
		res, err = span(ctx, r.From, r.To, opt, feed)
	}
	if err != nil {
		return Summary{}, err
	}
	sum := summary()
	sum.Resolution = res
	sum.Damaged = damaged
	if res != window.Raw {
		first, _, n, err := db.Bounds()
		if err != nil {
			return Summary{}, err
		}
		if n > 0 {
			sum.RawFrom = first
		}
	}
	return sum, nil
}

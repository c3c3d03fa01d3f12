package query

import (
	"time"

	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

// Summary describes what an answer was read from: how many raw windows and
// rollups, the time they cover, their statistics summed, and the tier
// resolution. Tables print their header and quality notes from it, so an
// answer added up by the daemon prints the same as one read from the file.
type Summary struct {
	Windows, Hours, Days int       // units read: raw windows, hourly and daily rollups
	First, Last          time.Time // the first unit's start, the last one's end; zero when none
	Stats                rotate.Stats
	DropUnits, FoldUnits int    // units with kernel drops, with remotes folded by --max-remotes
	PartialUnits         int    // units watched for only part of their time (rotate.Partial)
	Capped               uint64 // remote entries a rollup's cap folded into other

	// Resolution is the coarsest unit an edge of the range was rounded to
	// because finer data was pruned (storage.DB.Span); storage.Raw means
	// the answer is exactly the raw windows'.
	Resolution storage.Resolution
	// RawFrom is the start of the oldest raw window still stored, when
	// Resolution is not storage.Raw; zero when none is left.
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
func (s *Summary) add(w *storage.Window) {
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

// Summarize summarises windows read as they are (Resolution storage.Raw).
func Summarize(ws []*storage.Window) Summary {
	var s Summary
	for _, w := range ws {
		s.add(w)
	}
	return s
}

// Reader is what an aggregate reads: *storage.DB, or the daemon in front
// of it.
type Reader interface {
	Last(n int, fn func(*storage.Window) error) error
	SpanWith(from, to time.Time, opt storage.SpanOptions, fn func(*storage.Window) error) (storage.Resolution, error)
	Bounds() (first, last time.Time, n int, err error)
}

// lastWither is a Reader that also says which damaged windows its Last
// skipped (storage.DB.LastWith).
type lastWither interface {
	LastWith(n int, opt storage.SpanOptions, fn func(*storage.Window) error) error
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

// Answer adds up the range [from, to) of src, or its last N windows when
// last > 0, as q asks. A range is read with storage.DB.SpanWith: rollups for
// its whole hours and days, raw windows for the rest, so a month costs a few
// hundred units rather than 130,000 windows; the last N windows are raw.
// check (if not nil) runs before each unit, maybe on several goroutines at
// once; its error stops the read. The API's /v1/aggregate and the CLI
// reading a file both answer with this; a range (not the last N, not by
// period) is added up on up to one worker per core (parallel.go).
//
// Periods (ByHour ... ByMonth) widen the range to whole periods of q.Loc
// and read each period on its own, so that every unit lies within one.
func Answer(src Reader, from, to time.Time, last int, q Question, check func() error) ([]Row, Summary, error) {
	if n := answerWorkers(); n > 1 && last <= 0 && !q.By.IsPeriod() {
		return answerParallel(src, from, to, q, check, n) // parallel.go
	}
	a, err := NewAggregatorFor(q)
	if err != nil {
		return nil, Summary{}, err
	}
	var span func(from, to time.Time, opt storage.SpanOptions, fn func(*storage.Window) error) (storage.Resolution, error)
	if q.By.IsPeriod() {
		span = func(from, to time.Time, opt storage.SpanOptions, fn func(*storage.Window) error) (storage.Resolution, error) {
			return readPeriods(src, q.By, a.period.loc, from, to, opt, fn)
		}
	}
	sum, err := readWith(src, span, from, to, last, storage.SpanOptions{Reuse: true}, check,
		func(w *storage.Window) { a.Add(q.Filter.Apply(w)) }, a.Summary)
	if err != nil {
		return nil, Summary{}, err
	}
	if q.By.IsPeriod() {
		return a.Rows(q.Sort), sum, nil
	}
	return a.top(q.Sort, q.Top), sum, nil
}

// read feeds the range [from, to) of src, or its last N windows, to add
// (calling check before each unit) and returns summary() completed with the
// resolution the range was answered at.
func read(src Reader, from, to time.Time, last int, opt storage.SpanOptions, check func() error,
	add func(*storage.Window), summary func() Summary) (Summary, error) {
	return readWith(src, nil, from, to, last, opt, check, add, summary)
}

// readWith is read with another way to read a range (nil: src.SpanWith).
func readWith(src Reader, span func(from, to time.Time, opt storage.SpanOptions, fn func(*storage.Window) error) (storage.Resolution, error),
	from, to time.Time, last int, opt storage.SpanOptions, check func() error,
	add func(*storage.Window), summary func() Summary) (Summary, error) {
	if span == nil {
		span = src.SpanWith
	}
	feed := func(w *storage.Window) error {
		if check != nil {
			if err := check(); err != nil {
				return err
			}
		}
		add(w)
		return nil
	}
	res := storage.Raw
	var err error
	var damaged []storage.Damage
	opt.Damaged = func(d storage.Damage) { damaged = append(damaged, d) }
	if lw, ok := src.(lastWither); ok && last > 0 {
		err = lw.LastWith(last, opt, feed)
	} else if last > 0 {
		err = src.Last(last, feed)
	} else {
		res, err = span(from, to, opt, feed)
	}
	if err != nil {
		return Summary{}, err
	}
	sum := summary()
	sum.Resolution = res
	sum.Damaged = damaged
	if res != storage.Raw {
		first, _, n, err := src.Bounds()
		if err != nil {
			return Summary{}, err
		}
		if n > 0 {
			sum.RawFrom = first
		}
	}
	return sum, nil
}

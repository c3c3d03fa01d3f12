package storage

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// tiers is what a read transaction knows about which tier holds what.
type tiers struct {
	sealed                        time.Time // hours before it are rolled up
	rawFloor, hourFloor, dayFloor time.Time // units starting before these were pruned
}

func readTiers(tx *bolt.Tx) tiers {
	meta := tx.Bucket(bucketMeta)
	return tiers{
		sealed:    getTime(meta, keySealed),
		rawFloor:  getTime(meta, keyPrunedWindows),
		hourFloor: getTime(meta, keyPrunedHours),
		dayFloor:  getTime(meta, keyPrunedDays),
	}
}

func (t *tiers) hourOK(h time.Time) bool {
	return !h.Before(t.hourFloor) && !h.Add(time.Hour).After(t.sealed)
}

func (t *tiers) dayOK(d time.Time) bool {
	return !d.Before(t.dayFloor) && !d.Add(24*time.Hour).After(t.sealed)
}

// segment is one piece of a Span plan: the raw windows starting in
// [start, end), or the rollup of tier r starting at start.
type segment struct {
	r          window.Resolution
	start, end time.Time
}

// plan splits [from, to) into segments, coarsest first where it is exact,
// and reports the coarsest resolution an edge had to be rounded to.
func (t *tiers) plan(from, to time.Time) ([]segment, window.Resolution) {
	var segs []segment
	res := window.Raw
	addRaw := func(a, b time.Time) {
		if n := len(segs); n > 0 && segs[n-1].r == window.Raw && segs[n-1].end.Equal(a) {
			segs[n-1].end = b
			return
		}
		segs = append(segs, segment{window.Raw, a, b})
	}
	for cur := from; cur.Before(to); {
		h := floorHour(cur)
		next := h.Add(time.Hour)
		aligned := cur.Equal(h)
		dayAligned := aligned && cur.Equal(floorDay(cur))
		switch {
		case dayAligned && !cur.Add(24*time.Hour).After(to) && t.dayOK(cur):
			segs = append(segs, segment{window.Daily, cur, cur.Add(24 * time.Hour)})
			cur = cur.Add(24 * time.Hour)
			continue
		case aligned && !next.After(to) && t.hourOK(cur):
			segs = append(segs, segment{window.Hourly, cur, next})
		case !cur.Before(t.rawFloor):
			addRaw(cur, minTime(next, to))
		// From here on the raw windows of [cur, next) were pruned: a
		// coarser unit that starts in the range stands for them.
		case aligned && t.hourOK(cur):
			segs = append(segs, segment{window.Hourly, cur, next})
			res = max(res, window.Hourly)
		case dayAligned && t.dayOK(cur):
			segs = append(segs, segment{window.Daily, cur, cur.Add(24 * time.Hour)})
			res = window.Daily
			cur = cur.Add(24 * time.Hour)
			continue
		case t.hourOK(h):
			res = max(res, window.Hourly) // left out: its hour starts before cur
		case t.dayOK(floorDay(cur)):
			res = window.Daily // left out: its day starts before cur
		}
		cur = minTime(next, to)
	}
	return segs, res
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// spanBatch bounds how many remotes one read transaction of Span decodes:
// a transaction is not held across many rollups, nor while fn runs.
var spanBatch = 100_000 // a variable for tests

// SpanOptions tune Span.
type SpanOptions struct {
	// Reuse lets Span decode later windows into the memory of earlier
	// ones: fn must not keep a window, its Remotes, or pointers into them
	// after it returns (strings may be kept; copy the rest). That saves
	// allocating and collecting ~100 bytes per remote, a third of the
	// time of a month-wide span. query.Aggregator.Add qualifies.
	Reuse bool

	// Groups delivers rollups (Length 1h or 24h) with Groups set and
	// Remotes nil (Other and Stats as always); raw windows keep their
	// Remotes. Sums by country or AS are then the same as from the
	// remotes, without decoding them: about 30x less work for a month.
	// What groups cannot give is per-remote anything, including how many
	// distinct remotes a country had over several rollups (Group.Remotes
	// counts one rollup's rows).
	Groups bool

	// Damaged, if set, is told about each damaged value the span skipped
	// (see Damage), after the last call to fn, on fn's goroutine.
	Damaged func(Damage)

	// Workers, when above 1 with Parallel set, reads the span on up to
	// that many goroutines at once instead of calling fn: each takes the
	// plan's next unit (a rollup, or an hour's raw windows) when it is
	// free, decodes it and calls Parallel with its own number (0 to
	// Workers-1) and each window. A worker's windows come oldest first;
	// workers run at once and take units in no set order, so Parallel
	// suits a caller that adds up per worker and merges the sums. Reuse
	// then holds per worker. Damaged is told on the caller's goroutine,
	// after the workers are done, in the order a serial span tells it.
	Workers  int
	Parallel func(worker int, w *window.Window) error

	// NoOrgs leaves every ASOrg empty, for a caller that shows no AS
	// organisations (answers by country or network): filling them in is
	// a lookup per remote.
	NoOrgs bool
}

// Span calls fn, oldest first, with windows that together hold exactly
// what the raw windows with from <= Start < to hold: raw windows for the
// parts of the range that are not whole hours, an hourly rollup (Length 1h)
// for each whole UTC hour, a daily rollup (Length 24h) for each whole UTC
// day, each used only where it is the sum of the raw windows it stands for
// (a rollup [h, h+1h) is used when it lies within [from, to), so every raw
// window starting in it would be selected, and when its hour is sealed).
// Totals therefore equal the raw windows' sums; rows per remote do too
// unless a rollup's cap folded some (Window.Capped > 0).
//
// Where raw windows were pruned, a coarser unit stands for them: an hour
// (or day) that starts inside the range is answered by its rollup as a
// whole, one that starts before the range is left out, as a window is. The
// returned Resolution is the coarsest unit an edge was rounded to: Raw
// means the answer is exactly that of the raw windows.
//
// Windows are read and decoded on another goroutine while fn runs on the
// caller's, in short read transactions, so fn may be slow or call other DB
// methods. A Prune that runs between the transactions of a long span may
// remove units the span had planned to read; they are then missing from
// the answer. An error from fn stops the span and is returned as is; so is
// ctx's error once ctx is done, which the reading goroutine heeds too: a
// client that goes away stops the read, not only the calls to fn.
func (db *DB) Span(ctx context.Context, from, to time.Time, fn func(*window.Window) error) (window.Resolution, error) {
	return db.SpanWith(ctx, from, to, SpanOptions{}, fn)
}

// SpanWith is Span with options.
func (db *DB) SpanWith(ctx context.Context, from, to time.Time, opt SpanOptions, fn func(*window.Window) error) (window.Resolution, error) {
	if err := ctx.Err(); err != nil {
		return window.Raw, err
	}
	from, to = ceilSecond(from), ceilSecond(to)
	if !from.Before(to) {
		return window.Raw, nil
	}
	var segs []segment
	var res window.Resolution
	err := db.bolt.View(func(tx *bolt.Tx) error {
		t := readTiers(tx)
		segs, res = t.plan(from, to)
		return nil
	})
	if err != nil {
		return window.Raw, fmt.Errorf("read %s: %w", db.path, err)
	}
	if opt.Workers > 1 && opt.Parallel != nil {
		return db.spanParallel(ctx, segs, res, opt)
	}

	const ahead = 8 // windows decoded ahead of fn
	out := make(chan *window.Window, ahead)
	free := make(chan *window.Window, 2*ahead)
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	var skipped []Damage // written by the reader before it sends to readErr
	go func() {
		defer close(out)
		readErr <- db.readSegments(ctx, segs, opt, free, out, stop, &skipped)
	}()
	var fnErr error
	for w := range out {
		if fnErr == nil {
			if fnErr = ctx.Err(); fnErr == nil {
				fnErr = fn(w)
			}
			if fnErr != nil {
				close(stop)
			}
		}
		if opt.Reuse {
			select {
			case free <- w:
			default:
			}
		}
	}
	if fnErr != nil {
		return res, fnErr
	}
	if err := <-readErr; err != nil {
		if ctx.Err() != nil && err == ctx.Err() {
			return res, err
		}
		return res, fmt.Errorf("read %s: %w", db.path, err)
	}
	if opt.Damaged != nil {
		for _, d := range skipped {
			opt.Damaged(d)
		}
	}
	return res, nil
}

// readSegments decodes the plan's windows in order and sends them to out,
// in read transactions of at most scanBatch windows or spanBatch remotes.
// A value that does not decode is skipped and added to skipped. Once ctx is
// done it stops with ctx's error, before its next transaction or send.
func (db *DB) readSegments(ctx context.Context, segs []segment, opt SpanOptions, free <-chan *window.Window, out chan<- *window.Window, stop <-chan struct{}, skipped *[]Damage) error {
	newWindow := func() *window.Window {
		if opt.Reuse {
			select {
			case w := <-free:
				return w
			default:
			}
		}
		return &window.Window{}
	}
	var batch []*window.Window
	send := func() bool {
		for _, w := range batch {
			if ctx.Err() != nil {
				return false
			}
			select {
			case out <- w:
			case <-stop:
				return false
			case <-ctx.Done():
				return false
			}
		}
		batch = batch[:0]
		return true
	}
	var next []byte // where a raw segment's next transaction resumes
	for i := 0; i < len(segs); {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := db.bolt.View(func(tx *bolt.Tx) error {
			n := 0
			for ; i < len(segs) && n < spanBatch && len(batch) < scanBatch; i++ {
				s := segs[i]
				b := tx.Bucket(tierBucket(s.r))
				if s.r != window.Raw {
					k := windowKey(s.start)
					v := b.Get(k)
					if v == nil {
						continue
					}
					*skipped = append(*skipped, lostIn(tx, s.start, s.end)...)
					w := newWindow()
					mode := decodeNoGroups
					if opt.Groups {
						mode = decodeGroups
					}
					if err := unmarshalWith(w, k, v, mode); isDamage(err) {
						*skipped = append(*skipped, db.noteDamage(s.r, k, err))
						continue
					} else if err != nil {
						return fmt.Errorf("%s rollup %s: %w", s.r, s.start.Format(time.RFC3339), err)
					}
					if !opt.NoOrgs {
						db.fillOrgs(tx, w)
					}
					n += len(w.Remotes) + len(w.Groups) + 1
					batch = append(batch, w)
					continue
				}
				start, end := windowKey(s.start), windowKey(s.end)
				if next != nil {
					start, next = next, nil
				}
				c := b.Cursor()
				k, v := c.Seek(start)
				for ; k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
					if n >= spanBatch || len(batch) >= scanBatch {
						next = bytes.Clone(k)
						return nil // resume this segment in the next transaction
					}
					w := newWindow()
					if err := unmarshalInto(w, k, v); isDamage(err) {
						*skipped = append(*skipped, db.noteDamage(window.Raw, k, err))
						continue
					} else if err != nil {
						return fmt.Errorf("window %s: %w", keyTime(k).Format(time.RFC3339), err)
					}
					if !opt.NoOrgs {
						db.fillOrgs(tx, w)
					}
					n += len(w.Remotes) + 1
					batch = append(batch, w)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !send() {
			return ctx.Err() // nil when fn stopped the span
		}
	}
	return nil
}

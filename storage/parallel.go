package storage

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dstwatch/dstwatch/window"
	bolt "go.etcd.io/bbolt"
)

// A month-wide answer decodes about 1.5M remote entries, and decoding them
// took about as long as adding them up. With SpanOptions.Workers the span's
// units are shared out among goroutines that each decode a unit and hand
// it to their own adder, so both halves of the work use every core; the
// caller merges the adders' sums (query does, exactly: its sums do not
// depend on which worker added which unit).

// spanChunks is the plan cut into the pieces that workers take one at a
// time: each rollup, and the raw windows of each hour (a raw segment can
// span many hours of windows that were never rolled up).
func spanChunks(segs []segment) []segment {
	var out []segment
	for _, s := range segs {
		if s.r != window.Raw {
			out = append(out, s)
			continue
		}
		for cur := s.start; cur.Before(s.end); {
			next := minTime(floorHour(cur).Add(time.Hour), s.end)
			out = append(out, segment{window.Raw, cur, next})
			cur = next
		}
	}
	return out
}

// spanWorker is one goroutine of a parallel span: its number, its windows
// (reused from one batch to the next when SpanOptions.Reuse is set) and
// its copy of the organisations it has looked up.
type spanWorker struct {
	id      int
	windows []*window.Window
	orgs    orgCache
	of      orgFill
}

// spanWorkers keeps workers' windows from one span to the next (with
// Reuse): a month-wide span decodes into some 10 MB of them, and
// allocating those again for every answer cost a garbage collection each.
var spanWorkers sync.Pool

// chunkBatch bounds the remotes a worker decodes per read transaction of
// raw windows: a worker holds one batch of decoded windows at a time, and
// a small batch stays in the processor's cache while it is added up.
const chunkBatch = 16 << 10

// fnError marks an error from SpanOptions.Parallel, which the span returns
// as it is (read errors get the file's name).
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// spanParallel reads the planned segments on opt.Workers goroutines and
// calls opt.Parallel. Damage is reported in the plan's order, as the
// serial span reports it, so only the order of the calls differs.
//
// Once ctx is done the workers stop before their next unit or transaction
// and the span returns ctx's error, as a serial span does.
func (db *DB) spanParallel(ctx context.Context, segs []segment, res window.Resolution, opt SpanOptions) (window.Resolution, error) {
	chunks := spanChunks(segs)
	workers := min(opt.Workers, len(chunks))
	errs := make([]error, len(chunks))
	skipped := make([][]Damage, len(chunks))
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for id := range workers {
		wg.Go(func() {
			wk := &spanWorker{}
			if opt.Reuse {
				if w, ok := spanWorkers.Get().(*spanWorker); ok {
					wk = w
				}
			}
			wk.id, wk.orgs = id, orgCache{} // organisations are the DB's
			if opt.Reuse {
				defer func() {
					wk.of = orgFill{} // not the transaction
					spanWorkers.Put(wk)
				}()
			}
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				if err := db.readChunk(ctx, chunks[i], opt, wk, &skipped[i], &stop); err != nil {
					errs[i] = err
					stop.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, err := range errs {
		if fe, ok := err.(fnError); ok {
			return res, fe.err
		} else if err != nil {
			return res, fmt.Errorf("read %s: %w", db.path, err)
		}
	}
	if opt.Damaged != nil {
		for _, s := range skipped {
			for _, d := range s {
				opt.Damaged(d)
			}
		}
	}
	return res, nil
}

// readChunk decodes one chunk as readSegments decodes a segment (in read
// transactions of at most scanBatch windows or chunkBatch remotes) and
// hands its windows to opt.Parallel outside the transaction.
func (db *DB) readChunk(ctx context.Context, s segment, opt SpanOptions, wk *spanWorker, skipped *[]Damage, stop *atomic.Bool) error {
	var resume []byte // where the next transaction continues a raw chunk
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []*window.Window
		newWin := func() *window.Window {
			if !opt.Reuse {
				return &window.Window{}
			}
			if len(batch) == len(wk.windows) {
				wk.windows = append(wk.windows, &window.Window{})
			}
			return wk.windows[len(batch)]
		}
		more := false
		err := db.bolt.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(tierBucket(s.r))
			if s.r != window.Raw {
				k := windowKey(s.start)
				v := b.Get(k)
				if v == nil {
					return nil
				}
				*skipped = append(*skipped, lostIn(tx, s.start, s.end)...)
				w := newWin()
				mode := decodeNoGroups
				if opt.Groups {
					mode = decodeGroups
				}
				if err := unmarshalOrgs(w, k, v, mode, wk.fill(db, tx, opt)); isDamage(err) {
					*skipped = append(*skipped, db.noteDamage(s.r, k, err))
					return nil
				} else if err != nil {
					return fmt.Errorf("%s rollup %s: %w", s.r, s.start.Format(time.RFC3339), err)
				}
				if !opt.NoOrgs {
					wk.orgs.fillGroups(db, tx, w)
				}
				batch = append(batch, w)
				return nil
			}
			start, end := windowKey(s.start), windowKey(s.end)
			if resume != nil {
				start, resume = resume, nil
			}
			c := b.Cursor()
			n := 0
			for k, v := c.Seek(start); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
				if n >= min(spanBatch, chunkBatch) || len(batch) >= scanBatch {
					resume, more = bytes.Clone(k), true
					return nil
				}
				w := newWin()
				if err := unmarshalOrgs(w, k, v, decodeAll, wk.fill(db, tx, opt)); isDamage(err) {
					*skipped = append(*skipped, db.noteDamage(window.Raw, k, err))
					continue
				} else if err != nil {
					return fmt.Errorf("window %s: %w", keyTime(k).Format(time.RFC3339), err)
				}
				if !opt.NoOrgs {
					wk.orgs.fillGroups(db, tx, w)
				}
				n += len(w.Remotes) + 1
				batch = append(batch, w)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, w := range batch {
			if stop.Load() {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := opt.Parallel(wk.id, w); err != nil {
				return fnError{err}
			}
		}
		if !more {
			return nil
		}
	}
}

// orgCache is a worker's direct-mapped copy of the organisations of the
// AS numbers it has met: filling in the organisation of every remote
// through the DB's map, under its lock, cost a tenth of a month-wide span,
// and a span meets a few hundred ASNs over and over.
type orgCache struct {
	slots [512]orgSlot
}

type orgSlot struct {
	asn uint32 // 0: empty (ASN 0 has no organisation)
	org string
}

// orgFill is what decoding needs to fill in organisations as it goes.
type orgFill struct {
	c  *orgCache
	db *DB
	tx *bolt.Tx
}

// fill is the worker's orgFill for a decode in tx; nil with NoOrgs.
func (wk *spanWorker) fill(db *DB, tx *bolt.Tx, opt SpanOptions) *orgFill {
	if opt.NoOrgs {
		return nil
	}
	wk.of = orgFill{&wk.orgs, db, tx}
	return &wk.of
}

// fillGroups sets the ASOrg of w's groups (decoding set its remotes').
func (c *orgCache) fillGroups(db *DB, tx *bolt.Tx, w *window.Window) {
	for i := range w.Groups {
		if g := &w.Groups[i]; g.ASN != 0 {
			g.ASOrg = c.org(db, tx, g.ASN)
		}
	}
}

func (c *orgCache) org(db *DB, tx *bolt.Tx, asn uint32) string {
	s := &c.slots[(asn*0x9e3779b1)>>23]
	if s.asn == asn {
		return s.org
	}
	org := db.orgOf(tx, asn)
	*s = orgSlot{asn, org}
	return org
}

// orgOf is the organisation of asn, "" when none is stored, as fillOrgs
// finds it.
func (db *DB) orgOf(tx *bolt.Tx, asn uint32) string {
	db.mu.Lock()
	defer db.mu.Unlock()
	if org, ok := db.orgs[asn]; ok {
		return org
	}
	ab := tx.Bucket(bucketASN)
	if ab == nil {
		return ""
	}
	if v := ab.Get(asnKey(asn)); v != nil {
		db.orgs[asn] = string(v)
		return db.orgs[asn]
	}
	return ""
}

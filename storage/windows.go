package storage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// scanBatch is how many windows Windows and Last decode per read
// transaction. Short transactions keep a slow callback from holding the
// mmap (a writer that grows the file waits for every reader to finish) and
// bound memory for a long range.
const scanBatch = 256

// Put stores windows in one transaction. Keys are written in ascending
// order whatever the order of ws, because bbolt splits pages badly on
// random inserts. A window whose start is already stored is merged with the
// stored one, never overwritten, so a window written twice (a restart
// replaying the same capture, a late flush) loses no counts: remotes are
// summed by address, Other and Stats are summed, Length is the larger,
// and Country, ASN and GeoBuild come from the newer unless it does not know
// them. ws is not modified.
func (db *DB) Put(ws []*window.Window) error {
	if len(ws) == 0 {
		return nil
	}
	for _, w := range ws {
		if err := validate(w); err != nil {
			return fmt.Errorf("put window %s: %w", w.Start.UTC().Format(time.RFC3339), err)
		}
	}
	sorted := slices.Clone(ws)
	slices.SortStableFunc(sorted, func(a, b *window.Window) int { return a.Start.Compare(b.Start) })
	for i, w := range sorted {
		if !remotesSorted(w.Remotes) {
			c := *w
			c.Remotes = slices.Clone(w.Remotes)
			sortRemotes(c.Remotes)
			sorted[i] = &c
		}
	}

	newOrgs := make(map[uint32]string)
	db.mu.Lock()
	for _, w := range sorted {
		for i := range w.Remotes {
			r := &w.Remotes[i]
			if r.ASN != 0 && r.ASOrg != "" && db.orgs[r.ASN] != r.ASOrg {
				newOrgs[r.ASN] = r.ASOrg
			}
		}
	}
	db.mu.Unlock()

	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWindows)
		// Windows arrive in time order, so almost every insert appends;
		// full pages then make a smaller file.
		b.FillPercent = 0.9
		for _, w := range sorted {
			k := windowKey(w.Start)
			if old := b.Get(k); old != nil {
				ow, err := UnmarshalWindow(k, old)
				switch {
				case isDamage(err):
					// Its counts are lost either way; the new ones
					// replace it rather than be refused with it.
					db.caps.skip(window.Raw, k, err)
				case err != nil:
					return fmt.Errorf("merge window %s with the stored one: %w (nothing was written)",
						w.Start.UTC().Format(time.RFC3339), err)
				default:
					w = merge(ow, w)
				}
			}
			if err := b.Put(k, MarshalWindow(w)); err != nil {
				return err
			}
		}
		// The rollups change in this same transaction, so they can never
		// disagree with the windows: only the new counts are added.
		if err := rollUp(tx, sorted, db.caps); err != nil {
			return err
		}
		if err := putOutbox(tx, sorted); err != nil { // outbox.go
			return err
		}
		ab := tx.Bucket(bucketASN)
		asns := make([]uint32, 0, len(newOrgs))
		for asn, org := range newOrgs {
			if string(ab.Get(asnKey(asn))) == org {
				delete(newOrgs, asn)
				continue
			}
			asns = append(asns, asn)
		}
		slices.Sort(asns)
		for _, asn := range asns {
			if err := ab.Put(asnKey(asn), []byte(newOrgs[asn])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %d windows into %s: %w", len(ws), db.path, err)
	}
	db.mu.Lock()
	for asn, org := range newOrgs {
		db.orgs[asn] = org
	}
	db.mu.Unlock()
	return nil
}

func validate(w *window.Window) error {
	switch {
	case w.Start.Unix() < 0:
		return errors.New("start before 1970")
	case w.Start.Nanosecond() != 0:
		return errors.New("start is not a whole second")
	case w.Length <= 0 || w.Length%time.Second != 0:
		return fmt.Errorf("length %s is not a positive number of whole seconds", w.Length)
	}
	for i := range w.Remotes {
		if !w.Remotes[i].Addr.IsValid() {
			return fmt.Errorf("remote %d has no address", i)
		}
	}
	return nil
}

func asnKey(asn uint32) []byte { return binary.BigEndian.AppendUint32(nil, asn) }

func compareRemotes(a, b *window.Remote) int {
	if c := cmp.Compare(b.Bytes(), a.Bytes()); c != 0 {
		return c
	}
	return a.Addr.Compare(b.Addr)
}

func remotesSorted(rs []window.Remote) bool {
	return slices.IsSortedFunc(rs, func(a, b window.Remote) int { return compareRemotes(&a, &b) })
}

func sortRemotes(rs []window.Remote) {
	slices.SortFunc(rs, func(a, b window.Remote) int { return compareRemotes(&a, &b) })
}

// merge returns old and newer combined into a new window; neither input
// is modified.
func merge(old, newer *window.Window) *window.Window {
	m := &window.Window{
		Start:    old.Start,
		Length:   max(old.Length, newer.Length),
		Other:    old.Other,
		Stats:    old.Stats,
		GeoBuild: old.GeoBuild,
	}
	if !newer.GeoBuild.IsZero() {
		m.GeoBuild = newer.GeoBuild
	}
	m.Other.Add(newer.Other)
	m.Stats.Add(newer.Stats)
	m.Services = mergeServices(old.Services, newer.Services)

	m.Remotes = make([]window.Remote, 0, len(old.Remotes)+len(newer.Remotes))
	m.Remotes = append(m.Remotes, old.Remotes...)
	at := make(map[[16]byte]int, len(m.Remotes))
	for i := range m.Remotes {
		at[m.Remotes[i].Addr.Unmap().As16()] = i
	}
	for _, r := range newer.Remotes {
		k := r.Addr.Unmap().As16()
		i, ok := at[k]
		if !ok {
			at[k] = len(m.Remotes)
			m.Remotes = append(m.Remotes, r)
			continue
		}
		e := &m.Remotes[i]
		e.Counts.Add(r.Counts)
		// The newer lookup wins, but a failed lookup does not erase a
		// known answer.
		if r.Country != "" {
			e.Country = r.Country
		}
		if r.ASN != 0 {
			e.ASN, e.ASOrg = r.ASN, r.ASOrg
		}
	}
	sortRemotes(m.Remotes)
	return m
}

// Windows calls fn for each stored window with from <= Start < to, oldest
// first. Each window is a copy that fn may keep. fn runs outside any
// transaction, so it may be slow or call other DB methods; a window written
// meanwhile after the last one seen is included. An error from fn stops the
// scan and is returned as is; so is ctx's error once ctx is done (checked
// before each window).
func (db *DB) Windows(ctx context.Context, from, to time.Time, fn func(*window.Window) error) error {
	return db.scanBucket(ctx, bucketWindows, clampKey(from), clampKey(to), -1, fn, nil)
}

// Last calls fn for the n newest windows, oldest first; ctx as for Windows.
func (db *DB) Last(ctx context.Context, n int, fn func(*window.Window) error) error {
	return db.LastWith(ctx, n, SpanOptions{}, fn)
}

// LastWith is Last, and tells opt.Damaged (the only option it uses) about
// each damaged window it skipped, after the last call to fn.
func (db *DB) LastWith(ctx context.Context, n int, opt SpanOptions, fn func(*window.Window) error) error {
	if n <= 0 {
		return nil
	}
	var from []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketWindows).Cursor()
		k, _ := c.Last()
		for i := 1; k != nil && i < n; i++ {
			if pk, _ := c.Prev(); pk != nil {
				k = pk
			} else {
				break
			}
		}
		from = bytes.Clone(k)
		return nil
	})
	if err != nil || from == nil {
		return err
	}
	var skipped []Damage
	if err := db.scanBucket(ctx, bucketWindows, from, nil, n, fn, &skipped); err != nil {
		return err
	}
	if opt.Damaged != nil {
		for _, d := range skipped {
			opt.Damaged(d)
		}
	}
	return nil
}

// clampKey maps a time to a key, keeping times before 1970 at the first key.
func clampKey(t time.Time) []byte {
	if t.Unix() < 0 {
		return make([]byte, keyLen)
	}
	// A range end with a fraction of a second must still include the
	// window starting at its whole second.
	if t.Nanosecond() != 0 {
		t = t.Truncate(time.Second).Add(time.Second)
	}
	return windowKey(t)
}

// scanBucket reads windows (or rollups) with from <= key < to (to nil: no
// end), at most limit of them (limit < 0: no limit), in batches of
// scanBatch per transaction.
// A value that does not decode is skipped, noted (Damaged) and, when
// skipped is not nil, added to it. Once ctx is done the scan stops with its
// error: before each transaction and each call to fn.
func (db *DB) scanBucket(ctx context.Context, bucket, from, to []byte, limit int, fn func(*window.Window) error, skipped *[]Damage) error {
	tier := window.Raw
	for _, r := range []window.Resolution{window.Hourly, window.Daily} {
		if bytes.Equal(bucket, tierBucket(r)) {
			tier = r
		}
	}
	next := from
	for next != nil && limit != 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []*window.Window
		err := db.bolt.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.Seek(next)
			next = nil
			for ; k != nil && (to == nil || bytes.Compare(k, to) < 0); k, v = c.Next() {
				if len(batch) == scanBatch || len(batch) == limit {
					next = bytes.Clone(k)
					break
				}
				w, err := UnmarshalWindow(k, v)
				if isDamage(err) {
					d := db.noteDamage(tier, k, err)
					if skipped != nil {
						*skipped = append(*skipped, d)
					}
					continue
				}
				if err != nil {
					return fmt.Errorf("window %s: %w", keyTime(k).Format(time.RFC3339), err)
				}
				db.fillOrgs(tx, w)
				batch = append(batch, w)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", db.path, err)
		}
		if limit > 0 {
			limit -= len(batch)
		}
		for _, w := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// fillOrgs sets Remote.ASOrg from the cache, falling back to the asn
// bucket. Unknown ASNs are not cached: their name may be written later.
func (db *DB) fillOrgs(tx *bolt.Tx, w *window.Window) {
	var ab *bolt.Bucket
	db.mu.Lock()
	defer db.mu.Unlock()
	org := func(asn uint32) string {
		if org, ok := db.orgs[asn]; ok {
			return org
		}
		if ab == nil {
			if ab = tx.Bucket(bucketASN); ab == nil {
				return ""
			}
		}
		if v := ab.Get(asnKey(asn)); v != nil {
			db.orgs[asn] = string(v)
			return db.orgs[asn]
		}
		return ""
	}
	for i := range w.Remotes {
		if r := &w.Remotes[i]; r.ASN != 0 {
			r.ASOrg = org(r.ASN)
		}
	}
	for i := range w.Groups {
		if g := &w.Groups[i]; g.ASN != 0 {
			g.ASOrg = org(g.ASN)
		}
	}
}

// Bounds reports the oldest and newest window start and how many windows
// are stored; zero values when there are none.
func (db *DB) Bounds() (first, last time.Time, n int, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWindows)
		c := b.Cursor()
		k, _ := c.First()
		if k == nil {
			return nil
		}
		first = keyTime(k)
		k, _ = c.Last()
		last = keyTime(k)
		n = b.Stats().KeyN
		return nil
	})
	if err != nil {
		err = fmt.Errorf("read %s: %w", db.path, err)
	}
	return first, last, n, err
}

// Prune deletes the windows with Start < before in one transaction and
// reports how many; it is PruneTier(Raw, before). The hours of the deleted
// windows are sealed first, so their counts stay in the rollups. The file
// does not shrink; bbolt reuses the pages. Organisation names are kept:
// they are few and later windows share them.
func (db *DB) Prune(before time.Time) (int, error) {
	return db.PruneTier(window.Raw, before)
}

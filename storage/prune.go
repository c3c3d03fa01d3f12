package storage

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// Retention is how long each tier is kept, measured back from the newest
// window. Zero keeps a tier forever.
type Retention struct {
	Windows, Hours, Days time.Duration
}

// DefaultRetention keeps raw windows 2 days, hourly rollups 90 days and
// daily rollups 2 years.
var DefaultRetention = Retention{
	Windows: 2 * 24 * time.Hour,
	Hours:   90 * 24 * time.Hour,
	Days:    730 * 24 * time.Hour,
}

// Pruned counts what PruneTiers deleted; Unexported, the raw windows
// among them that were still waiting in the outbox (outbox.go).
type Pruned struct{ Windows, Hours, Days, Unexported int }

// PruneTier deletes the units of one tier (windows, hourly or daily
// rollups) that start before before, in one transaction, and reports how
// many. Before raw windows go, every hour they touch is sealed, so their
// counts live on in the rollups. The file does not shrink; bbolt reuses the
// pages.
func (db *DB) PruneTier(r window.Resolution, before time.Time) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) (err error) {
		n, err = pruneTier(tx, r, before, db.caps)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s: %w", db.path, err)
	}
	return n, nil
}

// PruneTiers applies a retention to every tier in one transaction, counted
// back from newest (the newest window's start, as the daemon knows it).
// Cut-offs are rounded down to a whole hour for raw windows and to a whole
// UTC day for rollups, so each tier loses whole units of the next coarser
// one and a range answered from a coarser tier has clean edges.
func (db *DB) PruneTiers(newest time.Time, keep Retention) (Pruned, error) {
	var p Pruned
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, t := range []struct {
			r    window.Resolution
			keep time.Duration
			n    *int
		}{{window.Raw, keep.Windows, &p.Windows}, {window.Hourly, keep.Hours, &p.Hours}, {window.Daily, keep.Days, &p.Days}} {
			if t.keep <= 0 {
				continue
			}
			cut := newest.Add(-t.keep)
			if t.r == window.Raw {
				cut = floorHour(cut)
			} else {
				cut = floorDay(cut)
			}
			n, err := pruneTier(tx, t.r, cut, db.caps)
			if err != nil {
				return err
			}
			*t.n = n
			if t.r == window.Raw && n > 0 {
				if p.Unexported, err = pruneOutbox(tx, ceilSecond(cut)); err != nil { // outbox.go
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("prune %s: %w", db.path, err)
	}
	return p, nil
}

func pruneTier(tx *bolt.Tx, r window.Resolution, before time.Time, c caps) (int, error) {
	before = ceilSecond(before)
	if r == window.Raw {
		meta := tx.Bucket(bucketMeta)
		if to := ceilHour(before); to.After(getTime(meta, keySealed)) {
			if err := seal(tx, to, c); err != nil {
				return 0, err
			}
		}
	}
	b := tx.Bucket(tierBucket(r))
	end := windowKey(before)
	var keys [][]byte
	cur := b.Cursor()
	for k, _ := cur.First(); k != nil && bytes.Compare(k, end) < 0; k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	// Deleting through the cursor while iterating skips keys in bbolt;
	// collect first, then delete in key order.
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	if r == window.Daily {
		if err := pruneLost(tx, before); err != nil {
			return 0, err
		}
	}
	meta := tx.Bucket(bucketMeta)
	key := map[window.Resolution][]byte{window.Raw: keyPrunedWindows, window.Hourly: keyPrunedHours, window.Daily: keyPrunedDays}[r]
	if before.After(getTime(meta, key)) {
		if err := putTime(meta, key, before); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

package storage

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// Damage is one stored window or rollup whose value does not decode: a
// flipped byte inside a value that bbolt's page checks cannot see. Such a
// value is skipped wherever it is met instead of failing the whole read or
// write, so one bad value neither stops storing nor fails every query over
// its range; its counts are lost. Compact drops damaged values.
type Damage struct {
	Tier  window.Resolution
	Start time.Time // UTC
	Err   string    // what the decoder found
}

func (d Damage) String() string {
	what := "window"
	switch d.Tier {
	case window.Hourly:
		what = "hourly rollup"
	case window.Daily:
		what = "daily rollup"
	}
	return what + " " + d.Start.UTC().Format(time.RFC3339)
}

// maxDamage bounds the damage a DB remembers: a file with thousands of bad
// values is reported by its first ones, not held in memory whole.
const maxDamage = 100

// isDamage reports whether err is a value that did not decode (as opposed
// to a failing disk or a closed database).
func isDamage(err error) bool { return errors.Is(err, errCorrupt) }

// noteDamage remembers d (once per tier and start) and tells OnDamage about
// a new one. It may run inside a transaction, on any goroutine.
func (db *DB) noteDamage(r window.Resolution, k []byte, err error) Damage {
	d := Damage{Tier: r, Start: keyTime(k), Err: err.Error()}
	db.dmu.Lock()
	i := slices.IndexFunc(db.damage, func(o Damage) bool { return o.Tier == d.Tier && o.Start.Equal(d.Start) })
	fresh := i < 0 && len(db.damage) < maxDamage
	if fresh {
		db.damage = append(db.damage, d)
	}
	db.dmu.Unlock()
	if fresh && db.onDamage != nil {
		db.onDamage(d)
	}
	return d
}

// Damaged lists the damaged values met since Open (at most maxDamage),
// in the order they were found.
func (db *DB) Damaged() []Damage {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	return slices.Clone(db.damage)
}

// dropDamaged deletes every value of the tier buckets that does not decode,
// in the caller's transaction, and lists what it deleted.
func dropDamaged(tx *bolt.Tx) ([]Damage, error) {
	var dropped []Damage
	for _, r := range []window.Resolution{window.Raw, window.Hourly, window.Daily} {
		b := tx.Bucket(tierBucket(r))
		if b == nil {
			continue
		}
		var keys [][]byte
		var w window.Window
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := unmarshalInto(&w, k, v); err != nil {
				keys = append(keys, slices.Clone(k))
				dropped = append(dropped, Damage{Tier: r, Start: keyTime(k), Err: err.Error()})
			}
		}
		// Deleting through the cursor while iterating skips keys in bbolt.
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return nil, fmt.Errorf("drop damaged %s: %w", r, err)
			}
		}
	}
	return dropped, nil
}

// keyLostPrefix starts the meta keys that remember a raw window left out of
// its rollups because its value did not decode: prefix, then the window's
// 8-byte key; the value is the decoder's error. A query answered from those
// rollups then still says that the window's counts are missing, also after
// Compact dropped the window itself.
var keyLostPrefix = []byte("lost.")

func lostKey(k []byte) []byte { return append(slices.Clone(keyLostPrefix), k...) }

// putLost records that the raw window at key k is missing from its rollups.
func putLost(tx *bolt.Tx, k []byte, err error) error {
	return tx.Bucket(bucketMeta).Put(lostKey(k), []byte(err.Error()))
}

// lostIn lists the raw windows recorded as missing from the rollups in
// [from, to).
func lostIn(tx *bolt.Tx, from, to time.Time) []Damage {
	var out []Damage
	c := tx.Bucket(bucketMeta).Cursor()
	end := lostKey(windowKey(to))
	for k, v := c.Seek(lostKey(windowKey(from))); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
		if len(k) != len(keyLostPrefix)+keyLen {
			continue
		}
		out = append(out, Damage{Tier: window.Raw, Start: keyTime(k[len(keyLostPrefix):]),
			Err: "left out of the rollups: " + string(v)})
	}
	return out
}

// pruneLost forgets the records of windows before before: the daily
// rollups that lacked them are gone.
func pruneLost(tx *bolt.Tx, before time.Time) error {
	meta := tx.Bucket(bucketMeta)
	var keys [][]byte
	c := meta.Cursor()
	end := lostKey(windowKey(before))
	for k, _ := c.Seek(keyLostPrefix); k != nil && bytes.HasPrefix(k, keyLostPrefix) && bytes.Compare(k, end) < 0; k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	for _, k := range keys {
		if err := meta.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

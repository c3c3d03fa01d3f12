package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// Meta keys of format 2. Each holds 8 bytes: big-endian Unix seconds.
var (
	// keySealed: every hour before it has been rolled up into its hourly
	// and daily rollups; windows at or after it are in neither yet.
	keySealed = []byte("sealed")
	// keyPruned*: Prune deleted every unit of the tier starting before it.
	keyPrunedWindows = []byte("pruned.windows")
	keyPrunedHours   = []byte("pruned.hours")
	keyPrunedDays    = []byte("pruned.days")
)

const (
	hourSecs = 3600
	daySecs  = 86400
)

func floorTo(t time.Time, secs int64) time.Time {
	u := t.Unix()
	if u < 0 {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(u-u%secs, 0).UTC()
}

func floorHour(t time.Time) time.Time { return floorTo(t, hourSecs) }
func floorDay(t time.Time) time.Time  { return floorTo(t, daySecs) }

// ceilSecond is the first whole second at or after t, never before 1970:
// the first window start a range from t includes.
func ceilSecond(t time.Time) time.Time {
	if t.Unix() < 0 {
		return time.Unix(0, 0).UTC()
	}
	if t.Nanosecond() != 0 {
		t = t.Truncate(time.Second).Add(time.Second)
	}
	return t.UTC()
}

func ceilHour(t time.Time) time.Time {
	t = ceilSecond(t)
	if f := floorHour(t); !f.Equal(t) {
		return f.Add(time.Hour)
	}
	return t
}

func getTime(meta *bolt.Bucket, key []byte) time.Time {
	v := meta.Get(key)
	if len(v) != 8 {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC()
}

func putTime(meta *bolt.Bucket, key []byte, t time.Time) error {
	return meta.Put(key, binary.BigEndian.AppendUint64(nil, uint64(t.Unix())))
}

func tierBucket(r window.Resolution) []byte {
	switch r {
	case window.Hourly:
		return bucketHours
	case window.Daily:
		return bucketDays
	}
	return bucketWindows
}

func tierLength(r window.Resolution) time.Duration {
	if r == window.Daily {
		return 24 * time.Hour
	}
	return time.Hour
}

// Sealed reports the instant before which every hour has been rolled up:
// hourly rollups starting before it and daily rollups ending by it are
// complete, and later windows are raw only. It is the start of the newest
// window's hour, unless Prune sealed further.
func (db *DB) Sealed() (time.Time, error) {
	var t time.Time
	err := db.bolt.View(func(tx *bolt.Tx) error {
		t = getTime(tx.Bucket(bucketMeta), keySealed)
		return nil
	})
	return t, err
}

// TierUsage is what one tier holds: how many units (windows or rollups),
// the first and last start, and the bytes of their keys and values (the
// file adds bbolt's page overhead and free pages to that).
type TierUsage struct {
	Units       int
	First, Last time.Time
	Bytes       int64
}

// Usage reports what each tier holds, indexed by Resolution. It reads
// every key, not the values' pages, so it is quick even on a large file.
func (db *DB) Usage() ([3]TierUsage, error) {
	var u [3]TierUsage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, r := range []window.Resolution{window.Raw, window.Hourly, window.Daily} {
			t := &u[r]
			c := tx.Bucket(tierBucket(r)).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if t.Units == 0 {
					t.First = keyTime(k)
				}
				t.Last = keyTime(k)
				t.Units++
				t.Bytes += int64(len(k) + len(v))
			}
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("read %s: %w", db.path, err)
	}
	return u, nil
}

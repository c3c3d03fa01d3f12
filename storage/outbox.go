package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// The outbox is how windows leave the file for an export (the fleet's
// ClickHouse): bucket "outbox" holds one entry per stored window, in the
// order they were stored, written by Put in the window's own transaction.
// An exporter reads the oldest entries (Pending), sends the windows as
// they are stored now, and deletes the entries it sent (Exported), so the
// bucket itself is the export position: a crash or an outage never loses
// an entry, and at worst repeats the last send. A window merged after it
// was exported gets a new entry and is sent again, whole; the sequence
// number tells the receiver which copy is newer.
//
//	bucket "outbox" (present once an export was enabled)
//	    key    8 bytes: uint64 sequence (bbolt's NextSequence), ascending
//	    value  8 bytes: uint64 Unix seconds of the stored window's start
var bucketOutbox = []byte("outbox")

// Entry is one window waiting for export.
type Entry struct {
	Seq   uint64
	Start time.Time
}

// EnableOutbox creates the outbox when the file has none, with an entry for
// every window already stored, so that the first export sends the history
// too. It reports whether it created it.
func (db *DB) EnableOutbox() (created bool, err error) {
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOutbox) != nil {
			return nil
		}
		ob, err := tx.CreateBucket(bucketOutbox)
		if err != nil {
			return err
		}
		created = true
		c := tx.Bucket(bucketWindows).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := outboxAdd(ob, bytes.Clone(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("enable outbox in %s: %w", db.path, err)
	}
	return created, nil
}

func outboxAdd(ob *bolt.Bucket, windowKey []byte) error {
	seq, err := ob.NextSequence()
	if err != nil {
		return err
	}
	ob.FillPercent = 0.9 // keys only ever append
	return ob.Put(binary.BigEndian.AppendUint64(nil, seq), windowKey)
}

// putOutbox adds an entry per window to the outbox, if there is one; Put
// calls it in its transaction, with ws sorted by start.
func putOutbox(tx *bolt.Tx, ws []*window.Window) error {
	ob := tx.Bucket(bucketOutbox)
	if ob == nil {
		return nil
	}
	for _, w := range ws {
		if err := outboxAdd(ob, windowKey(w.Start)); err != nil {
			return err
		}
	}
	return nil
}

// Pending returns up to n of the oldest outbox entries (n <= 0: all), and
// how many entries there are in all. A file without an outbox has none.
func (db *DB) Pending(n int) (es []Entry, total int, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		if ob == nil {
			return nil
		}
		total = ob.Stats().KeyN
		c := ob.Cursor()
		for k, v := c.First(); k != nil && (n <= 0 || len(es) < n); k, v = c.Next() {
			if len(k) != 8 || len(v) != 8 {
				return fmt.Errorf("outbox entry %x: bad length", k)
			}
			es = append(es, Entry{Seq: binary.BigEndian.Uint64(k), Start: time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC()})
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read outbox of %s: %w", db.path, err)
	}
	return es, total, nil
}

// Exported deletes the outbox entries up to and including seq.
func (db *DB) Exported(seq uint64) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		if ob == nil {
			return nil
		}
		return deleteOutbox(ob, func(k, _ []byte) bool { return binary.BigEndian.Uint64(k) <= seq })
	})
	if err != nil {
		return fmt.Errorf("outbox of %s: %w", db.path, err)
	}
	return nil
}

// deleteOutbox deletes the entries from the oldest on while del says so.
func deleteOutbox(ob *bolt.Bucket, del func(k, v []byte) bool) error {
	var keys [][]byte
	c := ob.Cursor()
	for k, v := c.First(); k != nil && del(k, v); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := ob.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// pruneOutbox drops the entries of windows that start before before (a
// prune deleted them): they can no longer be exported, and the caller
// says so. Entries are in store order, not start order, so every entry is
// looked at; the outbox is short unless an export is failing.
func pruneOutbox(tx *bolt.Tx, before time.Time) (int, error) {
	ob := tx.Bucket(bucketOutbox)
	if ob == nil {
		return 0, nil
	}
	end := windowKey(before)
	var keys [][]byte
	c := ob.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if bytes.Compare(v, end) < 0 {
			keys = append(keys, bytes.Clone(k))
		}
	}
	for _, k := range keys {
		if err := ob.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

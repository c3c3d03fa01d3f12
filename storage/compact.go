package storage

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/internal/safefile"
)

// compactTxSize is how many bytes Compact copies per write transaction.
const compactTxSize = 64 << 20

// Compact copies the database at src into a new file dst, page by page
// through bbolt's Compact, so dst holds the same keys and values in as few
// pages as they need: pages that pruning freed are not copied, and bbolt
// never gives them back to the file system otherwise. dst must not exist.
// The caller renames dst over src once Compact returns nil.
//
// The daemon must be stopped: src is opened read-only through Open, so a
// file in use fails with ErrLocked (and a damaged, foreign or older-format
// file with the error Open gives), and nothing is written. dst is checked
// with Open after the copy; on any error it is removed.
//
// Windows and rollups whose values do not decode (Damage) are not copied:
// Compact is how a damaged value is cleaned away. CompactDropping says which.
func Compact(src, dst string) error {
	_, err := CompactDropping(src, dst)
	return err
}

// CompactDropping is Compact, and lists the damaged values it left out.
func CompactDropping(src, dst string) (dropped []Damage, err error) {
	s, err := Open(src, Options{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	defer s.Close()
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, st.Mode().Perm())
	if err != nil {
		return nil, fmt.Errorf("compact into %s: %w", dst, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	d, err := bolt.Open(dst, st.Mode().Perm(), &bolt.Options{Timeout: s.timeout, OpenFile: safefile.OpenFile})
	if err != nil {
		return nil, fmt.Errorf("compact into %s: %w", dst, err)
	}
	if err := bolt.Compact(d, s.bolt, compactTxSize); err != nil {
		d.Close()
		return nil, fmt.Errorf("compact %s into %s: %w", src, dst, err)
	}
	err = d.Update(func(tx *bolt.Tx) (err error) {
		dropped, err = dropDamaged(tx)
		return err
	})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("compact into %s: %w", dst, err)
	}
	if err := d.Close(); err != nil {
		return nil, fmt.Errorf("compact into %s: %w", dst, err)
	}
	c, err := Open(dst, Options{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("compact: the copy does not check: %w", err)
	}
	if err := c.Close(); err != nil {
		return nil, errors.Join(fmt.Errorf("compact into %s", dst), err)
	}
	return dropped, nil
}

package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dstwatch/dstwatch/internal/safefile"
	"github.com/dstwatch/dstwatch/window"
)

// Errors that Open returns, wrapped with the path and what to do. Test for
// them with errors.Is.
var (
	// ErrNotDstwatch means the file is not a dstwatch database: not a
	// bbolt file at all, or a bbolt file without dstwatch's meta bucket.
	// The file was not modified.
	ErrNotDstwatch = errors.New("not a dstwatch database")

	// ErrDamaged means the file is a bbolt file that failed an integrity
	// check (truncated, bad meta pages, or tx.Check found a problem). The
	// file was not modified.
	ErrDamaged = errors.New("database is damaged")

	// ErrTooNew means the file was written by a dstwatch with a newer
	// on-disk format. The file was not modified.
	ErrTooNew = errors.New("written by a newer dstwatch")

	// ErrLocked means another process holds the file: bbolt's lock was not
	// granted within Options.Timeout. A read-write handle excludes every
	// other open, even a read-only one, also from the same process.
	ErrLocked = errors.New("locked by another process")

	// ErrNoData means a read-only open found no file (or an empty one): no
	// window was ever written there. Nothing was created.
	ErrNoData = errors.New("no data yet")
)

// Options configure Open.
type Options struct {
	ReadOnly bool
	Timeout  time.Duration // how long to wait for the file lock; 0 means 1s
	Mode     os.FileMode   // for a new file; 0 means 0640

	// OnDamage, if set, is told once about each damaged value met (see
	// Damage), from whatever goroutine met it, maybe inside a transaction:
	// it must not call the DB.
	OnDamage func(Damage)

	// HourCap and DayCap bound the remotes of one hourly and one daily
	// rollup; 0 means DefaultHourCap and DefaultDayCap, < 0 no cap. See
	// the package documentation for what a cap folds, and why exactly.
	HourCap, DayCap int
}

// formatVersion is the on-disk format this code writes. Bump it only
// together with a new entry in upgrades.
const formatVersion = 3

// upgrades[v-1] turns a format v file into format v+1, inside the one
// read-write transaction that Open runs for all needed steps (so a crash
// leaves the file at the old version, never half-way). Adding format 3 means
// appending one function here and bumping formatVersion.
var upgrades = []func(tx *bolt.Tx, c caps) error{
	upgradeTiers,    // 1 -> 2: hourly and daily rollups
	upgradeServices, // 2 -> 3: section 7 (services); nothing to rewrite
}

// allBuckets are the buckets besides meta that a current file has.
var allBuckets = [][]byte{bucketWindows, bucketASN, bucketHours, bucketDays}

var (
	bucketMeta    = []byte("meta")
	bucketWindows = []byte("windows")
	bucketASN     = []byte("asn")
	bucketHours   = []byte("hours")
	bucketDays    = []byte("days")
	keyFormat     = []byte("format")
	keyCreated    = []byte("created")
)

// DB is an open dstwatch database. Its methods are safe for concurrent use;
// bbolt serialises writers.
type DB struct {
	path string
	bolt *bolt.DB
	caps caps
	// timeout is Options.Timeout, for files opened on the DB's behalf.
	timeout time.Duration

	// orgs caches the asn bucket. Put overwrites entries after its
	// transaction commits; readers only add missing ones, so a reader on an
	// older snapshot cannot put back a name Put just replaced.
	mu   sync.Mutex
	orgs map[uint32]string

	// damage lists the damaged values met, guarded by dmu (damage.go).
	dmu      sync.Mutex
	damage   []Damage
	onDamage func(Damage)
}

// Open opens the database at path, creating it when absent (unless
// read-only). An existing file is checked before anything can write to it:
// its bbolt meta pages are read by hand, then bbolt opens it read-only to
// look for dstwatch's meta bucket and run tx.Check; only then is it reopened
// read-write (and upgraded when its format is older).
func Open(path string, opt Options) (*DB, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.Mode == 0 {
		opt.Mode = 0o640
	}
	fresh, err := inspect(path, opt.ReadOnly, "point the database path at another file")
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, orgs: make(map[uint32]string), caps: capsOf(opt), timeout: opt.Timeout, onDamage: opt.OnDamage}
	db.caps.damage = func(r window.Resolution, k []byte, err error) { db.noteDamage(r, k, err) }
	if !fresh {
		b, err := openBolt(path, true, opt)
		if err != nil {
			return nil, err
		}
		var version uint32
		err = b.View(func(tx *bolt.Tx) (err error) {
			// bbolt panics on a bad page met by an ordinary read, so
			// Check (which recovers) runs before anything else reads,
			// and a panic that still gets through means damage.
			defer func() {
				if r := recover(); r != nil {
					err = damaged(path, fmt.Sprint(r))
				}
			}()
			if err := checkIntegrity(tx, path); err != nil {
				return err
			}
			version, err = checkFormat(tx, path)
			return err
		})
		if err == nil && opt.ReadOnly && version < formatVersion {
			err = fmt.Errorf("open %s: format %d is older than %d: open it once with the dstwatch daemon (read-write) to upgrade it",
				path, version, formatVersion)
		}
		if err != nil || opt.ReadOnly {
			if err != nil {
				b.Close()
				return nil, err
			}
			db.bolt = b
			return db, nil
		}
		if err := b.Close(); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}

	b, err := openBolt(path, false, opt)
	if err != nil {
		return nil, err
	}
	// Check again before writing: the file may have changed between the
	// read-only look and this open, and a fresh file may have been created
	// by someone else in the meantime.
	var version uint32
	err = b.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil && len(rootBuckets(tx)) == 0 {
			version = 0 // empty bbolt file: ours to initialise
			return nil
		}
		version, err = checkFormat(tx, path)
		return err
	})
	if err == nil && version < formatVersion {
		err = b.Update(func(tx *bolt.Tx) error { return migrate(tx, version, formatVersion, db.caps) })
		if err != nil {
			err = fmt.Errorf("open %s: upgrade from format %d: %w", path, version, err)
		}
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	db.bolt = b
	return db, nil
}

// inspect decides whether path is a new file (absent or empty) and, when it
// is not, that it looks like an intact bbolt file, without bbolt.
// A read-write open refuses what safefile refuses (a link, another user's
// file while root): bbolt would turn any file it is handed into a database.
func inspect(path string, readOnly bool, hint string) (fresh bool, err error) {
	var f *os.File
	if readOnly {
		f, err = os.Open(path)
	} else {
		// Said first, whoever owns it: a device or a pipe is never ours.
		if st, err := os.Lstat(path); err == nil && st.Mode()&fs.ModeSymlink == 0 && !st.Mode().IsRegular() {
			return false, notOurs(path, "not a regular file", hint)
		}
		f, err = safefile.OpenFile(path, os.O_RDONLY, 0)
	}
	if errors.Is(err, safefile.ErrSymlink) || errors.Is(err, safefile.ErrForeign) {
		return false, err
	}
	if errors.Is(err, fs.ErrNotExist) {
		if readOnly {
			return false, fmt.Errorf("open %s: %w: the file does not exist (the dstwatch daemon creates it when it writes the first window)", path, ErrNoData)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return false, notOurs(path, "not a regular file", hint)
	}
	if st.Size() == 0 {
		if readOnly {
			return false, fmt.Errorf("open %s: %w: the file is empty", path, ErrNoData)
		}
		return true, nil
	}
	res, why, err := sniff(f, st.Size())
	switch {
	case err != nil:
		return false, fmt.Errorf("open %s: %w", path, err)
	case res == sniffForeign:
		return false, notOurs(path, why, hint)
	case res == sniffDamaged:
		return false, damaged(path, why)
	}
	return false, nil
}

func openBolt(path string, readOnly bool, opt Options) (*bolt.DB, error) {
	bo := &bolt.Options{
		Timeout:  opt.Timeout,
		ReadOnly: readOnly,
		// NoSync stays false: a window acknowledged is a window on disk.
	}
	if !readOnly {
		// The file inspect looked at may have been swapped for a link
		// since; this open checks the file it opens.
		bo.OpenFile = safefile.OpenFile
	}
	b, err := bolt.Open(path, opt.Mode, bo)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, safefile.ErrSymlink), errors.Is(err, safefile.ErrForeign):
		return nil, err
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w (is the dstwatch daemon running?): gave up after %s", path, ErrLocked, opt.Timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, damaged(path, err.Error())
	}
	return nil, fmt.Errorf("open %s: %w", path, err)
}

func notOurs(path, why string, hint ...string) error {
	if len(hint) == 0 {
		hint = []string{"point the database path at another file"}
	}
	return fmt.Errorf("open %s: %w (%s); refusing to touch it: %s", path, ErrNotDstwatch, why, hint[0])
}

// CheckBolt is the check Open makes before bbolt may open path read-write,
// for dstwatch's other bbolt file (the alerts' incidents): fresh means
// absent or empty; any other file must be a regular file with intact bbolt
// meta pages and no link, or the error says why it is refused (wrapping
// ErrNotDstwatch, ErrDamaged or safefile's errors). hint says what to do
// instead. What buckets the file holds is the caller's to check.
func CheckBolt(path, hint string) (fresh bool, err error) {
	return inspect(path, false, hint)
}

// IsWindowDB reports whether tx is of a window database (it has the meta
// bucket with a format version), so that other files can refuse it.
func IsWindowDB(tx *bolt.Tx) bool {
	m := tx.Bucket(bucketMeta)
	return m != nil && m.Get(keyFormat) != nil
}

func damaged(path, why string) error {
	return fmt.Errorf("open %s: %w: %s; the file was left as it is: move it aside and start with a new one, "+
		"or try to recover the readable windows with 'bbolt compact -o NEW %s' and use NEW as the database", path, ErrDamaged, why, path)
}

func rootBuckets(tx *bolt.Tx) [][]byte {
	var names [][]byte
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, append([]byte(nil), name...))
		return nil
	})
	return names
}

// checkFormat reads the format version and refuses files that are not
// ours or are too new. Format 0 never appears on disk.
func checkFormat(tx *bolt.Tx, path string) (uint32, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil && tx.Bucket([]byte("incidents")) != nil {
		return 0, notOurs(path, "it holds alert incidents: an alerts file, not a window database")
	}
	if meta == nil {
		return 0, notOurs(path, "no dstwatch meta bucket")
	}
	f := meta.Get(keyFormat)
	if len(f) != 4 {
		return 0, notOurs(path, "the meta bucket has no format version")
	}
	v := binary.BigEndian.Uint32(f)
	switch {
	case v == 0:
		return 0, notOurs(path, "format version 0")
	case v > formatVersion:
		return 0, fmt.Errorf("open %s: %w (format %d; this dstwatch reads formats up to %d); the file was left as it is: upgrade dstwatch",
			path, ErrTooNew, v, formatVersion)
	case v == formatVersion:
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return 0, damaged(path, fmt.Sprintf("bucket %q is missing", name))
			}
		}
	}
	return v, nil
}

// checkIntegrity runs bbolt's own consistency check. It reads every page,
// which takes about a second per few hundred MB; a damaged file found at
// start is far cheaper than one found by a query.
func checkIntegrity(tx *bolt.Tx, path string) error {
	var first error
	n := 0
	for err := range tx.Check() {
		if first == nil {
			first = err
		}
		n++ // drain: Check's goroutine blocks until every error is read
	}
	if first == nil {
		return nil
	}
	why := first.Error()
	if n > 1 {
		why = fmt.Sprintf("%s (and %d more problems)", why, n-1)
	}
	return damaged(path, why)
}

// migrate brings a file from format from (0 = empty bbolt file) to format
// to in the caller's transaction. Open always passes formatVersion; tests
// pass other targets to run upgrade steps before their format exists.
func migrate(tx *bolt.Tx, from, to uint32, c caps) error {
	if int(to)-1 > len(upgrades) {
		return fmt.Errorf("no upgrade step to format %d", to)
	}
	if from == 0 {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		if err := meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
			return err
		}
		return putFormat(meta, to)
	}
	for v := from; v < to; v++ {
		if err := upgrades[v-1](tx, c); err != nil {
			return fmt.Errorf("to format %d: %w", v+1, err)
		}
	}
	return putFormat(tx.Bucket(bucketMeta), to)
}

func putFormat(meta *bolt.Bucket, v uint32) error {
	return meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, v))
}

// Close releases the file and its lock.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close %s: %w", db.path, err)
	}
	return nil
}

// Path is the file's path as given to Open.
func (db *DB) Path() string { return db.path }

// Size is the file's size on disk. bbolt never gives pages back to the file
// system, so this only grows; pruned space is reused.
func (db *DB) Size() (int64, error) {
	st, err := os.Stat(db.path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

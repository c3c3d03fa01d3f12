package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dstwatch/dstwatch/internal/safefile"
)

// CompactSuffix names the copy CompactInPlace writes beside the file.
const CompactSuffix = ".compact"

// CompactInPlace compacts the database at path (Compact) into
// path+CompactSuffix and renames the copy over path, so the file shrinks
// to what its data needs. It opens path read-write first, which upgrades
// an older format and fails with ErrLocked at once when anybody else has
// it open, then holds a shared lock until the copy is in place, so a
// daemon started meanwhile fails to open the file rather than write to
// one about to be replaced. The copy gets path's owner (when run as root)
// and mode, through the file itself: the directory may be writable by the
// daemon's user, who must not get root to chown a link's target.
//
// started, when not nil, is called with the copy's name once the checks
// passed and the copy begins. It returns the damaged values left out.
func CompactInPlace(path string, started func(tmp string)) (dropped []Damage, err error) {
	before, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() || before.Size() == 0 {
		return nil, fmt.Errorf("%s: not a database file", path)
	}
	d, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	if err := d.Close(); err != nil {
		return nil, err
	}
	hold, err := Open(path, Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer hold.Close()
	tmp := path + CompactSuffix
	if _, err := os.Lstat(tmp); err == nil {
		return nil, fmt.Errorf("%s exists (left by an interrupted compact?): remove it and run compact again", tmp)
	}
	if started != nil {
		started(tmp)
	}
	if dropped, err = CompactDropping(path, tmp); err != nil {
		return nil, err
	}
	f, err := safefile.OpenFile(tmp, os.O_RDONLY, 0)
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if st, ok := before.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		err = f.Chown(int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = f.Chmod(before.Mode().Perm())
	}
	f.Close()
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return dropped, nil
}

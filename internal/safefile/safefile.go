// Package safefile owns the checks dstwatch makes before it writes a file
// while it runs as root: the state directory may belong to the --user
// account, and whoever holds that account must not be able to make root
// append to, replace or turn into a database some other file. So a path
// whose last component is a symbolic link is refused (opens use
// O_NOFOLLOW), and so is an existing file owned by a user other than root,
// the process's own user, the one trusted with Trust (the daemon's --user)
// and the owner of the file's directory, or a file with other hard links. Replacing a file goes through a new file in the same directory
// and a rename, which never writes through a link. Directories above the
// last component are not checked: they are the administrator's.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
)

// ErrSymlink and ErrForeign are what the checks refuse; test with errors.Is.
var (
	ErrSymlink = errors.New("is a symbolic link; refusing to write through it: give the path of the file itself")
	ErrForeign = errors.New("may belong to another user; refusing to write it as root")
)

// trusted is the uid of the account the daemon runs as after it drops
// root (--user); -1 for none. Files of that account are its own.
var trusted atomic.Int64

func init() { trusted.Store(-1) }

// Trust lets files owned by uid be written as root too: they belong to the
// account the daemon continues as, which may write them anyway.
func Trust(uid int) { trusted.Store(int64(uid)) }

// Check refuses path when it is a symbolic link, or, while the process is
// root, an existing file of another non-root user. An absent path passes.
func Check(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkInfo(path, st)
}

func checkInfo(path string, st fs.FileInfo) error {
	if st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s %w", path, ErrSymlink)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	if st.Mode().IsRegular() && sys.Nlink > 1 {
		// A hard link made by someone who may not write the file.
		return fmt.Errorf("%s %w: it has %d hard links", path, ErrForeign, sys.Nlink)
	}
	uid := int64(sys.Uid)
	if uid == 0 || uid == int64(os.Geteuid()) || uid == trusted.Load() {
		return nil
	}
	// The owner of the directory may replace anything in it anyway, so
	// its own files redirect nothing (the systemd unit's dynamic user owns
	// its state directory and what is in it, and root runs compact there).
	if d, err := os.Stat(filepath.Dir(path)); err == nil {
		if ds, ok := d.Sys().(*syscall.Stat_t); ok && int64(ds.Uid) == uid {
			return nil
		}
	}
	who := strconv.FormatInt(uid, 10)
	if u, err := user.LookupId(who); err == nil {
		who = u.Username + " (uid " + who + ")"
	} else {
		who = "uid " + who
	}
	return fmt.Errorf("%s %w: it is owned by %s, not by root, the daemon's user or the directory's owner", path, ErrForeign, who)
}

// OpenFile is os.OpenFile that never follows a symbolic link in the last
// component and, as root, refuses a file another user owns (checked on the
// opened file, so nothing can be swapped in between).
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s %w", path, ErrSymlink)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		err = checkInfo(path, st)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// WriteFile replaces path with data, whole: it writes a new file of mode
// perm beside it, syncs it and renames it over path, so a reader never
// sees half a file and a link at path is replaced rather than followed.
// A link or another user's file at path is refused all the same: neither
// is what the caller meant to overwrite.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	if err := Check(path); err != nil {
		return err
	}
	// A device or a pipe (/dev/stdout, say) would be replaced, not written.
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file; refusing to replace it", path)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp") // O_EXCL: a fresh name nobody planted
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

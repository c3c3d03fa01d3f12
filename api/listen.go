package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Listen creates the API's unix socket at path: mode 0600, or 0660 with
// its group set to group when group is not "". With a group, the socket's
// directory must let the group through: a directory the daemon made
// (group root or the daemon's own, not searchable by the group) gets the
// group and g+x, so that members can reach the socket without being able
// to list or read anything else there; a directory the group cannot pass
// and that is not the daemon's to change is an error saying what to do.
// An existing file at path is
// replaced only when it is a socket nobody answers on (left by a daemon that
// died); anything else there is refused and left untouched. Closing the
// listener removes the socket file.
func Listen(path, group string) (net.Listener, error) {
	gid, mode := -1, os.FileMode(0o600)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if g, err = user.LookupGroupId(group); err != nil {
				return nil, fmt.Errorf("socket group %q: no such group", group)
			}
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("socket group %q: gid %q: %w", group, g.Gid, err)
		}
		mode = 0o660
	}
	// sun_path holds 108 bytes with the terminating NUL.
	if len(path) > 107 {
		return nil, fmt.Errorf("api socket %s: path longer than 107 bytes; choose a shorter socket path", path)
	}
	if gid >= 0 {
		if err := groupCanReach(filepath.Dir(path), group, gid); err != nil {
			return nil, err
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// The umask makes the socket private from its first instant; the chmod
	// below then sets the mode asked for. This runs at start-up, before any
	// other goroutine creates files.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("api socket: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("api socket: %w", err)
	}
	return l, nil
}

// removeStale removes a socket file that nobody listens on.
func removeStale(path string) error {
	stale, err := checkSocketPath(path)
	if err != nil || !stale {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api socket: remove stale socket: %w", err)
	}
	return nil
}

// checkSocketPath fails when path holds anything but a socket nobody
// listens on; stale says there is such a socket, which may be removed.
func checkSocketPath(path string) (stale bool, err error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("api socket: %w", err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return false, fmt.Errorf("api socket %s: the path exists and is not a socket; it was left alone: move it away or choose another socket path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return false, fmt.Errorf("api socket %s: another process is listening there (is dstwatch already running?); stop it, or choose another socket path (or run without the API socket)", path)
	}
	return true, nil
}

// CheckListen reports the reasons Listen(path, group) would fail that can
// be known without creating or removing anything: no such group, a path
// too long, a file there that is not a socket, or a process listening on
// it. The daemon asks before it creates its files, so that a start bound
// to fail leaves nothing behind.
func CheckListen(path, group string) error {
	if group != "" {
		if _, err := user.LookupGroup(group); err != nil {
			if _, err = user.LookupGroupId(group); err != nil {
				return fmt.Errorf("socket group %q: no such group", group)
			}
		}
	}
	if len(path) > 107 {
		return fmt.Errorf("api socket %s: path longer than 107 bytes; choose a shorter socket path", path)
	}
	_, err := checkSocketPath(path)
	return err
}

// groupCanReach makes dir searchable by gid where that is the daemon's to
// do (see Listen), and checks that every directory above it is.
func groupCanReach(dir, group string, gid int) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	if !searchable(st, gid) {
		sys := st.Sys().(*syscall.Stat_t)
		mine := sys.Uid == 0 || int(sys.Uid) == os.Geteuid()
		plainGroup := sys.Gid == 0 || int(sys.Gid) == os.Getegid()
		if !mine || !plainGroup {
			return fmt.Errorf("api socket: group %s cannot reach %s (mode %v, uid %d, gid %d): chgrp %s %s && chmod g+x %s, or choose a socket path in a directory the group may pass", group, dir, st.Mode().Perm(), sys.Uid, sys.Gid, group, dir, dir)
		}
		if err := os.Chown(dir, -1, gid); err != nil {
			return fmt.Errorf("api socket: let group %s reach %s: %w", group, dir, err)
		}
		if err := os.Chmod(dir, st.Mode().Perm()|0o010); err != nil {
			return fmt.Errorf("api socket: let group %s reach %s: %w", group, dir, err)
		}
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("api socket: %w", err)
		}
		if !searchable(st, gid) {
			return fmt.Errorf("api socket: group %s cannot pass %s (mode %v), above the socket's directory: choose a socket path elsewhere (under systemd: /run/dstwatch, the unit's RuntimeDirectory)", group, d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// searchable reports whether members of gid who are not its owner may
// pass through the directory st.
func searchable(st fs.FileInfo, gid int) bool {
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm()&0o001 != 0 {
		return true
	}
	return int(sys.Gid) == gid && st.Mode().Perm()&0o010 != 0
}

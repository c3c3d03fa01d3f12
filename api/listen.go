package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// Listen creates the API's unix socket at path: mode 0600, or 0660 with
// its group set to group when group is not "". An existing file at path is
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
		return nil, fmt.Errorf("api socket %s: path longer than 107 bytes; choose a shorter --socket", path)
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
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("api socket %s: the path exists and is not a socket; it was left alone: move it away or choose another --socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: another process is listening there (is dstwatch already running?); stop it, or choose another --socket (or --socket none)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api socket: remove stale socket: %w", err)
	}
	return nil
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
		return fmt.Errorf("api socket %s: path longer than 107 bytes; choose a shorter --socket", path)
	}
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("api socket %s: the path exists and is not a socket; it was left alone: move it away or choose another --socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: another process is listening there (is dstwatch already running?); stop it, or choose another --socket (or --socket none)", path)
	}
	return nil
}

package main

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// credential is the user --user switches to.
type credential struct{ uid, gid int }

func lookupUser(name string) (*credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--user %s: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--user %s: uid %q gid %q are not numbers", name, u.Uid, u.Gid)
	}
	return &credential{uid: uid, gid: gid}, nil
}

// apply drops root for good: supplementary groups, then the group, then
// the user (in that order, since only root may change groups). Go applies
// set*id to every thread of the process. The capture sockets, the database,
// the record log and the API socket stay open; what the daemon opens later
// (a rotated record log, reloaded GeoIP files) must be reachable by the user.
func (c *credential) apply() error {
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("drop privileges: setgroups: %w (run as root to use --user)", err)
	}
	if err := syscall.Setgid(c.gid); err != nil {
		return fmt.Errorf("drop privileges: setgid %d: %w", c.gid, err)
	}
	if err := syscall.Setuid(c.uid); err != nil {
		return fmt.Errorf("drop privileges: setuid %d: %w", c.uid, err)
	}
	if syscall.Setuid(0) == nil {
		return fmt.Errorf("drop privileges: could regain root after setuid %d", c.uid)
	}
	return nil
}

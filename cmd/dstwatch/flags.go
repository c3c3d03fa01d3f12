package main

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/dstwatch/dstwatch/query"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/internal/units"
)

// listFlag is a repeatable flag that also splits on commas:
// "-i eth0 -i eth1" and "-i eth0,eth1" mean the same.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseAddrs parses host addresses (no prefixes).
func parseAddrs(flagName string, list []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range list {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: not an IPv4 or IPv6 address", errUsage, flagName, s)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

func parsePrefixes(flagName string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := query.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: not an address or CIDR prefix", errUsage, flagName, s)
		}
		out = append(out, p)
	}
	return out, nil
}

// readPrefixFile reads one address or prefix per line; '#' starts a comment.
func readPrefixFile(path string) ([]netip.Prefix, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("exclude file: %w", err)
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		p, err := query.ParsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %q is not an address or CIDR prefix", path, n, line)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("exclude file %s: %w", path, err)
	}
	return out, nil
}

// parseSpan parses a duration that may also be given in days or weeks
// ("30d", "2w"), since retention is thought of in days.
func parseSpan(flagName, s string) (time.Duration, error) {
	d, err := units.ParseDuration(s, maxSpan)
	switch {
	case errors.Is(err, units.ErrTooLong):
		return 0, fmt.Errorf("%w: %s %q: %w (at most %dd)", errUsage, flagName, s, errTooLong, maxSpan/(24*time.Hour))
	case err != nil:
		return 0, fmt.Errorf("%w: %s %q: not a duration (examples: 20s, 5m, 12h, 30d, 2w)", errUsage, flagName, s)
	}
	return d, nil
}

// errTooLong marks a span over maxSpan, for flags with a tighter bound.
var errTooLong = errors.New("too long")

// maxSpan bounds every span flag: a hundred years is "keep all" in
// practice, and far from where a Duration overflows.
const maxSpan = 36500 * 24 * time.Hour

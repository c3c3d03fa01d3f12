// Command pcapgen writes a deterministic mixed capture (pcapgen.Mixed) for
// dstwatch's benchmark and manual replay tests. It streams packets, so
// multi-million-frame files need little memory. Silent on success.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/internal/pcapgen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pcapgen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("pcapgen", flag.ContinueOnError)
	out := fs.String("o", "", "output `file` (required)")
	n := fs.Int("n", 100000, "number of frames")
	remotes := fs.Int("remotes", 1000, "distinct remote addresses")
	mix := fs.String("mix", "mixed", "mixed (pcapgen.MixedFunc), proxy (ProxyFunc: busy remotes and resolver traffic) or scan (ScanFunc: ports random per packet)")
	hostile := fs.Int("hostile", 0, "if `N` > 0: four frames in five are spoofed probes of random ports from N distinct sources (pcapgen.HostileFunc); the rest is the ordinary mix")
	local := fs.String("local", "198.51.100.1,2001:db8::1", "comma-separated local `addresses`")
	seed := fs.Int64("seed", 1, "random seed")
	format := fs.String("format", "pcap", "pcap (µs), pcapns or pcapng")
	link := fs.String("link", "ether", "ether, raw, sll or sll2")
	span := fs.Duration("span", 10*time.Minute, "time covered by the capture")
	// A fixed default start keeps two runs with the same flags byte-identical.
	start := fs.String("start", "2025-01-01T00:00:00Z", "first timestamp, RFC 3339")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: pcapgen -o FILE [flags]")
	}
	if *n < 0 || *span <= 0 {
		return fmt.Errorf("-n must be >= 0 and -span > 0")
	}
	formats := map[string]pcapgen.Format{"pcap": pcapgen.PcapMicro, "pcapns": pcapgen.PcapNano, "pcapng": pcapgen.PcapNG}
	f, ok := formats[*format]
	if !ok {
		return fmt.Errorf("unknown -format %q", *format)
	}
	links := map[string]uint16{"ether": pcapgen.LinkEthernet, "raw": pcapgen.LinkRaw, "sll": pcapgen.LinkLinuxSLL, "sll2": pcapgen.LinkLinuxSLL2}
	l, ok := links[*link]
	if !ok {
		return fmt.Errorf("unknown -link %q", *link)
	}
	var locals []netip.Addr
	for _, s := range strings.Split(*local, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("-local: %w", err)
		}
		locals = append(locals, a)
	}
	t0, err := time.Parse(time.RFC3339Nano, *start)
	if err != nil {
		return fmt.Errorf("-start: %w", err)
	}
	mixes := map[string]func(int64, int, int, []netip.Addr, time.Time, time.Duration, uint16) func(int) pcapgen.Packet{
		"mixed": pcapgen.MixedFunc, "proxy": pcapgen.ProxyFunc, "scan": pcapgen.ScanFunc,
	}
	mixFunc, ok := mixes[*mix]
	if !ok {
		return fmt.Errorf("unknown -mix %q", *mix)
	}
	next := mixFunc(*seed, *n, *remotes, locals, t0, *span, l)
	if *hostile > 0 {
		next = pcapgen.HostileFunc(*seed, *n, *remotes, *hostile, locals, t0, *span, l)
	}
	return pcapgen.WriteFunc(*out, f, l, *n, next)
}

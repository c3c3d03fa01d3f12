package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// Per-service queries (query --by service), and the two commands for
// monitoring agents: value (one number) and discover (Zabbix low-level
// discovery JSON).

// serviceFlags are --port, --proto and --side.
type svcFlags struct{ ports, protos, sides listFlag }

func addServiceFilterFlags(fs *flag.FlagSet) *svcFlags {
	f := &svcFlags{}
	fs.Var(&f.ports, "port", "only the service on this `port` (0: ICMP, other protocols, fragments); repeatable")
	fs.Var(&f.protos, "proto", "only services of this `protocol`: tcp, udp, icmp or other; repeatable")
	fs.Var(&f.sides, "side", "only services on this `side`: in (this host's), out (used by this host), scan (probes of closed ports) or none; repeatable")
	return f
}

func (f *svcFlags) given() bool { return len(f.ports)+len(f.protos)+len(f.sides) > 0 }

func (f *svcFlags) filter(base query.Filter) (query.ServiceFilter, error) {
	sf := query.ServiceFilter{Filter: base}
	for _, s := range f.ports {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return sf, fmt.Errorf("%w: --port %q: want a port number from 0 to 65535", errUsage, s)
		}
		sf.Ports = append(sf.Ports, uint16(n))
	}
	for _, s := range f.protos {
		p, err := window.ParseProto(s)
		if err != nil {
			return sf, fmt.Errorf("%w: --proto %q: want tcp, udp, icmp or other", errUsage, s)
		}
		sf.Protos = append(sf.Protos, p)
	}
	for _, s := range f.sides {
		sd, err := query.ParseSide(s)
		if err != nil {
			return sf, fmt.Errorf("%w: --side %q: want in, out, scan or none", errUsage, s)
		}
		sf.Sides = append(sf.Sides, sd)
	}
	return sf, nil
}

// queryServices is query --by service.
func queryServices(ctx context.Context, stdout, stderr io.Writer, rd query.Reader, o queryOpts, sf *svcFlags) error {
	f, err := sf.filter(o.filter)
	if err != nil {
		return err
	}
	rows, sum, err := rd.Services(ctx, o.rng, query.ServiceQuestion{Filter: f, Sort: o.sort, Top: o.top})
	if err != nil {
		return err
	}
	return writeServices(stdout, rows, sum, o, f, func() error { return noWindow(ctx, stdout, rd, o) })
}

// writeServices prints a --by service answer; none says that the range
// held no window. The fleet's answers (fleet.go) print here too.
func writeServices(stdout io.Writer, rows []query.ServiceRow, sum query.Summary, o queryOpts, f query.ServiceFilter, none func() error) error {
	switch o.format {
	case "json":
		out := make([]query.ServiceJSON, 0, len(rows))
		for _, r := range rows {
			if r.Remotes == query.OtherService {
				out = append(out, query.ServiceJSON{Service: query.OtherKey, CountsJSON: query.ToCounts(r.Counts)})
				continue
			}
			out = append(out, query.ToServiceJSON(r))
		}
		return encodeJSON(stdout, out)
	case "csv":
		cw := csv.NewWriter(stdout)
		cw.Write([]string{"service", "proto", "port", "side", "remotes", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes"})
		for _, r := range rows {
			rec := []string{query.OtherKey, "", "", "", ""}
			if r.Remotes != query.OtherService {
				rec = []string{r.Name(), r.Key.Proto().String(), strconv.Itoa(int(r.Key.Port())), r.Key.Side().String(), strconv.Itoa(r.Remotes)}
			}
			cw.Write(append(rec, u(r.TxPackets), u(r.TxBytes), u(r.RxPackets), u(r.RxBytes)))
		}
		cw.Flush()
		return cw.Error()
	case "pipe":
		// The seed script's own line format, exact bytes: SERVICE|TX|RX.
		for _, r := range rows {
			fmt.Fprintf(stdout, "%s|%d|%d\n", pipeName(r), r.TxBytes, r.RxBytes)
		}
		return nil
	}
	if sum.Units() == 0 {
		return none()
	}
	var total window.Counts
	for _, r := range rows {
		total.Add(r.Counts)
	}
	writeHeader(stdout, sum, o)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SERVICE\tSIDE\tREMOTES\tTX BYTES\tTX PKTS\tRX BYTES\tRX PKTS\tSHARE\t")
	for _, r := range rows {
		name, side, rem := r.Name(), r.Key.Side().String(), strconv.Itoa(r.Remotes)
		if r.Remotes == query.OtherService {
			name, side, rem = query.OtherKey, "", ""
		}
		if side == "" {
			side = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, side, rem, units.Bytes(r.TxBytes), units.Count(r.TxPackets),
			units.Bytes(r.RxBytes), units.Count(r.RxPackets), pct(o.weight(r.Counts), o.weight(total)))
	}
	fmt.Fprintln(tw, totalsLine("total\t\t\t", total)+"\t")
	tw.Flush()
	if f.SelectsRemotes() {
		fmt.Fprintln(stdout, "note: with --remote, --country or --asn only the remotes a service kept rows for (the heaviest --service-top of each window) are counted")
	}
	return writeQualityNotes(stdout, sum, o)
}

// pipeName is a service for --format pipe: 443/tcp/out, 0/icmp.
func pipeName(r query.ServiceRow) string {
	if r.Remotes == query.OtherService {
		return query.OtherKey
	}
	if s := r.Key.Side().String(); s != "" {
		return r.Name() + "/" + s
	}
	return r.Name()
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

func noWindow(ctx context.Context, stdout io.Writer, rd query.Reader, o queryOpts) error {
	u, err := rd.Usage(ctx)
	if err != nil {
		return err
	}
	raw := u[window.Raw]
	first, lastW, n := raw.First, raw.Last, raw.Units
	if o.rng.Last > 0 {
		fmt.Fprint(stdout, "no stored window")
	} else {
		fmt.Fprintf(stdout, "no stored window from %s to %s", fmtTime(o.rng.From, o.loc), fmtTime(o.rng.To, o.loc))
	}
	if n > 0 {
		fmt.Fprintf(stdout, "; the database holds %d windows, the first starting %s, the last %s\n", n, fmtTime(first, o.loc), fmtTime(lastW, o.loc))
	} else {
		fmt.Fprintln(stdout, "; the database holds no windows yet")
	}
	return nil
}

// rangeFlags are --from, --to and --last for value and discover.
type rangeFlags struct {
	from, to *string
	last     *int
}

func addRangeFlags(fs *flag.FlagSet, from string) *rangeFlags {
	return &rangeFlags{
		from: fs.String("from", from, "start of the range, inclusive: a `time` as for query"),
		to:   fs.String("to", "now", "end of the range, exclusive: a `time`"),
		last: fs.Int("last", 0, "the `N` newest windows instead of --from/--to"),
	}
}

func (f *rangeFlags) parse(given map[string]bool) (query.Range, error) {
	var r query.Range
	var err error
	switch {
	case given["last"] && (given["from"] || given["to"]):
		return r, fmt.Errorf("%w: --last excludes --from and --to", errUsage)
	case given["last"] && (*f.last < 1 || *f.last > api.MaxLast):
		return r, fmt.Errorf("%w: --last %d: want 1 to %d windows", errUsage, *f.last, api.MaxLast)
	case given["last"]:
		r.Last = *f.last
		return r, nil
	}
	now := time.Now()
	if r.From, err = parseTime("--from", *f.from, now, time.Local); err != nil {
		return r, err
	}
	if r.To, err = parseTime("--to", *f.to, now, time.Local); err != nil {
		return r, err
	}
	if !r.To.After(r.From) {
		return r, fmt.Errorf("%w: --to must be after --from", errUsage)
	}
	// A range wider than api.MaxRange is narrowed to what is stored once
	// the reader is open (fitRange).
	return r, nil
}

const valueHelp = `Usage: dstwatch value METRIC [flags]

Prints exactly one number, an exact integer, and nothing else: for
monitoring agents (Zabbix UserParameter, Nagios, cron). METRIC is one of
tx_bytes, rx_bytes, tx_packets, rx_packets, remotes, drops, over the last N
windows (--last) or a range (--from, --to; default the last 5 minutes).
When it cannot answer (no stored window in the range, no database, a bad
flag) it prints nothing on stdout, one line on stderr, and exits non-zero.

With --port, --proto or --side the number is the matching services' (from
the services section of each window); remotes is then the largest count of
one matching service (a lower bound on distinct remotes). Without them it
is all traffic, and remotes counts distinct addresses (remotes folded by
--max-remotes not included). drops is the kernel's drops in the range,
whatever the filters.

Examples:
  dstwatch value tx_bytes --last 3 --port 443 --proto tcp --side out
  dstwatch value rx_packets --from -10m --port 8080 --side in
  dstwatch value remotes --last 1 --country NL
  dstwatch value drops --from -1h
`

var valueMetrics = []string{"tx_bytes", "rx_bytes", "tx_packets", "rx_packets", "remotes", "drops"}

func cmdValue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("value", valueHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	rf := addRangeFlags(fs, "-5m")
	var remotes, countries, asns listFlag
	fs.Var(&remotes, "remote", "only remotes within this `address or CIDR prefix`; repeatable")
	fs.Var(&countries, "country", "only remotes in this `country`; repeatable")
	fs.Var(&asns, "asn", "only remotes in this `AS number`; repeatable")
	sf := addServiceFilterFlags(fs)
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		if err := parse(fs, args); err != nil {
			return err
		}
		return fmt.Errorf("%w: want a METRIC: one of %v", errUsage, valueMetrics)
	}
	metric := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	known := false
	for _, m := range valueMetrics {
		known = known || m == metric
	}
	if !known {
		return fmt.Errorf("%w: metric %q: want one of %v", errUsage, metric, valueMetrics)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	rng, err := rf.parse(given)
	if err != nil {
		return err
	}
	base, err := parseFilter(remotes, countries, asns, "both")
	if err != nil {
		return err
	}
	f, err := sf.filter(base)
	if err != nil {
		return err
	}
	rd, _, done, err := openReader(ctx, *db, *socket, given["db"])
	if err != nil {
		return err
	}
	defer done()
	if _, err := fitRange(ctx, rd, &rng); err != nil {
		return err
	}

	var c window.Counts
	var sum query.Summary
	remotesN := 0
	if sf.given() {
		rows, s, err := rd.Services(ctx, rng, query.ServiceQuestion{Filter: f})
		if err != nil {
			return err
		}
		sum = s
		for _, r := range rows {
			c.Add(r.Counts)
			remotesN = max(remotesN, r.Remotes)
		}
	} else {
		rows, s, err := aggregate(ctx, rd, queryOpts{by: query.ByRemote, filter: base, sort: query.SortBytes, rng: rng})
		if err != nil {
			return err
		}
		sum = s
		for _, r := range rows {
			c.Add(r.Counts)
			if !r.IsOther() {
				remotesN++
			}
		}
	}
	if sum.Units() == 0 {
		return errors.New("no stored window in the range")
	}
	var n uint64
	switch metric {
	case "tx_bytes":
		n = c.TxBytes
	case "rx_bytes":
		n = c.RxBytes
	case "tx_packets":
		n = c.TxPackets
	case "rx_packets":
		n = c.RxPackets
	case "remotes":
		n = uint64(remotesN)
	case "drops":
		n = sum.Stats.Drops
	}
	fmt.Fprintln(stdout, n)
	return nil
}

const discoverHelp = `Usage: dstwatch discover services|countries [flags]

Prints Zabbix low-level discovery JSON for what was seen in a recent range
(default the last hour): for services
  {"data":[{"{#SERVICE}":"443/tcp","{#PROTO}":"tcp","{#PORT}":"443","{#SIDE}":"out"},...]}
and for countries
  {"data":[{"{#COUNTRY}":"NL"},...]}   ("--" is unknown)
heaviest first. --port, --proto and --side narrow the services.

Examples:
  dstwatch discover services --side in
  dstwatch discover countries --from -1d
`

func cmdDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("discover", discoverHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	rf := addRangeFlags(fs, "-1h")
	sf := addServiceFilterFlags(fs)
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		if err := parse(fs, args); err != nil {
			return err
		}
		return fmt.Errorf("%w: want what to discover: services or countries", errUsage)
	}
	what := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if what != "services" && what != "countries" {
		return fmt.Errorf("%w: discover %q: want services or countries", errUsage, what)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	rng, err := rf.parse(given)
	if err != nil {
		return err
	}
	f, err := sf.filter(query.Filter{})
	if err != nil {
		return err
	}
	if what == "countries" && sf.given() {
		return fmt.Errorf("%w: --port, --proto and --side are for discover services", errUsage)
	}
	rd, _, done, err := openReader(ctx, *db, *socket, given["db"])
	if err != nil {
		return err
	}
	defer done()
	if _, err := fitRange(ctx, rd, &rng); err != nil {
		return err
	}
	data := []map[string]string{}
	if what == "services" {
		rows, _, err := rd.Services(ctx, rng, query.ServiceQuestion{Filter: f})
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Key.Side() == window.SideScan && !given["side"] {
				continue // probes of closed ports: one bucket, not a service to monitor
			}
			data = append(data, map[string]string{"{#SERVICE}": r.Name(), "{#PROTO}": r.Key.Proto().String(),
				"{#PORT}": strconv.Itoa(int(r.Key.Port())), "{#SIDE}": r.Key.Side().String()})
		}
	} else {
		rows, _, err := aggregate(ctx, rd, queryOpts{by: query.ByCountry, sort: query.SortBytes, rng: rng})
		if err != nil {
			return err
		}
		for _, r := range rows {
			if !r.IsOther() {
				data = append(data, map[string]string{"{#COUNTRY}": cc(r.Country)})
			}
		}
	}
	return encodeJSONCompact(stdout, map[string]any{"data": data})
}

func encodeJSONCompact(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

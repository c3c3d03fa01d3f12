package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/rdns"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

const queryHelp = `Usage: dstwatch query [flags]

Answers questions over the stored windows: per window, or added up over the
range per remote, country or AS. Tables are for people (local time unless
--utc, human units, each row's share of the total); json and csv carry exact
integers and UTC RFC 3339 times.

While the daemon runs, query asks it over its socket (the database is locked
while the daemon has it open); otherwise it reads the database itself. The
answer is the same either way.

Times (--from, --to) are RFC 3339 (2026-11-22T14:00:00+01:00), a date
(2026-11-22, local midnight), a local date and time (2026-11-22 14:00), a
time of day (07:15, today), relative to now (-1h, now-1h, -30m, -2d, +1h),
Unix seconds (@1790000000), or now, today, yesterday; local means UTC with
--utc. A window belongs to the range when its start does. A range wider
than the stored history is answered over what is stored. --by remote, country and asn read
a range from the hourly and daily rollups where they are exact, raw windows
at its edges; where raw windows were pruned (--retention of run) an edge is
rounded to the hour or day, and the answer says so.

--by hour, day, week and month are totals per period of local time (UTC
with --utc), oldest first, weeks from Monday: the range is widened to whole
periods, and each period is read from the rollups on its own, so its
numbers are exact. REMOTES is its distinct remotes, ">=N" where remotes
folded by a cap have no address to count. --by prefix adds remotes up per
network: /24 for IPv4 and /48 for IPv6 unless --prefix4 and --prefix6 say.

Filters: --remote, --country and --asn keep the remotes that match (any
value of one flag, all flags given); remotes the daemon folded into 'other'
(--max-remotes) match none of them. --direction tx keeps only what was sent
(received counts read as zero), rx only what was received.

Examples:
  dstwatch query                                   # last hour, per remote
  dstwatch query --by country --from today
  dstwatch query --from "2026-11-22 14:00" --to "2026-11-22 14:10" --by window
  dstwatch query --last 3 --by window --format json
  dstwatch query --remote 203.0.113.0/24 --direction tx --sort packets
  dstwatch query --by asn --top 10 --from yesterday --to today --format csv
  dstwatch query --by day --from -7d                 # a week, day by day
  dstwatch query --by month --from 2020-01-01        # every month stored
  dstwatch query --by prefix --prefix4 16 --from today
  dstwatch query --by service --port 443 --proto tcp   # per service (docs/services.md)
  dstwatch query --clickhouse clickhouse://ch1:9000/dstwatch --by host   # the fleet (docs/fleet.md)
`

type queryOpts struct {
	by     query.By
	sort   query.Sort
	format string
	top    int
	utc    bool
	loc    *time.Location // for tables: time.Local, or UTC with --utc
	filter query.Filter
	rng    query.Range

	prefix4, prefix6 int            // --by prefix: the networks' lengths
	names            *rdns.Resolver // --names: reverse-DNS names in the remote table; nil: none
}

func cmdQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("query", queryHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	from := fs.String("from", "-1h", "start of the range, inclusive: a `time` (see above)")
	to := fs.String("to", "now", "end of the range, exclusive: a `time`")
	last := fs.Int("last", 0, "the `N` newest windows instead of --from/--to")
	by := fs.String("by", "remote", "group by: window, remote, country, asn, prefix, service, or totals per hour, day, week or month (or host with --clickhouse)")
	sortBy := fs.String("sort", "bytes", "order rows by: bytes or packets (both ways added)")
	var o queryOpts
	fs.IntVar(&o.top, "top", -1, "show the `N` heaviest rows and sum the rest as 'other' (remotes within each window for --by window); 0: all (default: 25 in tables, all in json and csv)")
	fs.StringVar(&o.format, "format", "table", "output: table, json or csv (and pipe with --by service)")
	fs.BoolVar(&o.utc, "utc", false, "show times in UTC instead of local time (tables), and take periods and times of day in UTC")
	fs.IntVar(&o.prefix4, "prefix4", query.DefaultPrefix4, "--by prefix: the IPv4 networks' prefix `length`")
	fs.IntVar(&o.prefix6, "prefix6", query.DefaultPrefix6, "--by prefix: the IPv6 networks' prefix `length`")
	var remotes, countries, asns listFlag
	fs.Var(&remotes, "remote", "only remotes within this `address or CIDR prefix`; repeatable")
	fs.Var(&countries, "country", "only remotes in this `country` (ISO code, -- for unknown); repeatable")
	fs.Var(&asns, "asn", "only remotes in this `AS number` (0 for unknown); repeatable")
	direction := fs.String("direction", "both", "count tx (sent), rx (received) or both")
	svc := addServiceFilterFlags(fs) // value.go
	fq := addQueryFleetFlags(fs)     // fleet.go
	names := fs.Bool("names", false, "show each remote's reverse-DNS name (table, --by remote; looked up now, never stored)")
	dnsServer := fs.String("dns-server", "", "ask this DNS server (`host:port`) for --names (default: the system's resolver)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := fq.check(); err != nil {
		return err
	}
	if *names {
		o.names = rdns.New(rdns.Config{Server: *dnsServer})
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	if o.by, err = fq.parseBy(*by); err != nil {
		return fmt.Errorf("%w: --by %q: want window, remote, country, asn, prefix, service, hour, day, week or month (or host with --clickhouse)", errUsage, *by)
	}
	if err := checkGrouping(o, given); err != nil { // group.go
		return err
	}
	if o.sort, err = query.ParseSort(*sortBy); err != nil {
		return fmt.Errorf("%w: --sort %q: want bytes or packets", errUsage, *sortBy)
	}
	switch o.format {
	case "table", "json", "csv":
	case "pipe":
		if o.by != query.ByService {
			return fmt.Errorf("%w: --format pipe is for --by service", errUsage)
		}
	default:
		return fmt.Errorf("%w: --format %q: want table, json or csv (or pipe with --by service)", errUsage, o.format)
	}
	if svc.given() && o.by != query.ByService {
		return fmt.Errorf("%w: --port, --proto and --side need --by service", errUsage)
	}
	// -1 is the default's marker ("as fits the format"), not a value to give.
	if o.top < -1 || given["top"] && o.top < 0 {
		return fmt.Errorf("%w: --top must not be negative", errUsage)
	}
	if o.top == -1 {
		o.top = 0
		if o.format == "table" && !o.by.IsPeriod() {
			o.top = 25
		}
	}
	if o.filter, err = parseFilter(remotes, countries, asns, *direction); err != nil {
		return err
	}
	o.loc = time.Local
	if o.utc {
		o.loc = time.UTC
	}
	now := time.Now()
	switch {
	case given["last"] && (given["from"] || given["to"]):
		return fmt.Errorf("%w: --last excludes --from and --to", errUsage)
	case given["last"] && (*last < 1 || *last > api.MaxLast):
		return fmt.Errorf("%w: --last %d: want 1 to %d windows", errUsage, *last, api.MaxLast)
	case given["last"]:
		o.rng.Last = *last
	default:
		if o.rng.From, err = parseTime("--from", *from, now, o.loc); err != nil {
			return err
		}
		if o.rng.To, err = parseTime("--to", *to, now, o.loc); err != nil {
			return err
		}
		if !o.rng.To.After(o.rng.From) {
			return fmt.Errorf("%w: --to must be after --from", errUsage)
		}
	}

	if fq.given() {
		return queryFleet(ctx, stdout, stderr, fq, o, svc) // fleet.go
	}
	rd, _, done, err := openReader(ctx, *db, *socket, given["db"])
	if err != nil {
		return err
	}
	defer done()
	asked, err := fitRange(ctx, rd, &o.rng) // times.go
	if err != nil {
		return err
	}
	if o.by == query.ByService {
		return queryServices(ctx, stdout, stderr, rd, o, svc)
	}
	var (
		ws    []*window.Window
		rows  []query.Row
		sum   query.Summary
		empty bool
	)
	if o.by == query.ByWindow {
		err = rd.Windows(ctx, o.rng, func(w *window.Window) error {
			ws = append(ws, w)
			return nil
		})
		empty = len(ws) == 0
	} else {
		rows, sum, err = aggregate(ctx, rd, o)
		empty = sum.Units() == 0
	}
	if err != nil {
		return err
	}
	if empty && o.format == "table" {
		o.rng = asked
		return noWindow(ctx, stdout, rd, o)
	}
	if o.by == query.ByWindow {
		return writeQuery(stdout, ws, o)
	}
	return writeAnswer(stdout, stderr, rows, sum, o)
}

// parseFilter reads the filter flags.
func parseFilter(remotes, countries, asns []string, direction string) (query.Filter, error) {
	var f query.Filter
	for _, s := range remotes {
		p, err := query.ParsePrefix(s)
		if err != nil {
			return f, fmt.Errorf("%w: --remote %q: not an address or CIDR prefix", errUsage, s)
		}
		f.Remotes = append(f.Remotes, p)
	}
	for _, s := range countries {
		if len(s) != 2 {
			return f, fmt.Errorf("%w: --country %q: want a two-letter code such as NL, or -- for unknown", errUsage, s)
		}
		f.Countries = append(f.Countries, strings.ToUpper(s))
	}
	for _, s := range asns {
		n, err := query.ParseASN(s)
		if err != nil {
			return f, fmt.Errorf("%w: --asn %q: not an AS number", errUsage, s)
		}
		f.ASNs = append(f.ASNs, n)
	}
	var err error
	if f.Direction, err = query.ParseDirection(direction); err != nil {
		return f, fmt.Errorf("%w: --direction %q: want tx, rx or both", errUsage, direction)
	}
	return f, nil
}

// errNotRunning makes the CLI exit 3: the command needs a running daemon.
var errNotRunning = errors.New("not running")

// socketFor picks the socket: the one given, else the one beside the DB.
func socketFor(socket, db string) string {
	if socket != "" {
		return socket
	}
	// The default database and no socket beside it: the systemd unit's
	// daemon listens in /run/dstwatch, a root daemon beside
	// /var/lib/dstwatch/dstwatch.db; a --socket-group member (whose own
	// default database is in its home) finds either without flags. A
	// database named by --db is read from its own directory only.
	s := defaultSocket(db)
	if _, err := os.Lstat(s); err != nil && db == defaultDB() {
		for _, alt := range []string{runSocket, defaultSocket("/var/lib/dstwatch/dstwatch.db")} {
			if _, err := os.Lstat(alt); err == nil {
				return alt
			}
		}
	}
	return s
}

// dialDaemon returns a client and the daemon's status when one answers on
// the socket, or an error wrapping api.ErrNotRunning when none does.
func dialDaemon(ctx context.Context, socket string) (*api.Client, api.Status, error) {
	c := api.NewClient(socket)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.Status(sctx)
	return c, st, err
}

// openReader returns where the CLI reads: the daemon's API (live) when a
// daemon answers on the socket, else the DB opened read-only; done closes
// what was opened. When the DB was named, the daemon must be serving that
// very file: two databases in one directory share the default socket.
func openReader(ctx context.Context, db, socket string, dbGiven bool) (rd query.Reader, live bool, done func(), err error) {
	socket = socketFor(socket, db)
	c, st, err := dialDaemon(ctx, socket)
	if err == nil {
		if dbGiven && !sameFile(db, st.DB.Path) {
			c.Close()
			return nil, false, nil, fmt.Errorf("the daemon on %s serves %s, not %s; give the --socket of the daemon that owns %s", socket, st.DB.Path, db, db)
		}
		return c, true, c.Close, nil
	}
	if !errors.Is(err, api.ErrNotRunning) {
		return nil, false, nil, err
	}
	d, err := storage.Open(db, storage.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, storage.ErrLocked) {
		return nil, false, nil, fmt.Errorf("%w, and no daemon answers on %s: if dstwatch runs with another --socket, give it here", err, socket)
	}
	if err != nil {
		return nil, false, nil, err
	}
	return query.Local(d), false, func() { d.Close() }, nil
}

func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// question is what o asks of an aggregate.
func (o queryOpts) question() query.Question {
	return query.Question{By: o.by, Filter: o.filter, Sort: o.sort, Top: o.top, Loc: o.location(), Prefix4: o.prefix4, Prefix6: o.prefix6}
}

// aggregate adds up o's range as o asks: the daemon does it when rd is
// its API (with the same query.Answer), else this process reads the file.
// Either way a range is read from the rollup tiers where they are exact,
// so a month is a few hundred units, not 130,000 windows.
func aggregate(ctx context.Context, rd query.Reader, o queryOpts) ([]query.Row, query.Summary, error) {
	rows, sum, err := rd.Aggregate(ctx, o.rng, o.question())
	if errors.Is(err, api.ErrZoneName) {
		err = fmt.Errorf("%w: set TZ (such as TZ=Europe/Berlin) or give --utc", err)
	}
	return rows, sum, err
}

func (o queryOpts) location() *time.Location {
	if o.loc == nil {
		return time.Local
	}
	return o.loc
}

// recordLogFor is the record log beside the DB, as run places it.
func recordLogFor(db string) string { return filepath.Join(filepath.Dir(db), "records.log") }

func fmtTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// parseTime reads the time forms --from and --to accept; now and loc are
// parameters so that tests pin them (including across a DST change). loc
// is the zone the user's times are in: local, or UTC with --utc, so that
// "today" and "07:15" mean what the tables show.
func parseTime(flagName, s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	day := func(t time.Time) time.Time {
		y, m, d := t.In(loc).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
	switch s {
	case "now":
		return now, nil
	case "today":
		return day(now), nil
	case "yesterday":
		t := day(now)
		y, m, d := t.Date()
		return time.Date(y, m, d-1, 0, 0, 0, 0, loc), nil
	}
	// now-1h is -1h: both are elapsed time back from now.
	if rest, ok := strings.CutPrefix(s, "now"); ok && rest != "" && (rest[0] == '-' || rest[0] == '+') {
		s = rest
	}
	if s != "" && (s[0] == '-' || s[0] == '+') {
		d, err := parseSpan(flagName, s[1:])
		if err != nil {
			return time.Time{}, err
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	if n, ok := strings.CutPrefix(s, "@"); ok {
		// Unix seconds, as date +%s prints them; bounded to years 1970 to
		// 9999 so that no later arithmetic overflows.
		u, err := strconv.ParseInt(n, 10, 64)
		if err != nil || u < 0 || u > 253402300799 {
			return time.Time{}, fmt.Errorf("%w: %s %q: want @ and Unix seconds, such as @1790000000", errUsage, flagName, s)
		}
		return time.Unix(u, 0).In(loc), nil
	}
	// A time of day alone is today's (a time skipped by a DST change is
	// moved forward by the change, as time.Date does).
	for _, layout := range []string{"15:04", "15:04:05"} {
		if c, err := time.ParseInLocation(layout, s, loc); err == nil {
			y, m, d := now.In(loc).Date()
			return time.Date(y, m, d, c.Hour(), c.Minute(), c.Second(), 0, loc), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %s %q: not a time (examples: 2026-11-22T14:00:00Z, 2026-11-22, \"2026-11-22 14:00\", 07:15, -1h, now-30m, today, @1790000000)", errUsage, flagName, s)
}

func cc(c string) string {
	if c == "" {
		return "--"
	}
	return c
}

func pct(part, total uint64) string {
	if total == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(part)/float64(total), 'f', 1, 64) + "%"
}

// writeQualityNotes says under a table when its numbers are incomplete or
// coarser than asked.
func writeQualityNotes(w io.Writer, sum query.Summary, o queryOpts) error {
	s, f := sum.Stats, o.filter
	// Counts of units with drops or folds are counts of windows unless
	// rollups were read, which stand for many windows each.
	these := "these windows"
	if sum.Rollups() {
		these = "these windows and rollups"
	}
	if s.Drops > 0 {
		fmt.Fprintf(w, "note: the kernel dropped %d frames in %d of %s; the counts above miss them\n", s.Drops, sum.DropUnits, these)
	}
	if sum.PartialUnits > 0 {
		fmt.Fprintf(w, "note: %d of %s were watched for only part of their time (the daemon started or stopped inside them, or a capture was down); their counts are not quiet traffic\n", sum.PartialUnits, these)
	}
	in := fmt.Sprintf("%d windows", sum.FoldUnits)
	if sum.Rollups() {
		in = fmt.Sprintf("%d of %s", sum.FoldUnits, these)
	}
	switch {
	case s.Folded > 0 && f.SelectsRemotes():
		fmt.Fprintf(w, "note: %d remotes in %s were over --max-remotes and summed in 'other'; the filter cannot see them, so they are left out\n", s.Folded, in)
	case s.Folded > 0:
		fmt.Fprintf(w, "note: %d remotes in %s were over --max-remotes and are summed in 'other'\n", s.Folded, in)
	}
	if s.Overflow > 0 {
		fmt.Fprintf(w, "note: %d frames in %s came from new remotes when the open window was full (--max-open-remotes); they are summed in 'other', and the remote counts are lower bounds\n", s.Overflow, in)
	}
	switch {
	case sum.Capped > 0 && f.SelectsRemotes():
		fmt.Fprintf(w, "note: %d remote entries were over the rollups' caps (--hour-cap, --day-cap) and summed in 'other'; the filter cannot see them, so they are left out\n", sum.Capped)
	case sum.Capped > 0:
		fmt.Fprintf(w, "note: %d remote entries were over the rollups' caps (--hour-cap, --day-cap) and are summed in 'other'\n", sum.Capped)
	}
	if s.Late > 0 {
		fmt.Fprintf(w, "note: %d frames arrived after their window closed and were counted in the next one\n", s.Late)
	}
	if note := resolutionNote(sum, o.location()); note != "" {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	if note := damageNote(sum); note != "" {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/rdns"
	"github.com/dstwatch/dstwatch/report"
	"github.com/dstwatch/dstwatch/window"
)

const topHelp = `Usage: dstwatch top [flags]

A live view of where traffic goes: the last --windows stored windows added
up per remote, country, AS or service, each with its bytes each way over
them (what 'dstwatch query --last N [--by country|asn|service]' says), its
rates in the newest window in bits per second (as alert rules count them:
k, M, G are 1000s), a sparkline of its bytes per window (packets when sorted
by packets, which also adds a PKTS column) and its country (for the other
groupings: its number of remotes). A service is PORT/PROTO and its side, as
in "443/tcp out". New windows arrive from the daemon's stream as they are
stored. The view fits the terminal: 80 columns show every number whole, and
the sparkline shows as many of the newest windows as fit (its column says
how many). With --names each remote's reverse-DNS name shows beside its
address, looked up in the background (bounded, timed out, cached, never
stored).

Keys: r remotes, c countries, a ASes, v services (g cycles through them),
s sort by bytes or packets, d direction both, tx or rx, q quits.

When stdout is not a terminal, top prints plain lines instead (exact byte
and packet counts, rates in bit/s): the view now and after every new
window, or once with --once.

Examples:
  dstwatch top
  dstwatch top --by country --windows 90
  dstwatch top --by service
  dstwatch top --by asn
  dstwatch top --names
  dstwatch top --once > now.txt
`

type topView struct {
	by      query.By
	sort    query.Sort
	dir     query.Direction
	n       int // windows held
	rows    int // rows shown at most
	loc     *time.Location
	windows []*window.Window
	width   int
	height  int
	live    bool
	err     string
	// names (--names) gives remotes their reverse-DNS names: the terminal
	// view asks without waiting and redraws (named) when an answer is in;
	// plain lines wait for theirs. nil: no names.
	names *rdns.Resolver
	named func()
}

func (v *topView) add(w *window.Window) {
	if k := len(v.windows); k > 0 && !w.Start.After(v.windows[k-1].Start) {
		return // already held (the stream may repeat the fill's last)
	}
	v.windows = append(v.windows, w)
	if len(v.windows) > v.n {
		v.windows = v.windows[len(v.windows)-v.n:]
	}
}

// line is one row of the view.
type topLine struct {
	query.Row
	name, cc string
	// txBps and rxBps are the newest window's rates in bits per second;
	// rated is false where there is none (the other row, no window).
	txBps, rxBps float64
	rated        bool
	series       []uint64 // bytes (packets when sorted so) per window held
	host         string   // reverse-DNS name (--names); "" none or not yet
}

// topBys are the groupings g cycles through.
var topBys = []query.By{query.ByRemote, query.ByCountry, query.ByASN, query.ByService}

// bitRate is b bytes over d in bits per second.
func bitRate(b uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(b) * 8 / d.Seconds()
}

// topBits shows a rate in bit/s the way alert rules' values read, short
// enough for a narrow column: three significant digits, rounded, with
// decimal prefixes (1.50k, 52.4M, 999M, 1.00G).
func topBits(v float64) string {
	if v < 999.5 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	for _, p := range []struct {
		s string
		m float64
	}{{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}} {
		x := v / p.m
		switch {
		case x < 9.995:
			return strconv.FormatFloat(x, 'f', 2, 64) + p.s
		case x < 99.95:
			return strconv.FormatFloat(x, 'f', 1, 64) + p.s
		case x < 999.5 || p.s == "P":
			return strconv.FormatFloat(x, 'f', 0, 64) + p.s
		}
	}
	return "?"
}

func (v *topView) lines() ([]topLine, query.Summary) {
	if v.by == query.ByService {
		return v.serviceLines()
	}
	f := query.Filter{Direction: v.dir}
	rows, err := query.Aggregate(v.windows, v.by, f, v.sort)
	if err != nil {
		return nil, query.Summary{}
	}
	rows = query.Top(rows, v.rows)
	sum := query.Summarize(v.windows)
	// per-window series of each row's key
	key := func(r *window.Remote) string { return query.Key(v.by, r) }
	series := map[string][]uint64{}
	for i, w := range v.windows {
		fw := f.Apply(w)
		for j := range fw.Remotes {
			k := key(&fw.Remotes[j])
			s := series[k]
			if s == nil {
				s = make([]uint64, len(v.windows))
				series[k] = s
			}
			s[i] += v.weight(fw.Remotes[j].Counts.Bytes(), fw.Remotes[j].Counts.Packets())
		}
	}
	var newest *window.Window
	if len(v.windows) > 0 {
		newest = f.Apply(v.windows[len(v.windows)-1])
	}
	out := make([]topLine, 0, len(rows))
	for _, r := range rows {
		l := topLine{Row: r, name: report.RowName(r, v.by)}
		if v.by == query.ByASN && r.ASOrg != "" && !r.IsOther() {
			l.name += " " + r.ASOrg
		}
		if !r.IsOther() {
			l.cc = report.CC(r.Country)
			l.series = series[r.Key]
		}
		if v.names != nil && v.by == query.ByRemote && !r.IsOther() && v.named != nil {
			l.host, _ = v.names.Name(r.Addr, v.named)
		}
		if newest != nil && !r.IsOther() {
			var tx, rx uint64
			for j := range newest.Remotes {
				if key(&newest.Remotes[j]) == r.Key {
					tx += newest.Remotes[j].TxBytes
					rx += newest.Remotes[j].RxBytes
				}
			}
			l.txBps, l.rxBps, l.rated = bitRate(tx, newest.Length), bitRate(rx, newest.Length), true
		}
		out = append(out, l)
	}
	return out, sum
}

// serviceLines are lines() by service: query --by service's rows over the
// windows held.
func (v *topView) serviceLines() ([]topLine, query.Summary) {
	f := query.ServiceFilter{Filter: query.Filter{Direction: v.dir}}
	a := query.NewServiceAggregator(f)
	series := map[window.ServiceKey][]uint64{}
	for i, w := range v.windows {
		a.Add(w)
		for j := range w.Services {
			s := &w.Services[j]
			c := v.dir.Apply(s.Counts)
			if c.IsZero() {
				continue
			}
			k := series[s.Key]
			if k == nil {
				k = make([]uint64, len(v.windows))
				series[s.Key] = k
			}
			k[i] += v.weight(c.Bytes(), c.Packets())
		}
	}
	rows := query.TopServices(a.Rows(v.sort), v.rows)
	var newest *window.Window
	if len(v.windows) > 0 {
		newest = v.windows[len(v.windows)-1]
	}
	out := make([]topLine, 0, len(rows))
	for _, r := range rows {
		name := report.ServiceName(r)
		l := topLine{Row: query.Row{Key: name, Remotes: r.Remotes, Counts: r.Counts}, name: name}
		if r.Remotes == query.OtherService {
			l.Remotes = 0
			out = append(out, l)
			continue
		}
		l.cc = strconv.Itoa(r.Remotes)
		l.series = series[r.Key]
		if newest != nil {
			var c window.Counts
			for j := range newest.Services {
				if newest.Services[j].Key == r.Key {
					c.Add(v.dir.Apply(newest.Services[j].Counts))
				}
			}
			l.txBps, l.rxBps, l.rated = bitRate(c.TxBytes, newest.Length), bitRate(c.RxBytes, newest.Length), true
		}
		out = append(out, l)
	}
	return out, a.Summary()
}

// noServices says why a view by service is empty when no window held has
// per-service tallies; "" otherwise.
func (v *topView) noServices() string {
	if v.by != query.ByService || len(v.windows) == 0 {
		return ""
	}
	for _, w := range v.windows {
		if len(w.Services) > 0 {
			return ""
		}
	}
	return "no per-service tallies in these windows (stored before format 3, or sent by an older daemon)"
}

// second is the column after the name: the country code by remote, the
// number of remotes otherwise.
func (v *topView) second(l *topLine) string {
	switch {
	case v.by == query.ByCountry, v.by == query.ByASN && !l.IsOther():
		return fmt.Sprint(l.Remotes)
	}
	return l.cc
}

func (v *topView) columns() (string, string) {
	switch v.by {
	case query.ByCountry:
		return "COUNTRY", "REMOTES"
	case query.ByASN:
		return "AS", "REMOTES"
	case query.ByService:
		return "SERVICE", "REMOTES"
	}
	return "REMOTE", "CC"
}

// rates are l's rates as plain lines show them: whole bits per second.
func (l *topLine) rates() (string, string) {
	if !l.rated {
		return "-", "-"
	}
	return strconv.FormatFloat(math.Round(l.txBps), 'f', 0, 64), strconv.FormatFloat(math.Round(l.rxBps), 'f', 0, 64)
}

func (v *topView) weight(bytes, packets uint64) uint64 {
	if v.sort == query.SortPackets {
		return packets
	}
	return bytes
}

func (v *topView) header(sum query.Summary) string {
	if len(v.windows) == 0 {
		return "dstwatch top: no stored window yet"
	}
	return fmt.Sprintf("dstwatch top: %d windows from %s to %s, by %s, sort %s, direction %s",
		len(v.windows), fmtTime(sum.First, v.loc), fmtTime(sum.Last, v.loc), v.by, v.sort, v.dir)
}

// plain writes the view as plain lines with exact counts.
func (v *topView) plain(w io.Writer) error {
	lines, sum := v.lines()
	fmt.Fprintln(w, v.header(sum))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	name, second := v.columns()
	named := v.names != nil && v.by == query.ByRemote
	if named {
		var addrs []netip.Addr
		for i := range lines {
			if !lines[i].IsOther() {
				addrs = append(addrs, lines[i].Addr)
			}
		}
		hosts := v.names.Names(context.Background(), addrs)
		for i := range lines {
			lines[i].host = hosts[lines[i].Addr]
		}
		name += "\tNAME"
	}
	fmt.Fprintf(tw, "%s\t%s\tTX BYTES\tRX BYTES\tTX PKTS\tRX PKTS\tTX BIT/S\tRX BIT/S\n", name, second)
	for i := range lines {
		l := &lines[i]
		tx, rx := l.rates()
		n := l.name
		if named {
			host := l.host
			if host == "" && !l.IsOther() {
				host = "-"
			}
			n += "\t" + host
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", n, v.second(l), l.TxBytes, l.RxBytes, l.TxPackets, l.RxPackets, tx, rx)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if note := v.noServices(); note != "" {
		_, err := fmt.Fprintln(w, note)
		return err
	}
	return nil
}

var (
	topTitle = lipgloss.NewStyle().Bold(true)
	topHead  = lipgloss.NewStyle().Bold(true).Reverse(true)
	topTx    = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	topRx    = lipgloss.NewStyle().Foreground(lipgloss.Color("4"))
	topDim   = lipgloss.NewStyle().Faint(true)
)

// Update, View and Init make topView a bubbletea model.
func (v *topView) Init() tea.Cmd { return nil }

type topWindowMsg struct{ w *window.Window }

// topNamedMsg says a reverse-DNS answer came in: draw again.
type topNamedMsg struct{}
type topStateMsg struct {
	live bool
	err  string
}

func (v *topView) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch m := msg.(type) {
	case tea.KeyMsg:
		switch m.String() {
		case "q", "ctrl+c", "esc":
			return v, tea.Quit
		case "r":
			v.by = query.ByRemote
		case "c":
			v.by = query.ByCountry
		case "a":
			v.by = query.ByASN
		case "v":
			v.by = query.ByService
		case "g":
			v.by = topBys[(slices.Index(topBys, v.by)+1)%len(topBys)]
		case "s":
			if v.sort == query.SortBytes {
				v.sort = query.SortPackets
			} else {
				v.sort = query.SortBytes
			}
		case "d":
			v.dir = (v.dir + 1) % 3
		}
	case tea.WindowSizeMsg:
		v.width, v.height = m.Width, m.Height
	case topWindowMsg:
		v.add(m.w)
	case topStateMsg:
		v.live, v.err = m.live, m.err
	}
	return v, nil
}

// topMinSpark is the fewest windows the sparkline shows before the name
// column is cut to make room.
const topMinSpark = 8

func (v *topView) View() string {
	lines, sum := v.lines()
	width := v.width
	if width <= 0 {
		width = 80
	}
	var b strings.Builder
	// The title is two lines, so that what matters fits 80 columns.
	if len(v.windows) == 0 {
		b.WriteString(topTitle.Render(v.header(sum)) + "\n")
	} else {
		b.WriteString(topTitle.Render(fmt.Sprintf("dstwatch top: %d windows from %s to %s", len(v.windows), fmtTime(sum.First, v.loc), fmtTime(sum.Last, v.loc))) + "\n")
	}
	state := "live"
	if !v.live {
		state = "not live"
		if v.err != "" {
			state = v.err
		}
	}
	b.WriteString(fmt.Sprintf("by %s, sort %s, direction %s, rates in bit/s", v.by, v.sort, v.dir) + "\n")
	b.WriteString(topDim.Render(fmt.Sprintf("[%s]  keys: r remote c country a AS v service g next s sort d dir q quit", state)) + "\n")

	name, second := v.columns()
	pkts := v.sort == query.SortPackets
	secW := len(second)
	nameW := len(name)
	for i := range lines {
		if lines[i].host != "" {
			lines[i].name += " " + lines[i].host
		}
		secW = max(secW, len(v.second(&lines[i])))
		nameW = max(nameW, len([]rune(lines[i].name)))
	}
	// Everything but the name and the sparkline has a fixed width: bytes
	// (at most "1023 KiB"), packets ("999K"), rates ("99.9M").
	fixed := 1 + secW + 1 + 8 + 1 + 8 + 1 + 8 + 1 + 8 + 2
	if pkts {
		fixed += 1 + 6
	}
	wantSpark := min(v.n, max(len(v.windows), 1))
	if room := width - fixed - nameW; room < min(wantSpark, topMinSpark) {
		nameW = max(len(name), width-fixed-min(wantSpark, topMinSpark))
	}
	sparkW := min(max(width-fixed-nameW, 0), wantSpark)
	sparkHead := ""
	if sparkW > 0 {
		sparkHead = fmt.Sprintf("LAST %d", sparkW)
		if len(sparkHead) > sparkW {
			sparkHead = ""
		}
	}
	head := fmt.Sprintf("%-*s %-*s %8s %8s", nameW, name, secW, second, "TX", "RX")
	if pkts {
		head += fmt.Sprintf(" %6s", "PKTS")
	}
	head += fmt.Sprintf(" %8s %8s  %-*s", "TX bit/s", "RX bit/s", sparkW, sparkHead)
	b.WriteString(topHead.Render(head) + "\n")
	limit := len(lines)
	if v.height > 5 && limit > v.height-5 {
		limit = v.height - 5
	}
	if note := v.noServices(); note != "" {
		b.WriteString(topDim.Render(note) + "\n")
	}
	for i := range lines[:limit] {
		l := &lines[i]
		n := []rune(l.name)
		if len(n) > nameW {
			n = append(n[:max(nameW-1, 0)], '…')
		}
		fmt.Fprintf(&b, "%-*s %-*s %s %s", nameW, string(n), secW, v.second(l),
			topTx.Render(fmt.Sprintf("%8s", units.Bytes(l.TxBytes))), topRx.Render(fmt.Sprintf("%8s", units.Bytes(l.RxBytes))))
		if pkts {
			fmt.Fprintf(&b, " %6s", units.Count(l.Packets()))
		}
		tx, rx := "-", "-"
		if l.rated {
			tx, rx = topBits(l.txBps), topBits(l.rxBps)
		}
		spark := ""
		if s := l.series; sparkW > 0 && len(s) > 0 {
			spark = report.Sparkline(s[max(len(s)-sparkW, 0):])
		}
		fmt.Fprintf(&b, " %8s %8s  %s\n", tx, rx, spark)
	}
	out := b.String()
	// Cut lines to the terminal's width so a narrow window does not wrap.
	ls := strings.Split(out, "\n")
	for i, l := range ls {
		if lipgloss.Width(l) > width {
			ls[i] = lipgloss.NewStyle().MaxWidth(width).Render(l)
		}
	}
	return strings.Join(ls, "\n")
}

func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("top", topHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	n := fs.Int("windows", 30, "add up the newest `N` windows")
	by := fs.String("by", "remote", "group by remote, country, asn or service (keys switch)")
	rows := fs.Int("top", 20, "show the `N` heaviest rows and sum the rest as 'other'")
	utc := fs.Bool("utc", false, "show times in UTC")
	names := fs.Bool("names", false, "show each remote's reverse-DNS name (looked up in the background, never stored)")
	dnsServer := fs.String("dns-server", "", "ask this DNS server (`host:port`) for --names (default: the system's resolver)")
	once := fs.Bool("once", false, "print the view once as plain lines and exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	v := &topView{sort: query.SortBytes, n: *n, rows: *rows, loc: time.Local}
	if *names {
		v.names = rdns.New(rdns.Config{Server: *dnsServer})
	}
	if *utc {
		v.loc = time.UTC
	}
	switch *by {
	case "remote", "country", "asn", "service":
		v.by = query.By(*by)
	default:
		return fmt.Errorf("%w: --by %q: want remote, country, asn or service", errUsage, *by)
	}
	if *n < 1 || *n > 10000 || *rows < 1 {
		return fmt.Errorf("%w: --windows wants 1 to 10000, --top at least 1", errUsage)
	}
	// The file is opened, read and closed at once, never held while top
	// runs: a daemon started later must be able to lock it.
	rd, live, done, err := openReader(ctx, *db, *socket, false)
	if err != nil {
		return err
	}
	err = rd.Windows(ctx, query.Range{Last: *n}, func(w *window.Window) error {
		v.add(w)
		return nil
	})
	fromFile := !live
	done()
	if err != nil {
		return err
	}
	// The socket is looked for afresh on each try: a daemon started
	// later may listen elsewhere than none did (systemd's /run/dstwatch).
	client := func() *api.Client { return api.NewClient(socketFor(*socket, *db)) }
	f, isFile := stdout.(*os.File)
	tty := isFile && isatty.IsTerminal(f.Fd())
	if *once || (!tty && fromFile) {
		return v.plain(stdout)
	}
	if !tty {
		if err := v.plain(stdout); err != nil {
			return err
		}
		return followWindows(ctx, client, v.windowsEnd(), func(w *window.Window) error {
			v.add(w)
			fmt.Fprintln(stdout)
			return v.plain(stdout)
		}, nil)
	}
	v.live = !fromFile
	if fromFile {
		v.err = notLive("no daemon runs: these are the file's windows", time.Now(), v.loc)
	}
	p := tea.NewProgram(v, tea.WithContext(ctx), tea.WithAltScreen(), tea.WithOutput(stdout))
	v.named = func() { go p.Send(topNamedMsg{}) } // not from inside Update's call of lines
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go followWindows(sctx, client, v.windowsEnd(), func(w *window.Window) error {
		p.Send(topWindowMsg{w})
		return nil
	}, func(live bool, why string) {
		if live {
			p.Send(topStateMsg{live: true})
		} else {
			p.Send(topStateMsg{false, notLive(why, time.Now(), v.loc)})
		}
	})
	_, err = p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// notLive is the state line when no daemon stream feeds the view.
func notLive(why string, since time.Time, loc *time.Location) string {
	return fmt.Sprintf("not live since %s: %s; waiting for the daemon", since.In(loc).Format("15:04:05"), why)
}

func (v *topView) windowsEnd() time.Time {
	if len(v.windows) == 0 {
		return time.Time{}
	}
	return v.windows[len(v.windows)-1].Start
}

// followWindows is api.Follow for top: state (if not nil) hears when the
// stream is live and when it is not, and why; without it, an error other
// than "no daemon runs" ends the view.
func followWindows(ctx context.Context, client func() *api.Client, newest time.Time, fn func(*window.Window) error, state func(live bool, why string)) error {
	live, lastWhy := false, ""
	up := func() {
		if !live && state != nil {
			state(true, "")
		}
		live = true
	}
	broke := func(err error) error {
		why := "the daemon ended the stream"
		switch {
		case errors.Is(err, api.ErrNotRunning) && !live:
			why = "no daemon runs"
		case errors.Is(err, api.ErrNotRunning):
			why = "the daemon stopped"
		case err != nil && state == nil:
			return err
		case err != nil:
			why = err.Error()
		}
		// Said when the stream breaks, and when the reason it cannot be
		// had changes to something other than "no daemon (yet)".
		if (live || (!errors.Is(err, api.ErrNotRunning) && why != lastWhy)) && state != nil {
			state(false, why)
		}
		live, lastWhy = false, why
		return nil
	}
	return api.Follow(ctx, client, newest, fn, up, broke)
}

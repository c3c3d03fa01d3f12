package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/report"
	"github.com/dstwatch/dstwatch/storage"
)

const topHelp = `Usage: dstwatch top [flags]

A live view of where traffic goes: the last --windows stored windows added
up per remote or country, each with its bytes each way over them (what
'dstwatch query --last N' says), its rates in the newest window, a sparkline
of its bytes per window and its country. New windows arrive from the
daemon's stream as they are stored.

Keys: r remotes, c countries (g cycles), s sort by bytes or packets,
d direction both, tx or rx, q quits. Per-service rows are not in the
window stream; 'dstwatch query --by service' has them.

When stdout is not a terminal, top prints plain lines instead (exact byte
counts): the view now and after every new window, or once with --once.

Examples:
  dstwatch top
  dstwatch top --by country --windows 90
  dstwatch top --once > now.txt
`

type topView struct {
	by      query.By
	sort    query.Sort
	dir     query.Direction
	n       int // windows held
	rows    int // rows shown at most
	loc     *time.Location
	windows []*storage.Window
	width   int
	height  int
	live    bool
	err     string
}

func (v *topView) add(w *storage.Window) {
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
	rateTx   string
	rateRx   string
	spark    string
}

func (v *topView) lines() ([]topLine, query.Summary) {
	f := query.Filter{Direction: v.dir}
	rows, err := query.Aggregate(v.windows, v.by, f, v.sort)
	if err != nil {
		return nil, query.Summary{}
	}
	rows = query.Top(rows, v.rows)
	sum := query.Summarize(v.windows)
	// per-window series of each row's key
	key := func(r *storage.Remote) string {
		if v.by == query.ByCountry {
			return r.Country
		}
		return r.Addr.String()
	}
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
	var newest *storage.Window
	if len(v.windows) > 0 {
		newest = f.Apply(v.windows[len(v.windows)-1])
	}
	out := make([]topLine, 0, len(rows))
	for _, r := range rows {
		l := topLine{Row: r, name: report.RowName(r, v.by)}
		if !r.IsOther() {
			l.cc = report.CC(r.Country)
			l.spark = report.Sparkline(series[r.Key])
		}
		l.rateTx, l.rateRx = "-", "-"
		if newest != nil && !r.IsOther() {
			var tx, rx uint64
			for j := range newest.Remotes {
				if key(&newest.Remotes[j]) == r.Key {
					tx += newest.Remotes[j].TxBytes
					rx += newest.Remotes[j].RxBytes
				}
			}
			l.rateTx, l.rateRx = report.Rate(tx, newest.Length), report.Rate(rx, newest.Length)
		}
		out = append(out, l)
	}
	return out, sum
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
	first := "REMOTE\tCC"
	if v.by == query.ByCountry {
		first = "COUNTRY\tREMOTES"
	}
	fmt.Fprintf(tw, "%s\tTX BYTES\tRX BYTES\tTX PKTS\tRX PKTS\tTX RATE\tRX RATE\n", first)
	for _, l := range lines {
		second := l.cc
		if v.by == query.ByCountry {
			second = fmt.Sprint(l.Remotes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", l.name, second, l.TxBytes, l.RxBytes, l.TxPackets, l.RxPackets, l.rateTx, l.rateRx)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "services: not in the window stream; see dstwatch query --by service")
	return err
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

type topWindowMsg struct{ w *storage.Window }
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
		case "g":
			if v.by == query.ByRemote {
				v.by = query.ByCountry
			} else {
				v.by = query.ByRemote
			}
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

func (v *topView) View() string {
	lines, sum := v.lines()
	var b strings.Builder
	b.WriteString(topTitle.Render(v.header(sum)) + "\n")
	state := "live"
	if !v.live {
		state = "not following: no daemon stream"
	}
	if v.err != "" {
		state = v.err
	}
	b.WriteString(topDim.Render(fmt.Sprintf("[%s]  keys: r remotes  c countries  s sort  d direction  q quit   services: not in the window stream", state)) + "\n")
	sparkW := min(v.n, max(len(v.windows), 1))
	name, second := "REMOTE", "CC"
	if v.by == query.ByCountry {
		name, second = "COUNTRY", "REMOTES"
	}
	head := fmt.Sprintf("%-40s %-7s %10s %10s %12s %12s  %-*s", name, second, "TX", "RX", "TX/s", "RX/s", sparkW, "RECENT")
	b.WriteString(topHead.Render(head) + "\n")
	limit := len(lines)
	if v.height > 4 && limit > v.height-4 {
		limit = v.height - 4
	}
	for _, l := range lines[:limit] {
		second := l.cc
		if v.by == query.ByCountry {
			second = fmt.Sprint(l.Remotes)
		}
		n := l.name
		if len(n) > 40 {
			n = n[:39] + "…"
		}
		fmt.Fprintf(&b, "%-40s %-7s %s %s %12s %12s  %s\n", n, second,
			topTx.Render(fmt.Sprintf("%10s", units.Bytes(l.TxBytes))), topRx.Render(fmt.Sprintf("%10s", units.Bytes(l.RxBytes))),
			l.rateTx, l.rateRx, l.spark)
	}
	out := b.String()
	if v.width > 0 {
		// Cut lines to the terminal's width so a narrow window does not wrap.
		ls := strings.Split(out, "\n")
		for i, l := range ls {
			if lipgloss.Width(l) > v.width {
				ls[i] = lipgloss.NewStyle().MaxWidth(v.width).Render(l)
			}
		}
		out = strings.Join(ls, "\n")
	}
	return out
}

func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("top", topHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	n := fs.Int("windows", 30, "add up the newest `N` windows")
	by := fs.String("by", "remote", "group by remote or country (keys switch)")
	rows := fs.Int("top", 20, "show the `N` heaviest rows and sum the rest as 'other'")
	utc := fs.Bool("utc", false, "show times in UTC")
	once := fs.Bool("once", false, "print the view once as plain lines and exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	v := &topView{sort: query.SortBytes, n: *n, rows: *rows, loc: time.Local}
	if *utc {
		v.loc = time.UTC
	}
	switch *by {
	case "remote", "country":
		v.by = query.By(*by)
	default:
		return fmt.Errorf("%w: --by %q: want remote or country", errUsage, *by)
	}
	if *n < 1 || *n > 10000 || *rows < 1 {
		return fmt.Errorf("%w: --windows wants 1 to 10000, --top at least 1", errUsage)
	}
	st, err := openStore(ctx, *db, *socket, false)
	if err != nil {
		return err
	}
	defer st.close()
	ws, err := st.windows(ctx, api.Range{Last: *n})
	if err != nil {
		return err
	}
	for _, w := range ws {
		v.add(w)
	}
	f, isFile := stdout.(*os.File)
	tty := isFile && isatty.IsTerminal(f.Fd())
	if *once || (!tty && st.client == nil) {
		return v.plain(stdout)
	}
	if !tty {
		if err := v.plain(stdout); err != nil {
			return err
		}
		return followWindows(ctx, st.client, v.windowsEnd(), func(w *storage.Window) error {
			v.add(w)
			fmt.Fprintln(stdout)
			return v.plain(stdout)
		})
	}
	v.live = st.client != nil
	p := tea.NewProgram(v, tea.WithContext(ctx), tea.WithAltScreen(), tea.WithOutput(stdout))
	if st.client != nil {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			err := followWindows(sctx, st.client, v.windowsEnd(), func(w *storage.Window) error {
				p.Send(topWindowMsg{w})
				return nil
			})
			if err != nil && sctx.Err() == nil {
				p.Send(topStateMsg{false, "stream ended: " + err.Error()})
			}
		}()
	}
	_, err = p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

func (v *topView) windowsEnd() time.Time {
	if len(v.windows) == 0 {
		return time.Time{}
	}
	return v.windows[len(v.windows)-1].Start
}

// followWindows calls fn with each window stored after newest, following
// the daemon's stream; after a break it fetches what it missed and
// resubscribes.
func followWindows(ctx context.Context, c *api.Client, newest time.Time, fn func(*storage.Window) error) error {
	for {
		fill := func() error {
			if newest.IsZero() {
				return nil
			}
			return c.Windows(ctx, api.Range{From: newest.Add(time.Second), To: time.Now().Add(24 * time.Hour)}, query.Filter{}, func(w *storage.Window) error {
				if w.Start.After(newest) {
					newest = w.Start
					return fn(w)
				}
				return nil
			})
		}
		err := c.Stream(ctx, fill, func(w *storage.Window) error {
			if !w.Start.After(newest) {
				return nil
			}
			newest = w.Start
			return fn(w)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, api.ErrNotRunning) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

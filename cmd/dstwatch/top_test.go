package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/window"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/report"
	"github.com/dstwatch/dstwatch/storage"
)

// topServices are the services serviceWindows spreads remotes over.
var topServices = []window.ServiceKey{
	window.MakeServiceKey(window.ProtoTCP, window.SideOut, 443),
	window.MakeServiceKey(window.ProtoUDP, window.SideOut, 53),
	window.MakeServiceKey(window.ProtoTCP, window.SideIn, 22),
	window.MakeServiceKey(window.ProtoICMP, window.SideNone, 0),
	window.MakeServiceKey(window.ProtoTCP, window.SideIn, 8443),
}

// serviceWindows are historyWindows with per-service tallies: each remote
// of a window uses one service, the folded rest is 443/tcp out's other.
func serviceWindows() []*window.Window {
	ws := historyWindows()
	for i, w := range ws {
		at := map[window.ServiceKey]int{}
		for j, r := range w.Remotes {
			k := topServices[(i+j)%len(topServices)]
			n, ok := at[k]
			if !ok {
				n = len(w.Services)
				at[k] = n
				w.Services = append(w.Services, window.Service{Key: k})
			}
			s := &w.Services[n]
			s.Counts.Add(r.Counts)
			s.Remotes++
			s.Top = append(s.Top, r)
		}
		if !w.Other.IsZero() {
			k := topServices[0]
			if _, ok := at[k]; !ok {
				at[k] = len(w.Services)
				w.Services = append(w.Services, window.Service{Key: k})
			}
			s := &w.Services[at[k]]
			s.Counts.Add(w.Other)
			s.Other.Add(w.Other)
			s.Remotes += int(w.Stats.Folded)
		}
		slices.SortFunc(w.Services, func(a, b window.Service) int {
			return cmp.Or(cmp.Compare(b.Bytes(), a.Bytes()), cmp.Compare(a.Key, b.Key))
		})
		for k := range w.Services {
			slices.SortStableFunc(w.Services[k].Top, func(a, b window.Remote) int {
				return cmp.Or(cmp.Compare(b.Bytes(), a.Bytes()), a.Addr.Compare(b.Addr))
			})
		}
	}
	return ws
}

// serviceDB is historyDB with serviceWindows.
func serviceDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "services.db")
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Put(serviceWindows()); err != nil {
		t.Fatal(err)
	}
	return path
}

// Without a terminal, top prints plain lines: query --last N's rows, with
// the newest window's rates.
func TestTopPlain(t *testing.T) {
	db := serviceDB(t)
	code, out, stderr := runCmd(t, "top", "--db", db, "--once", "--utc", "--windows", "30", "--top", "5")
	if code != 0 {
		t.Fatal(stderr)
	}
	_, js, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "5", "--format", "json")
	rows, err := query.RowsFromJSON([]byte(js), query.ByRemote)
	if err != nil {
		t.Fatal(err)
	}
	hw := historyWindows()
	newest := hw[len(hw)-1]
	var want strings.Builder
	want.WriteString("dstwatch top: 30 windows from 2026-03-03 16:30:00 UTC to 2026-03-04 00:00:00 UTC, by remote, sort bytes, direction both\n")
	tw := tabwriter.NewWriter(&want, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REMOTE\tCC\tTX BYTES\tRX BYTES\tTX PKTS\tRX PKTS\tTX BIT/S\tRX BIT/S")
	for _, r := range rows {
		cc, rtx, rrx := report.CC(r.Country), "-", "-"
		if r.IsOther() {
			cc = ""
		} else {
			var c window.Counts
			for _, nr := range newest.Remotes {
				if nr.Addr.String() == r.Key {
					c.Add(nr.Counts)
				}
			}
			rtx, rrx = wholeBits(c.TxBytes, newest.Length), wholeBits(c.RxBytes, newest.Length)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Key, cc, r.TxBytes, r.RxBytes, r.TxPackets, r.RxPackets, rtx, rrx)
	}
	tw.Flush()
	if out != want.String() {
		t.Errorf("top --once:\n%s\nwant:\n%s", out, want.String())
	}
}

// By service, the plain lines are query --by service --last N's rows, each
// named with its side, with the newest window's rates.
func TestTopPlainServices(t *testing.T) {
	db := serviceDB(t)
	code, out, stderr := runCmd(t, "top", "--db", db, "--once", "--utc", "--windows", "30", "--top", "3", "--by", "service")
	if code != 0 {
		t.Fatal(stderr)
	}
	_, js, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "3", "--by", "service", "--format", "json")
	rows := serviceRowsJSON(t, js)
	if len(rows) != 4 || rows[3].Remotes != query.OtherService {
		t.Fatalf("query --by service --top 3: %+v", rows)
	}
	sw := serviceWindows()
	newest := sw[len(sw)-1]
	var want strings.Builder
	want.WriteString("dstwatch top: 30 windows from 2026-03-03 16:30:00 UTC to 2026-03-04 00:00:00 UTC, by service, sort bytes, direction both\n")
	tw := tabwriter.NewWriter(&want, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tREMOTES\tTX BYTES\tRX BYTES\tTX PKTS\tRX PKTS\tTX BIT/S\tRX BIT/S")
	for _, r := range rows {
		remotes, rtx, rrx := strconv.Itoa(r.Remotes), "-", "-"
		if r.Remotes == query.OtherService {
			remotes = ""
		} else {
			var c window.Counts
			for _, s := range newest.Services {
				if s.Key == r.Key {
					c.Add(s.Counts)
				}
			}
			rtx, rrx = wholeBits(c.TxBytes, newest.Length), wholeBits(c.RxBytes, newest.Length)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", report.ServiceName(r), remotes, r.TxBytes, r.RxBytes, r.TxPackets, r.RxPackets, rtx, rrx)
	}
	tw.Flush()
	if out != want.String() {
		t.Errorf("top --once --by service:\n%s\nwant:\n%s", out, want.String())
	}

	// Windows without services (stored before format 3) say so.
	code, out, _ = runCmd(t, "top", "--db", historyDB(t), "--once", "--by", "service")
	if code != 0 || !strings.Contains(out, "no per-service tallies in these windows") {
		t.Errorf("top --by service over windows without services: exit %d\n%s", code, out)
	}
	if code, _, stderr := runCmd(t, "top", "--db", db, "--once", "--by", "port"); code != 2 || !strings.Contains(stderr, "remote, country, asn or service") {
		t.Errorf("--by port: exit %d: %s", code, stderr)
	}
}

// wholeBits is b bytes over d as top's plain lines show a rate: whole
// bits per second (99 MiB in 15 minutes: 922747).
func wholeBits(b uint64, d time.Duration) string {
	return strconv.FormatUint((b*8*uint64(time.Second)+uint64(d)/2)/uint64(d), 10)
}

// serviceRowsJSON reads query --by service --format json.
func serviceRowsJSON(t *testing.T, js string) []query.ServiceRow {
	t.Helper()
	var jr []query.ServiceJSON
	if err := json.Unmarshal([]byte(js), &jr); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	var rows []query.ServiceRow
	for _, j := range jr {
		if j.Service == query.OtherKey {
			rows = append(rows, query.ServiceRow{Remotes: query.OtherService, Counts: j.Counts()})
			continue
		}
		r, err := query.FromServiceJSON(j)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

// tmux runs one tmux command on the test's own server.
func tmux(t *testing.T, sock string, args ...string) string {
	t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", sock}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// top in a real terminal (tmux): it shows query's numbers, switches to
// countries and services on a key, takes a new window from the daemon's
// stream, redraws on resize and quits on q.
func TestTopInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		netnstest.Unable(t, "needs tmux (apt-get install tmux; scripts/test installs it as root)")
	}
	db := serviceDB(t)
	_, js, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "20", "--format", "json")
	rows, _ := query.RowsFromJSON([]byte(js), query.ByRemote)
	_, cjs, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "20", "--by", "country", "--format", "json")
	crows, _ := query.RowsFromJSON([]byte(cjs), query.ByCountry)
	_, sjs, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "20", "--by", "service", "--format", "json")
	srows := serviceRowsJSON(t, sjs)
	windowArgs := []string{"query", "--db", db, "--last", "30", "--by", "window", "--format", "json"}
	_, fileWindows, _ := runCmd(t, windowArgs...)

	d, err := storage.Open(db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := api.Listen(defaultSocket(db), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(dbSource{query.Local(d), d}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	defer func() { srv.Shutdown(t.Context()); d.Close() }()

	// The windows top reads from the API carry their services exactly:
	// query --by window says the same through the daemon as from the file.
	code, apiWindows, stderr := runCmd(t, windowArgs...)
	if code != 0 || apiWindows != fileWindows || !strings.Contains(apiWindows, `"services": [`) {
		t.Errorf("--by window through the API (exit %d, %s) differs from the file's or has no services:\n%.2000s\nfile:\n%.2000s", code, stderr, apiWindows, fileWindows)
	}

	sock := "dstwatch-test-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { exec.Command("tmux", "-L", sock, "kill-server").Run() })
	tmux(t, sock, "new-session", "-d", "-s", "top", "-x", "150", "-y", "40",
		"TZ=UTC "+binary(t)+" top --db "+db+" --utc; echo top-exited-$?; sleep 30")
	capturePane := func() string { return tmux(t, sock, "capture-pane", "-p", "-t", "top") }
	waitPane := func(what string, cond func(string) bool) string {
		t.Helper()
		var last string
		if !waitFor(10*time.Second, func() bool { last = capturePane(); return cond(last) }) {
			t.Fatalf("%s; the pane shows:\n%s", what, last)
		}
		return last
	}
	pane := waitPane("top did not draw", func(s string) bool { return strings.Contains(s, "dstwatch top: 30 windows") })
	lineOf := func(pane, name string) string {
		for _, l := range strings.Split(pane, "\n") {
			if strings.HasPrefix(l, name+" ") {
				return l
			}
		}
		return ""
	}
	for _, r := range rows {
		l := lineOf(pane, r.Key)
		if !strings.Contains(l, " "+units.Bytes(r.TxBytes)+" ") || !strings.Contains(l, " "+units.Bytes(r.RxBytes)+" ") {
			t.Errorf("row %s: query says %s / %s, the pane: %q", r.Key, units.Bytes(r.TxBytes), units.Bytes(r.RxBytes), l)
		}
	}

	tmux(t, sock, "send-keys", "-t", "top", "c")
	pane = waitPane("c did not switch to countries", func(s string) bool { return strings.Contains(s, "by country") })
	for _, r := range crows {
		name := report.RowName(r, query.ByCountry)
		l := lineOf(pane, name)
		if !strings.Contains(l, " "+units.Bytes(r.TxBytes)+" ") {
			t.Errorf("country %s: query says %s, the pane: %q", name, units.Bytes(r.TxBytes), l)
		}
	}
	tmux(t, sock, "send-keys", "-t", "top", "r")
	waitPane("r did not switch back", func(s string) bool { return strings.Contains(s, "by remote") })

	// v: query --by service's rows, named with their side, with the newest
	// window's rates.
	tmux(t, sock, "send-keys", "-t", "top", "v")
	pane = waitPane("v did not switch to services", func(s string) bool { return strings.Contains(s, "by service") })
	sw := serviceWindows()
	newest := sw[len(sw)-1]
	if len(srows) != len(topServices) {
		t.Errorf("query --by service: %d rows, want %d", len(srows), len(topServices))
	}
	for _, r := range srows {
		name := report.ServiceName(r)
		var c window.Counts
		for _, s := range newest.Services {
			if s.Key == r.Key {
				c.Add(s.Counts)
			}
		}
		l := lineOf(pane, name)
		for _, want := range []string{
			" " + strconv.Itoa(r.Remotes) + " ", " " + units.Bytes(r.TxBytes) + " ", " " + units.Bytes(r.RxBytes) + " ",
			" " + topBits(bitRate(c.TxBytes, newest.Length)) + " ", " " + topBits(bitRate(c.RxBytes, newest.Length)) + " ",
		} {
			if !strings.Contains(l, want) {
				t.Errorf("service %s: query says %q, the pane: %q", name, want, l)
			}
		}
		if !strings.ContainsAny(l, "▁▂▃▄▅▆▇█") {
			t.Errorf("service %s: no sparkline: %q", name, l)
		}
	}
	// g cycles remotes, countries, ASes, services.
	for _, by := range []string{"remote", "country", "asn", "service"} {
		tmux(t, sock, "send-keys", "-t", "top", "g")
		waitPane("g did not switch to "+by, func(s string) bool { return strings.Contains(s, "by "+by+",") })
	}

	// A window stored now arrives over the stream, with its services.
	hw := historyWindows()
	far := window.Remote{Addr: netip.MustParseAddr("192.0.2.99"), Country: "US", Counts: window.Counts{TxPackets: 9, TxBytes: 99 << 20, RxPackets: 1, RxBytes: 1000}}
	w := &window.Window{Start: hw[len(hw)-1].End(), Length: 15 * time.Minute, Remotes: []window.Remote{far},
		Services: []window.Service{{Key: window.MakeServiceKey(window.ProtoTCP, window.SideIn, 8080), Remotes: 1, Counts: far.Counts, Top: []window.Remote{far}}}}
	if err := d.Put([]*window.Window{w}); err != nil {
		t.Fatal(err)
	}
	srv.Publish(w)
	pane = waitPane("the streamed window's service did not show", func(s string) bool { return strings.Contains(s, "8080/tcp in") })
	if l := lineOf(pane, "8080/tcp in"); !strings.Contains(l, "99.0 MiB") || !strings.Contains(l, " 923k ") {
		t.Errorf("streamed service: %q", l)
	}
	tmux(t, sock, "send-keys", "-t", "top", "r")
	pane = waitPane("the streamed window did not show", func(s string) bool { return strings.Contains(s, "192.0.2.99") })
	if l := lineOf(pane, "192.0.2.99"); !strings.Contains(l, "99.0 MiB") || !strings.Contains(l, " 923k ") {
		t.Errorf("streamed remote: %q", l)
	}

	tmux(t, sock, "resize-window", "-t", "top", "-x", "70", "-y", "12")
	pane = waitPane("no redraw at 70x12", func(s string) bool {
		ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return strings.Contains(s, "dstwatch top") && len(ls) <= 12
	})
	for _, l := range strings.Split(pane, "\n") {
		if n := len([]rune(l)); n > 70 {
			t.Errorf("line wider than the window (%d): %q", n, l)
		}
	}
	tmux(t, sock, "send-keys", "-t", "top", "q")
	waitPane("q did not quit", func(s string) bool { return strings.Contains(s, "top-exited-0") })
}

// renderPane draws captured terminal text as an image: basicfont for
// ASCII, the sparkline's block characters as bars.
func renderPane(text string) image.Image {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	const cw, ch = 7, 15
	cols := 0
	for _, l := range lines {
		cols = max(cols, len([]rune(l)))
	}
	img := image.NewRGBA(image.Rect(0, 0, cols*cw+16, len(lines)*ch+16))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{0x1e, 0x1e, 0x1e, 0xff}), image.Point{}, draw.Src)
	fg := image.NewUniform(color.RGBA{0xe0, 0xe0, 0xe0, 0xff})
	spark := image.NewUniform(color.RGBA{0x6c, 0xb6, 0xff, 0xff})
	d := &font.Drawer{Dst: img, Src: fg, Face: basicfont.Face7x13}
	for i, l := range lines {
		y := 8 + i*ch
		for j, r := range []rune(l) {
			x := 8 + j*cw
			if r >= '▁' && r <= '█' {
				h := int(r-'▁'+1) * ch / 8
				draw.Draw(img, image.Rect(x, y+ch-h, x+cw-1, y+ch), spark, image.Point{}, draw.Src)
				continue
			}
			if r > 126 {
				r = '?'
			}
			d.Dot = fixed.P(x, y+11)
			d.DrawString(string(r))
		}
	}
	return img
}

// top never stands in the daemon's way: started with no daemon, it reads
// the file and lets go of it, so a daemon started on the same file starts
// (it cannot while anyone holds bbolt's lock); top then goes live on its
// stream, and says so no longer once the daemon stops.
func TestTopBeforeTheDaemon(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		netnstest.Unable(t, "needs tmux (apt-get install tmux; scripts/test installs it as root)")
	}
	p := netnstest.New(t)
	db := serviceDB(t)
	sock := "dstwatch-test-late-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { exec.Command("tmux", "-L", sock, "kill-server").Run() })
	tmux(t, sock, "new-session", "-d", "-s", "top", "-x", "180", "-y", "40",
		"TZ=UTC "+binary(t)+" top --db "+db+" --utc; echo top-exited-$?; sleep 30")
	waitPane := func(what string, cond func(string) bool) string {
		t.Helper()
		var last string
		if !waitFor(10*time.Second, func() bool { last = tmux(t, sock, "capture-pane", "-p", "-t", "top"); return cond(last) }) {
			t.Fatalf("%s; the pane shows:\n%s", what, last)
		}
		return last
	}
	pane := waitPane("top did not draw from the file", func(s string) bool {
		return strings.Contains(s, "dstwatch top: 30 windows") && !strings.Contains(s, "[live]")
	})

	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--retention", "0")
	if !strings.Contains(pane, "[not live since") || !strings.Contains(pane, "no daemon runs") {
		t.Errorf("top does not say it is not live, and why:\n%s", pane)
	}
	waitPane("top did not go live on the daemon that started after it", func(s string) bool { return strings.Contains(s, "[live]") })
	// It follows the stream: the daemon's windows (of today) arrive.
	sink(t, p.A, netnstest.A4)
	send(t, p.B, netnstest.B4, netnstest.A4, 20, 72)
	today := time.Now().UTC().Format("2006-01-02")
	waitPane("no window from the daemon's stream reached top", func(s string) bool { return strings.Contains(s, "to "+today) })

	d.stop(t)
	pane = waitPane("top still claims to be live after the daemon stopped", func(s string) bool {
		return !strings.Contains(s, "[live]") && strings.Contains(s, "[not live since")
	})
	if !strings.Contains(pane, "the daemon") {
		t.Errorf("top does not say why it is not live:\n%s", pane)
	}
	// And once more: a daemon restarted later is followed again.
	d = startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--retention", "0")
	waitPane("top did not go live again on a restarted daemon", func(s string) bool { return strings.Contains(s, "[live]") })
	d.stop(t)
}

// topSeries is what each row's sparkline draws: per window of ws, the
// bytes (or packets) of the remotes that key(r) groups under name.
func topSeries(ws []*window.Window, name string, key func(*window.Remote) string, packets bool) []uint64 {
	s := make([]uint64, len(ws))
	for i, w := range ws {
		for j := range w.Remotes {
			if key(&w.Remotes[j]) == name {
				if packets {
					s[i] += w.Remotes[j].Packets()
				} else {
					s[i] += w.Remotes[j].Bytes()
				}
			}
		}
	}
	return s
}

// top in an 80-column terminal shows every number whole: bytes, rates in
// bit/s (the header says so), and a sparkline of as many of the newest
// windows as its column says; sorted by packets it adds a PKTS column and
// draws packets; a groups by AS.
func TestTopAt80Columns(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		netnstest.Unable(t, "needs tmux (apt-get install tmux; scripts/test installs it as root)")
	}
	db := serviceDB(t)
	_, js, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "20", "--format", "json")
	rows, _ := query.RowsFromJSON([]byte(js), query.ByRemote)
	_, ajs, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "20", "--by", "asn", "--format", "json")
	arows, _ := query.RowsFromJSON([]byte(ajs), query.ByASN)
	if len(rows) < 10 || len(arows) < 5 {
		t.Fatalf("query: %d remotes, %d ASes", len(rows), len(arows))
	}
	all := serviceWindows()
	held := all[len(all)-30:]
	newest := held[len(held)-1]

	sock := "dstwatch-test-80-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { exec.Command("tmux", "-L", sock, "kill-server").Run() })
	tmux(t, sock, "new-session", "-d", "-s", "top", "-x", "80", "-y", "40",
		"TZ=UTC "+binary(t)+" top --db "+db+" --utc; echo top-exited-$?; sleep 30")
	waitPane := func(what string, cond func(string) bool) string {
		t.Helper()
		var last string
		if !waitFor(10*time.Second, func() bool { last = tmux(t, sock, "capture-pane", "-p", "-t", "top"); return cond(last) }) {
			t.Fatalf("%s; the pane shows:\n%s", what, last)
		}
		return last
	}
	lineOf := func(pane, name string) string {
		for _, l := range strings.Split(pane, "\n") {
			if strings.HasPrefix(l, name+" ") {
				return l
			}
		}
		return ""
	}
	// sparkOf is the sparkline the header's LAST K column promises.
	sparkOf := func(pane string, s []uint64) (string, error) {
		head := lineOf(pane, "REMOTE")
		if head == "" {
			head = lineOf(pane, "AS")
		}
		_, k, ok := strings.Cut(head, "LAST ")
		n, err := strconv.Atoi(strings.TrimSpace(k))
		if !ok || err != nil || n < 16 || n > 30 {
			return "", fmt.Errorf("the sparkline's column does not say how many windows it shows (16 to 30 fit): %q", head)
		}
		return strings.TrimRight(report.Sparkline(s[len(s)-n:]), " "), nil
	}
	// The pane is read until it shows what it should: tmux may be caught
	// between a redraw's lines.
	waitRight := func(what string, cond func(string) bool, check func(string) []string) string {
		t.Helper()
		var pane string
		var bad []string
		if !waitFor(10*time.Second, func() bool {
			pane = tmux(t, sock, "capture-pane", "-p", "-t", "top")
			bad = nil
			if !cond(pane) {
				bad = []string{what}
			} else {
				bad = check(pane)
			}
			return len(bad) == 0
		}) {
			for _, b := range bad {
				t.Error(b)
			}
			t.Fatalf("the pane shows:\n%s", pane)
		}
		return pane
	}
	remotes := func(packets bool) func(string) []string {
		return func(pane string) []string {
			var bad []string
			for _, l := range strings.Split(pane, "\n") {
				if n := len([]rune(l)); n > 80 {
					bad = append(bad, fmt.Sprintf("line wider than 80 columns (%d): %q", n, l))
				}
			}
			if !strings.Contains(pane, "rates in bit/s") {
				bad = append(bad, "top does not say its rates' unit")
			}
			if strings.Contains(lineOf(pane, "REMOTE"), " PKTS ") != packets {
				bad = append(bad, fmt.Sprintf("sorted by packets %v, and the PKTS column: %q", packets, lineOf(pane, "REMOTE")))
			}
			for _, r := range rows {
				if r.IsOther() {
					continue
				}
				l := lineOf(pane, r.Key)
				var c window.Counts
				for _, nr := range newest.Remotes {
					if nr.Addr.String() == r.Key {
						c.Add(nr.Counts)
					}
				}
				want := []string{" " + units.Bytes(r.TxBytes) + " ", " " + units.Bytes(r.RxBytes) + " "}
				if packets {
					want = append(want, " "+units.Count(r.Packets())+" ")
				}
				for _, w := range want {
					if !strings.Contains(l, w) {
						bad = append(bad, fmt.Sprintf("row %s: want %q, the pane: %q", r.Key, w, l))
					}
				}
				// Rates in their fixed columns, then the sparkline to the end.
				rt := fmt.Sprintf(" %8s %8s  ", topBits(float64(c.TxBytes)*8/newest.Length.Seconds()), topBits(float64(c.RxBytes)*8/newest.Length.Seconds()))
				spark, err := sparkOf(pane, topSeries(held, r.Key, func(x *window.Remote) string { return x.Addr.String() }, packets))
				if err != nil {
					return append(bad, err.Error())
				}
				if !strings.HasSuffix(strings.TrimRight(l, " "), strings.TrimRight(rt+spark, " ")) {
					bad = append(bad, fmt.Sprintf("row %s: want rates and sparkline %q at its end, the pane: %q", r.Key, rt+spark, l))
				}
			}
			return bad
		}
	}
	shot := waitRight("top did not draw", func(s string) bool { return strings.Contains(s, "dstwatch top: 30 windows") }, remotes(false))

	tmux(t, sock, "send-keys", "-t", "top", "s")
	waitRight("s did not sort by packets", func(s string) bool { return strings.Contains(s, "sort packets") }, remotes(true))
	// One key at a time: keys read together arrive as one (bubbletea).
	tmux(t, sock, "send-keys", "-t", "top", "s")
	waitRight("s did not sort by bytes again", func(s string) bool { return strings.Contains(s, "sort bytes") }, remotes(false))

	tmux(t, sock, "send-keys", "-t", "top", "a")
	waitRight("a did not group by AS", func(s string) bool { return strings.Contains(s, "by asn, sort bytes") }, func(pane string) []string {
		var bad []string
		for _, r := range arows {
			name := report.RowName(r, query.ByASN)
			if r.ASOrg != "" && !r.IsOther() {
				name += " " + r.ASOrg
			}
			l := lineOf(pane, name)
			want := []string{" " + units.Bytes(r.TxBytes) + " ", " " + units.Bytes(r.RxBytes) + " "}
			if !r.IsOther() {
				want = append(want, " "+strconv.Itoa(r.Remotes)+" ")
				spark, err := sparkOf(pane, topSeries(held, r.Key, func(x *window.Remote) string { return strconv.FormatUint(uint64(x.ASN), 10) }, false))
				if err != nil {
					return append(bad, err.Error())
				}
				if !strings.HasSuffix(strings.TrimRight(l, " "), strings.TrimRight(spark, " ")) {
					bad = append(bad, fmt.Sprintf("AS %s: want the sparkline %q at its end, the pane: %q", name, spark, l))
				}
			}
			for _, w := range want {
				if !strings.Contains(l, w) {
					bad = append(bad, fmt.Sprintf("AS %s: want %q, the pane: %q", name, w, l))
				}
			}
		}
		return bad
	})
	tmux(t, sock, "send-keys", "-t", "top", "q")
	waitPane("q did not quit", func(s string) bool { return strings.Contains(s, "top-exited-0") })

	if screenshotsWanted() {
		f, err := os.Create(filepath.Join("..", "..", "docs", "top.png"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, renderPane(shot)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTopBits(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 0.4: "0", 999.4: "999", 999.5: "1.00k", 1500: "1.50k", 9994: "9.99k", 9995: "10.0k",
		52.44e6: "52.4M", 999.4e6: "999M", 999.6e6: "1.00G", 2.5e12: "2.50T",
	} {
		if got := topBits(v); got != want {
			t.Errorf("topBits(%v) = %q, want %q", v, got, want)
		}
	}
}

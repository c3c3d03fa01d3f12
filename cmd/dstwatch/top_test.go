package main

import (
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
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/report"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

// Without a terminal, top prints plain lines: query --last N's rows, with
// the newest window's rates.
func TestTopPlain(t *testing.T) {
	db := historyDB(t)
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
	fmt.Fprintln(tw, "REMOTE\tCC\tTX BYTES\tRX BYTES\tTX PKTS\tRX PKTS\tTX RATE\tRX RATE")
	for _, r := range rows {
		cc, rtx, rrx := report.CC(r.Country), "-", "-"
		if r.IsOther() {
			cc = ""
		} else {
			var c rotate.Counts
			for _, nr := range newest.Remotes {
				if nr.Addr.String() == r.Key {
					c.Add(nr.Counts)
				}
			}
			rtx, rrx = report.Rate(c.TxBytes, newest.Length), report.Rate(c.RxBytes, newest.Length)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Key, cc, r.TxBytes, r.RxBytes, r.TxPackets, r.RxPackets, rtx, rrx)
	}
	tw.Flush()
	want.WriteString("services: not in the window stream; see dstwatch query --by service\n")
	if out != want.String() {
		t.Errorf("top --once:\n%s\nwant:\n%s", out, want.String())
	}
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
// countries on a key, takes a new window from the daemon's stream, redraws
// on resize and quits on q.
func TestTopInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux (apt-get install tmux; scripts/test installs it as root)")
	}
	db := historyDB(t)
	_, js, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "20", "--format", "json")
	rows, _ := query.RowsFromJSON([]byte(js), query.ByRemote)
	_, cjs, _ := runCmd(t, "query", "--db", db, "--last", "30", "--top", "20", "--by", "country", "--format", "json")
	crows, _ := query.RowsFromJSON([]byte(cjs), query.ByCountry)

	d, err := storage.Open(db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := api.Listen(defaultSocket(db), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(dbSource{d}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	defer func() { srv.Shutdown(t.Context()); d.Close() }()

	sock := "dstwatch-test-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { exec.Command("tmux", "-L", sock, "kill-server").Run() })
	tmux(t, sock, "new-session", "-d", "-s", "top", "-x", "150", "-y", "40",
		"TZ=UTC "+binary(t)+" top --db "+db+" --utc; echo top-exited-$?; sleep 30")
	capture := func() string { return tmux(t, sock, "capture-pane", "-p", "-t", "top") }
	waitPane := func(what string, cond func(string) bool) string {
		t.Helper()
		var last string
		if !waitFor(10*time.Second, func() bool { last = capture(); return cond(last) }) {
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
	shot := pane

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

	// A window stored now arrives over the stream.
	hw := historyWindows()
	w := &storage.Window{Start: hw[len(hw)-1].End(), Length: 15 * time.Minute, Remotes: []storage.Remote{
		{Addr: netip.MustParseAddr("192.0.2.99"), Country: "US", Counts: rotate.Counts{TxPackets: 9, TxBytes: 99 << 20, RxPackets: 1, RxBytes: 1000}},
	}}
	if err := d.Put([]*storage.Window{w}); err != nil {
		t.Fatal(err)
	}
	srv.Publish(w)
	pane = waitPane("the streamed window did not show", func(s string) bool { return strings.Contains(s, "192.0.2.99") })
	if l := lineOf(pane, "192.0.2.99"); !strings.Contains(l, "99.0 MiB") || !strings.Contains(l, "112 KiB/s") {
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

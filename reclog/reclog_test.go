package reclog

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/window"
)

func mkWindow(start time.Time) *window.Window {
	return &window.Window{
		Start: start, Length: 20 * time.Second,
		Remotes: []window.Remote{
			{Addr: netip.MustParseAddr("203.0.113.5"), Country: "JP", Counts: window.Counts{TxPackets: 812, TxBytes: 1153434, RxPackets: 301, RxBytes: 20787}},
			{Addr: netip.MustParseAddr("2001:db8::7"), Counts: window.Counts{TxPackets: 3, TxBytes: 300}},
			{Addr: netip.MustParseAddr("198.51.100.9"), Country: "NL", Counts: window.Counts{RxPackets: 1, RxBytes: 60}},
		},
		Other: window.Counts{TxPackets: 10, TxBytes: 1000},
		Stats: window.Stats{Frames: 1130, Tallied: 1127, Transit: 3, Folded: 4},
	}
}

func TestFormat(t *testing.T) {
	var b strings.Builder
	Format(&b, mkWindow(time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC)), 2, time.UTC)
	want := `2026-11-22T13:20:00Z === window 20s remotes 7  tx 1.10 MiB 825 pkts  rx 20.4 KiB 302 pkts  frames 1130 skipped 3 drops 0 late 0 folded 4 ===
2026-11-22T13:20:00Z  tx   1.10 MiB     812 pkts  rx   20.3 KiB     301 pkts  JP 203.0.113.5
2026-11-22T13:20:00Z  tx      300 B       3 pkts  rx        0 B       0 pkts  -- 2001:db8::7
2026-11-22T13:20:00Z  tx   0.98 KiB      10 pkts  rx       60 B       1 pkts  -- others (5 remotes)
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestReopensAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.log")
	l, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t0 := time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC)
	if err := l.Write(mkWindow(t0), 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	// logrotate without copytruncate: rename, then the daemon must notice.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(mkWindow(t0.Add(20*time.Second)), 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	// Deleted away: recreated.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(mkWindow(t0.Add(40*time.Second)), 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "13:20:00Z ===") || strings.Contains(string(old), "13:20:20Z") {
		t.Errorf("rotated file holds the wrong windows:\n%s", old)
	}
	if !strings.HasPrefix(string(cur), "2026-11-22T13:20:40Z ===") {
		t.Errorf("new file should start with the third window:\n%s", cur)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o027 != 0 {
		t.Errorf("record log mode %v, want 0640 or stricter", st.Mode().Perm())
	}
	// SIGHUP path: explicit reopen keeps appending to the path.
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
}

// A partial window says so at the end of its header; the rest of a window
// after a restart is a continuation line, not a second header.
func TestPartialAndContinued(t *testing.T) {
	start := time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC)
	r := window.Remote{Addr: netip.MustParseAddr("198.51.100.2"), Country: "NL", Counts: window.Counts{TxPackets: 9, TxBytes: 12400, RxPackets: 8, RxBytes: 2070}}
	w := &window.Window{Start: start, Length: 20 * time.Second, Remotes: []window.Remote{r},
		Stats: window.Stats{Frames: 17, Tallied: 17, Partial: window.PartialStop | window.PartialOutage}}
	path := filepath.Join(t.TempDir(), "records.log")
	l, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(w, 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	again := *w
	again.Stats.Partial = window.PartialStart
	if err := l.WriteContinued(&again, 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	whole := *w
	whole.Start, whole.Stats.Partial = start.Add(20*time.Second), 0
	if err := l.Write(&whole, 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, _ := os.ReadFile(path)
	want := `2026-11-22T13:20:00Z === window 20s remotes 1  tx 12.1 KiB 9 pkts  rx 2.02 KiB 8 pkts  frames 17 skipped 0 drops 0 late 0 folded 0 partial stop,outage ===
2026-11-22T13:20:00Z  tx   12.1 KiB       9 pkts  rx   2.02 KiB       8 pkts  NL 198.51.100.2
2026-11-22T13:20:00Z +++ window 20s continued after a restart: remotes 1  tx 12.1 KiB 9 pkts  rx 2.02 KiB 8 pkts  frames 17 skipped 0 drops 0 late 0 folded 0 partial start +++
2026-11-22T13:20:00Z  tx   12.1 KiB       9 pkts  rx   2.02 KiB       8 pkts  NL 198.51.100.2
2026-11-22T13:20:20Z === window 20s remotes 1  tx 12.1 KiB 9 pkts  rx 2.02 KiB 8 pkts  frames 17 skipped 0 drops 0 late 0 folded 0 ===
2026-11-22T13:20:20Z  tx   12.1 KiB       9 pkts  rx   2.02 KiB       8 pkts  NL 198.51.100.2
`
	if string(b) != want {
		t.Errorf("record log:\n%s\nwant:\n%s", b, want)
	}
}

// TestLineIsFmt: a remote's line, written piece by piece, is what the
// format it replaced makes of it, for counts of every width.
func TestLineIsFmt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		c := window.Counts{TxPackets: rng.Uint64() >> rng.IntN(64), TxBytes: rng.Uint64() >> rng.IntN(64),
			RxPackets: rng.Uint64() >> rng.IntN(64), RxBytes: rng.Uint64() >> rng.IntN(64)}
		cc := []string{"DE", "--", "X", ""}[i%4]
		who := []string{"203.0.113.5", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "others (12 remotes)"}[i%3]
		want := fmt.Sprintf("%s  tx %10s %7s pkts  rx %10s %7s pkts  %-2s %s\n", "2026-12-01T12:00:00Z",
			units.Bytes(c.TxBytes), units.Count(c.TxPackets), units.Bytes(c.RxBytes), units.Count(c.RxPackets), cc, who)
		var b strings.Builder
		line(&b, "2026-12-01T12:00:00Z", c, cc, []byte(who))
		if b.String() != want {
			t.Fatalf("line %q, want %q", b.String(), want)
		}
	}
}

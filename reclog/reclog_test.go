package reclog

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

func window(start time.Time) *storage.Window {
	return &storage.Window{
		Start: start, Length: 20 * time.Second,
		Remotes: []storage.Remote{
			{Addr: netip.MustParseAddr("203.0.113.5"), Country: "JP", Counts: rotate.Counts{TxPackets: 812, TxBytes: 1153434, RxPackets: 301, RxBytes: 20787}},
			{Addr: netip.MustParseAddr("2001:db8::7"), Counts: rotate.Counts{TxPackets: 3, TxBytes: 300}},
			{Addr: netip.MustParseAddr("198.51.100.9"), Country: "NL", Counts: rotate.Counts{RxPackets: 1, RxBytes: 60}},
		},
		Other: rotate.Counts{TxPackets: 10, TxBytes: 1000},
		Stats: rotate.Stats{Frames: 1130, Tallied: 1127, Transit: 3, Folded: 4},
	}
}

func TestFormat(t *testing.T) {
	var b strings.Builder
	Format(&b, window(time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC)), 2, time.UTC)
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
	if err := l.Write(window(t0), 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	// logrotate without copytruncate: rename, then the daemon must notice.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(window(t0.Add(20*time.Second)), 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	// Deleted away: recreated.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(window(t0.Add(40*time.Second)), 0, time.UTC); err != nil {
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

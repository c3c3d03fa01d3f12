package storage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "dstwatch.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sampleWindow has every field distinct, so a swapped field fails a test.
func sampleWindow(start time.Time) *window.Window {
	return &window.Window{
		Start:  start,
		Length: 20 * time.Second,
		Remotes: []window.Remote{
			{Addr: netip.MustParseAddr("2001:db8::1"), Country: "DE", ASN: 64500, ASOrg: "Example Org",
				Counts: window.Counts{TxPackets: 11, TxBytes: 1_000_001, RxPackets: 13, RxBytes: 2_000_003}},
			{Addr: netip.MustParseAddr("198.51.100.7"), Country: "FR", ASN: 4200000000, ASOrg: "Big ASN Ltd",
				Counts: window.Counts{TxPackets: 21, TxBytes: 300_000, RxPackets: 23, RxBytes: 400_000}},
			{Addr: netip.MustParseAddr("203.0.113.9"),
				Counts: window.Counts{TxPackets: 1, TxBytes: 60, RxPackets: 0, RxBytes: 0}},
		},
		Other: window.Counts{TxPackets: 31, TxBytes: 32, RxPackets: 33, RxBytes: 34},
		Stats: window.Stats{Frames: 101, Tallied: 102, NonIP: 103, Transit: 104, Malformed: 105,
			Excluded: 106, Local: 107, Drops: 108, Late: 109, Folded: 110, Oversize: 111, Spoofed: 112},
	}
}

func collect(t *testing.T, f func(fn func(*window.Window) error) error) []*window.Window {
	t.Helper()
	var ws []*window.Window
	if err := f(func(w *window.Window) error { ws = append(ws, w); return nil }); err != nil {
		t.Fatal(err)
	}
	return ws
}

func starts(ws []*window.Window) []time.Time {
	var ts []time.Time
	for _, w := range ws {
		ts = append(ts, w.Start)
	}
	return ts
}

func TestRoundTrip(t *testing.T) {
	db := openTemp(t)
	a := sampleWindow(t0)
	b := sampleWindow(t0.Add(20 * time.Second))
	b.GeoBuild = time.Date(2025, 2, 25, 6, 7, 8, 0, time.UTC)
	b.Remotes = nil
	if err := db.Put([]*window.Window{a, b}); err != nil {
		t.Fatal(err)
	}
	got := collect(t, func(fn func(*window.Window) error) error {
		return db.Windows(context.Background(), t0, t0.Add(time.Hour), fn)
	})
	if len(got) != 2 {
		t.Fatalf("got %d windows, want 2", len(got))
	}
	for i, want := range []*window.Window{a, b} {
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("window %d:\n got %+v\nwant %+v", i, got[i], want)
		}
	}
	if got[0].End() != t0.Add(20*time.Second) {
		t.Errorf("End = %v", got[0].End())
	}

	// Organisation names survive a reopen (they come from the asn bucket,
	// not the cache).
	path := db.Path()
	db.Close()
	db2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	got = collect(t, func(fn func(*window.Window) error) error { return db2.Last(context.Background(), 1, fn) })
	if len(got) != 1 || !reflect.DeepEqual(got[0], b) {
		t.Fatalf("after reopen: %+v", got)
	}
	got = collect(t, func(fn func(*window.Window) error) error {
		return db2.Windows(context.Background(), t0, t0.Add(time.Second), fn)
	})
	if len(got) != 1 || got[0].Remotes[0].ASOrg != "Example Org" || got[0].Remotes[1].ASOrg != "Big ASN Ltd" {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	w := sampleWindow(t0)
	w.GeoBuild = time.Unix(1700000000, 0).UTC()
	got, err := UnmarshalWindow(windowKey(w.Start), MarshalWindow(w))
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Remotes {
		w.Remotes[i].ASOrg = "" // not in the value
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("got %+v\nwant %+v", got, w)
	}
}

func TestUnknownSectionSkipped(t *testing.T) {
	w := sampleWindow(t0)
	for i := range w.Remotes {
		w.Remotes[i].ASOrg = ""
	}
	v := MarshalWindow(w)
	// A later version's section (id 99) in the middle and at the end.
	extra := []byte{99, 3, 'x', 'y', 'z'}
	v2 := append(append(append([]byte{}, v[:1]...), extra...), v[1:]...)
	v2 = append(v2, extra...)
	got, err := UnmarshalWindow(windowKey(w.Start), v2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("got %+v\nwant %+v", got, w)
	}
}

func TestMerge(t *testing.T) {
	db := openTemp(t)
	a := netip.MustParseAddr("198.51.100.1")
	b := netip.MustParseAddr("198.51.100.2")
	c := netip.MustParseAddr("2001:db8::c")
	first := &window.Window{
		Start: t0, Length: 10 * time.Second,
		Remotes: []window.Remote{
			{Addr: a, Country: "US", ASN: 1, ASOrg: "one", Counts: window.Counts{TxPackets: 1, TxBytes: 100, RxPackets: 2, RxBytes: 200}},
			{Addr: b, Country: "NL", ASN: 2, ASOrg: "two", Counts: window.Counts{TxPackets: 3, TxBytes: 50, RxPackets: 4, RxBytes: 60}},
		},
		Other:    window.Counts{TxPackets: 1, TxBytes: 2, RxPackets: 3, RxBytes: 4},
		Stats:    window.Stats{Frames: 10, Tallied: 9, NonIP: 1, Drops: 5, Late: 1, Folded: 2},
		GeoBuild: time.Unix(1000, 0).UTC(),
	}
	second := &window.Window{
		Start: t0, Length: 20 * time.Second,
		Remotes: []window.Remote{
			{Addr: b, Country: "BE", ASN: 3, ASOrg: "three", Counts: window.Counts{TxPackets: 10, TxBytes: 1000, RxPackets: 20, RxBytes: 2000}},
			{Addr: c, Country: "", ASN: 0, Counts: window.Counts{TxPackets: 5, TxBytes: 500, RxPackets: 0, RxBytes: 0}},
			// Newer lookup failed: a known answer stays.
			{Addr: a, Country: "", ASN: 0, Counts: window.Counts{TxPackets: 1, TxBytes: 1, RxPackets: 1, RxBytes: 1}},
		},
		Other:    window.Counts{TxPackets: 10, TxBytes: 20, RxPackets: 30, RxBytes: 40},
		Stats:    window.Stats{Frames: 100, Tallied: 90, Transit: 3, Malformed: 4, Excluded: 5, Local: 6, Drops: 7, Late: 8, Folded: 9},
		GeoBuild: time.Unix(2000, 0).UTC(),
	}
	firstCopy := *first
	firstCopy.Remotes = append([]window.Remote(nil), first.Remotes...)
	if err := db.Put([]*window.Window{first}); err != nil {
		t.Fatal(err)
	}
	if err := db.Put([]*window.Window{second}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, &firstCopy) {
		t.Fatal("Put modified its input")
	}
	got := collect(t, func(fn func(*window.Window) error) error { return db.Last(context.Background(), 10, fn) })
	want := &window.Window{
		Start: t0, Length: 20 * time.Second,
		Remotes: []window.Remote{
			{Addr: b, Country: "BE", ASN: 3, ASOrg: "three", Counts: window.Counts{TxPackets: 13, TxBytes: 1050, RxPackets: 24, RxBytes: 2060}},
			{Addr: c, Counts: window.Counts{TxPackets: 5, TxBytes: 500}},
			{Addr: a, Country: "US", ASN: 1, ASOrg: "one", Counts: window.Counts{TxPackets: 2, TxBytes: 101, RxPackets: 3, RxBytes: 201}},
		},
		Other: window.Counts{TxPackets: 11, TxBytes: 22, RxPackets: 33, RxBytes: 44},
		Stats: window.Stats{Frames: 110, Tallied: 99, NonIP: 1, Transit: 3, Malformed: 4, Excluded: 5, Local: 6,
			Drops: 12, Late: 9, Folded: 11},
		GeoBuild: time.Unix(2000, 0).UTC(),
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("merged:\n got %+v\nwant %+v", got[0], want)
	}

	// The same start twice in one Put merges too.
	if err := db.Put([]*window.Window{first, first}); err != nil {
		t.Fatal(err)
	}
	got = collect(t, func(fn func(*window.Window) error) error { return db.Last(context.Background(), 10, fn) })
	if f := got[0].Stats.Frames; f != 130 {
		t.Fatalf("frames after merging twice more = %d, want 130", f)
	}
}

func TestRanges(t *testing.T) {
	db := openTemp(t)
	var ws []*window.Window
	// Put in reverse order: Put sorts.
	for i := 9; i >= 0; i-- {
		ws = append(ws, &window.Window{Start: t0.Add(time.Duration(i) * time.Minute), Length: time.Minute})
	}
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	span := func(a, b int) []time.Time {
		var ts []time.Time
		for i := a; i < b; i++ {
			ts = append(ts, at(i))
		}
		return ts
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     []time.Time
	}{
		{"all", time.Time{}.Add(-1), at(100), span(0, 10)},
		{"from inclusive to exclusive", at(2), at(5), span(2, 5)},
		{"inside a window", at(2).Add(time.Second), at(5).Add(time.Second), span(3, 6)},
		{"fractional to includes its second", at(2), at(5).Add(time.Millisecond), span(2, 6)},
		{"empty", at(5), at(5), nil},
		{"before", at(-10), at(0), nil},
		{"after", at(10), at(20), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := starts(collect(t, func(fn func(*window.Window) error) error { return db.Windows(context.Background(), tt.from, tt.to, fn) }))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}

	for _, n := range []int{0, 1, 3, 10, 20} {
		got := starts(collect(t, func(fn func(*window.Window) error) error { return db.Last(context.Background(), n, fn) }))
		want := span(max(0, 10-n), 10)
		if n == 0 {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Last(%d) = %v, want %v", n, got, want)
		}
	}

	stop := errors.New("stop")
	seen := 0
	if err := db.Windows(context.Background(), at(0), at(10), func(*window.Window) error { seen++; return stop }); err != stop || seen != 1 {
		t.Errorf("callback error: err %v after %d windows", err, seen)
	}

	first, last, n, err := db.Bounds()
	if err != nil || first != at(0) || last != at(9) || n != 10 {
		t.Fatalf("Bounds = %v %v %d %v", first, last, n, err)
	}
	pruned, err := db.Prune(at(3).Add(time.Second))
	if err != nil || pruned != 4 {
		t.Fatalf("Prune = %d, %v; want 4", pruned, err)
	}
	first, last, n, err = db.Bounds()
	if err != nil || first != at(4) || last != at(9) || n != 6 {
		t.Fatalf("Bounds after prune = %v %v %d %v", first, last, n, err)
	}
	if pruned, _ := db.Prune(at(100)); pruned != 6 {
		t.Fatalf("Prune all = %d", pruned)
	}
	first, last, n, err = db.Bounds()
	if err != nil || !first.IsZero() || !last.IsZero() || n != 0 {
		t.Fatalf("Bounds when empty = %v %v %d %v", first, last, n, err)
	}
}

// TestScanBatches crosses the per-transaction batch boundary.
func TestScanBatches(t *testing.T) {
	db := openTemp(t)
	const n = scanBatch*2 + 7
	var ws []*window.Window
	for i := range n {
		ws = append(ws, &window.Window{Start: t0.Add(time.Duration(i) * 10 * time.Second), Length: 10 * time.Second,
			Stats: window.Stats{Frames: uint64(i)}})
	}
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	got := collect(t, func(fn func(*window.Window) error) error {
		return db.Windows(context.Background(), t0, t0.Add(24*time.Hour), fn)
	})
	if len(got) != n {
		t.Fatalf("got %d windows, want %d", len(got), n)
	}
	for i, w := range got {
		if w.Stats.Frames != uint64(i) {
			t.Fatalf("window %d has frames %d", i, w.Stats.Frames)
		}
	}
	got = collect(t, func(fn func(*window.Window) error) error { return db.Last(context.Background(), scanBatch+3, fn) })
	if len(got) != scanBatch+3 || got[0].Stats.Frames != n-scanBatch-3 {
		t.Fatalf("Last: %d windows, first frames %d", len(got), got[0].Stats.Frames)
	}
}

func TestPutRejects(t *testing.T) {
	db := openTemp(t)
	tests := []struct {
		name string
		w    window.Window
	}{
		{"fractional start", window.Window{Start: t0.Add(time.Millisecond), Length: time.Second}},
		{"zero length", window.Window{Start: t0}},
		{"fractional length", window.Window{Start: t0, Length: 1500 * time.Millisecond}},
		{"before 1970", window.Window{Start: time.Unix(-20, 0), Length: 10 * time.Second}},
		{"invalid address", window.Window{Start: t0, Length: time.Second, Remotes: []window.Remote{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := &window.Window{Start: t0.Add(-time.Minute), Length: time.Minute}
			if err := db.Put([]*window.Window{ok, &tt.w}); err == nil {
				t.Fatal("no error")
			}
			if _, _, n, _ := db.Bounds(); n != 0 {
				t.Fatal("a rejected batch wrote something")
			}
		})
	}
}

func TestMeta(t *testing.T) {
	db := openTemp(t)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if got := m.Get(keyFormat); binary.BigEndian.Uint32(got) != formatVersion {
			t.Errorf("format = %x", got)
		}
		if _, err := time.Parse(time.RFC3339, string(m.Get(keyCreated))); err != nil {
			t.Errorf("created: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(upgrades) != formatVersion-1 {
		t.Fatalf("%d upgrade steps for format %d", len(upgrades), formatVersion)
	}
	if fi, err := os.Stat(db.Path()); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if sz, err := db.Size(); err != nil || sz == 0 {
		t.Fatalf("Size = %d, %v", sz, err)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	for i := range 3 {
		db, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Put([]*window.Window{{Start: t0.Add(time.Duration(i) * time.Minute), Length: time.Minute}}); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	db, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, n, _ := db.Bounds(); n != 3 {
		t.Fatalf("n = %d", n)
	}
	if err := db.Put([]*window.Window{{Start: t0, Length: time.Minute}}); err == nil {
		t.Fatal("Put on a read-only handle succeeded")
	}
}

func TestReadOnlyNoData(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	_, err := Open(missing, Options{ReadOnly: true})
	if !errors.Is(err, ErrNoData) {
		t.Fatalf("err = %v, want ErrNoData", err)
	}
	if _, statErr := os.Stat(missing); !os.IsNotExist(statErr) {
		t.Fatal("a read-only open created the file")
	}
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if _, err := Open(empty, Options{ReadOnly: true}); !errors.Is(err, ErrNoData) {
		t.Fatalf("empty file: err = %v, want ErrNoData", err)
	}
	// A zero-length file is new: a read-write open initialises it.
	db, err := Open(empty, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// writeDstwatch makes a dstwatch file with a few windows and returns its
// bytes.
func writeDstwatch(t *testing.T, path string, windows int) []byte {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ws []*window.Window
	for i := range windows {
		w := sampleWindow(t0.Add(time.Duration(i) * 20 * time.Second))
		for j := range 50 {
			w.Remotes = append(w.Remotes, window.Remote{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j)}),
				Counts: window.Counts{TxBytes: 1}})
		}
		sortRemotes(w.Remotes)
		ws = append(ws, w)
	}
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeDstwatch(t, filepath.Join(dir, "good.db"), 200)
	if len(good) < 8*4096 {
		t.Fatalf("test database too small to truncate meaningfully: %d bytes", len(good))
	}

	// A foreign bbolt file: valid bbolt, someone else's bucket.
	foreignPath := filepath.Join(dir, "foreign-src.db")
	fb, err := bolt.Open(foreignPath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fb.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("other"))
		return b.Put([]byte("k"), []byte("v"))
	})
	fb.Close()
	foreign, _ := os.ReadFile(foreignPath)

	// A foreign bbolt file that skips freelist sync: bbolt's own
	// read-write open would write a freelist into it.
	noflPath := filepath.Join(dir, "nofl-src.db")
	nb, err := bolt.Open(noflPath, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	nb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
	nb.Close()
	nofl, _ := os.ReadFile(noflPath)

	// Our file with a corrupted meta page checksum on both meta pages.
	badMeta := append([]byte(nil), good...)
	badMeta[16+20] ^= 0xff
	badMeta[4096+16+20] ^= 0xff

	// Our file with its last branch or leaf page scribbled over.
	scribbled := append([]byte(nil), good...)
	for off := len(good) - 4096; off > 2*4096; off -= 4096 {
		if flags := good[off+8]; flags == 0x01 || flags == 0x02 { // branch, leaf
			for i := off; i < off+4096; i++ {
				scribbled[i] = 0xa5
			}
			break
		}
	}

	garbage := make([]byte, 10000)
	for i := range garbage {
		garbage[i] = byte(i*7 + i/13)
	}

	tests := []struct {
		name    string
		content []byte
		want    error
	}{
		{"garbage", garbage, ErrNotDstwatch},
		{"text", []byte("listen 0.0.0.0:80\nthis is somebody's config file\n"), ErrNotDstwatch},
		{"tiny", []byte("x"), ErrNotDstwatch},
		{"foreign bbolt", foreign, ErrNotDstwatch},
		{"foreign bbolt without freelist", nofl, ErrNotDstwatch},
		{"truncated", good[:len(good)/2], ErrDamaged},
		{"truncated to meta pages", good[:2*4096], ErrDamaged},
		{"bad meta pages", badMeta, ErrDamaged},
		{"scribbled page", scribbled, ErrDamaged},
	}
	for _, tt := range tests {
		for _, ro := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readonly=%v", tt.name, ro), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "db")
				if err := os.WriteFile(path, tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
				before := fileSum(t, path)
				db, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					db.Close()
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error does not name the file: %v", err)
				}
				if fileSum(t, path) != before {
					t.Fatal("the file was modified")
				}
				t.Log(err)
			})
		}
	}
}

func TestTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	writeDstwatch(t, path, 1)
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error { return putFormat(tx.Bucket(bucketMeta), 99) })
	b.Close()
	before := fileSum(t, path)
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		if !errors.Is(err, ErrTooNew) {
			t.Fatalf("readonly=%v: err = %v, want ErrTooNew", ro, err)
		}
		t.Log(err)
	}
	if fileSum(t, path) != before {
		t.Fatal("the file was modified")
	}
}

// TestUpgrade runs the upgrade path with a fake next format whose step
// adds a bucket, as a real next format would.
func TestUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	writeDstwatch(t, path, 3)

	saved := upgrades
	defer func() { upgrades = saved }()
	calls := 0
	upgrades = append(slices.Clone(saved), func(tx *bolt.Tx, _ caps) error {
		calls++
		_, err := tx.CreateBucket([]byte("ports"))
		return err
	})
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error { return migrate(tx, formatVersion, formatVersion+1, caps{}) })
	if err2 := b.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("ports")) == nil {
			t.Error("upgrade step did not run")
		}
		return nil
	}); err2 != nil {
		t.Fatal(err2)
	}
	b.Close()
	if err != nil || calls != 1 {
		t.Fatalf("upgrade: %v after %d calls", err, calls)
	}
	// This version refuses the upgraded file.
	if _, err := Open(path, Options{}); !errors.Is(err, ErrTooNew) {
		t.Fatalf("err = %v, want ErrTooNew", err)
	}
}

// TestLocked checks that bbolt's flock excludes a second open of the same
// file in this process too (flock locks belong to the open file
// description, not to the process).
func TestLocked(t *testing.T) {
	db := openTemp(t)
	for _, ro := range []bool{true, false} {
		start := time.Now()
		_, err := Open(db.Path(), Options{ReadOnly: ro, Timeout: 200 * time.Millisecond})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("readonly=%v: err = %v, want ErrLocked", ro, err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("gave up after %v, before the timeout", d)
		}
		if !strings.Contains(err.Error(), "is the dstwatch daemon running?") {
			t.Errorf("message: %v", err)
		}
	}
	// Two read-only handles share the lock.
	path := db.Path()
	db.Close()
	r1, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
}

// TestLockedOtherProcess holds the file from a child process, the case
// that matters in production: the daemon holds it, 'dstwatch query' opens.
func TestLockedOtherProcess(t *testing.T) {
	if path := os.Getenv("DSTWATCH_STORAGE_HOLD"); path != "" {
		db, err := Open(path, Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("holding")
		time.Sleep(10 * time.Second)
		db.Close()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "d.db")
	writeDstwatch(t, path, 1)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedOtherProcess$")
	cmd.Env = append(os.Environ(), "DSTWATCH_STORAGE_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "holding") {
		t.Fatalf("child: %q", buf[:n])
	}
	_, err = Open(path, Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
}

package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// bigWindow has n remotes, a quarter of them IPv6, with realistic count
// sizes, sorted as rotate hands them over.
func bigWindow(start time.Time, n int) *window.Window {
	w := &window.Window{Start: start, Length: 20 * time.Second, GeoBuild: time.Unix(1740000000, 0).UTC(),
		Stats: window.Stats{Frames: 5_000_000, Tallied: 4_900_000, Drops: 12}}
	w.Remotes = make([]window.Remote, n)
	for i := range w.Remotes {
		r := &w.Remotes[i]
		if i%4 == 3 {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			binary.BigEndian.PutUint32(a[12:], uint32(i))
			r.Addr = netip.AddrFrom16(a)
		} else {
			r.Addr = netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		}
		r.Country = []string{"US", "DE", "CN", "BR", ""}[i%5]
		r.ASN = uint32(i%3000 + 1)
		r.ASOrg = fmt.Sprintf("AS org %d", r.ASN)
		p := uint64(n-i) + 3
		r.Counts = window.Counts{TxPackets: p, TxBytes: p * 700, RxPackets: p / 2, RxBytes: p * 90}
	}
	sortRemotes(w.Remotes)
	return w
}

func TestEncodingSize(t *testing.T) {
	w := bigWindow(t0, 10_000)
	n := len(MarshalWindow(w))
	t.Logf("10k remotes: %d bytes, %.1f bytes per remote", n, float64(n)/10_000)
	if n > 300_000 {
		t.Fatalf("10k-remote window encodes to %d bytes, want at most 300 KB", n)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good := MarshalWindow(sampleWindow(t0))
	key := windowKey(t0)
	// A remotes section claiming a billion remotes in a few bytes.
	hugePayload := append(binary.AppendUvarint(nil, 1<<30), make([]byte, 20)...)
	huge := append([]byte{valueVersion, secHeader, 2, 20, 0, secRemotes, byte(len(hugePayload))}, hugePayload...)
	tests := []struct {
		name     string
		key, val []byte
	}{
		{"short key", key[:7], good},
		{"empty value", key, nil},
		{"unknown encoding version", key, append([]byte{9}, good[1:]...)},
		{"truncated", key, good[:len(good)-1]},
		{"no header", key, []byte{valueVersion}},
		{"duplicate section", key, append(append([]byte(nil), good...), good[1:]...)},
		{"section past end", key, []byte{valueVersion, secHeader, 100, 1}},
		{"zero length window", key, []byte{valueVersion, secHeader, 2, 0, 0}},
		{"remote count beyond bytes", key, huge},
		{"bad family", key, []byte{valueVersion, secHeader, 2, 20, 0, secRemotes, 13, 1, 5, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w, err := UnmarshalWindow(tt.key, tt.val); err == nil {
				t.Fatalf("no error, got %+v", w)
			}
		})
	}
}

// seedWindows are the valid encodings in testdata/fuzz/FuzzUnmarshalWindow.
func seedWindows() []*window.Window {
	small := sampleWindow(t0)
	empty := &window.Window{Start: t0, Length: time.Minute}
	geo := sampleWindow(t0.Add(time.Hour))
	geo.GeoBuild = time.Unix(1740000000, 0).UTC()
	rollup := bigWindow(t0, 30)
	rollup.Length, rollup.Capped, rollup.Groups = time.Hour, 12, groupsOf(rollup.Remotes)
	for i := range rollup.Groups {
		rollup.Groups[i].ASOrg = ""
	}
	return []*window.Window{small, empty, geo, bigWindow(t0, 40), rollup}
}

// fuzzSeedDir holds FuzzUnmarshalWindow's corpus: the valid-N seeds
// writeFuzzSeeds writes, and whatever inputs the fuzzer found and kept.
var fuzzSeedDir = filepath.Join("testdata", "fuzz", "FuzzUnmarshalWindow")

// writeFuzzSeeds writes seedWindows' encodings into dir as valid-N files
// in the fuzzer's corpus format and returns their names.
func writeFuzzSeeds(t *testing.T, dir string) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, w := range seedWindows() {
		name := fmt.Sprintf("valid-%d", i)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", windowKey(w.Start), MarshalWindow(w))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// The committed valid seeds are what the encoder writes today, so that the
// fuzzer starts from the current format rather than an old one it
// rejects at the version byte. DSTWATCH_WRITE_SEEDS=1 rewrites them.
func TestFuzzSeeds(t *testing.T) {
	const rewrite = "DSTWATCH_WRITE_SEEDS=1 go test -run TestFuzzSeeds ./storage/"
	if os.Getenv("DSTWATCH_WRITE_SEEDS") != "" {
		names := writeFuzzSeeds(t, fuzzSeedDir)
		// Seeds beyond today's count would go on seeding an old shape.
		old, _ := filepath.Glob(filepath.Join(fuzzSeedDir, "valid-*"))
		for _, p := range old {
			if !slices.Contains(names, filepath.Base(p)) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		return
	}
	tmp := t.TempDir()
	names := writeFuzzSeeds(t, tmp)
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(fuzzSeedDir, name))
		switch {
		case err != nil:
			t.Errorf("seed %s: %v; rewrite the seeds with %s", name, err, rewrite)
		case string(got) != string(want):
			t.Errorf("seed %s in %s is not what MarshalWindow writes today; rewrite the seeds with %s", name, fuzzSeedDir, rewrite)
		}
	}
	committed, _ := filepath.Glob(filepath.Join(fuzzSeedDir, "valid-*"))
	for _, p := range committed {
		if !slices.Contains(names, filepath.Base(p)) {
			t.Errorf("%s is not one of seedWindows' %d seeds; rewrite the seeds with %s", p, len(names), rewrite)
		}
	}
}

func FuzzUnmarshalWindow(f *testing.F) {
	for _, w := range seedWindows() {
		f.Add(windowKey(w.Start), MarshalWindow(w))
	}
	f.Fuzz(func(t *testing.T, key, val []byte) {
		w, err := UnmarshalWindow(key, val)
		if err != nil {
			return
		}
		// Every decoded remote took at least minRemoteLen bytes, so the
		// allocation is bounded by the input.
		if len(w.Remotes)*minRemoteLen > len(val) {
			t.Fatalf("%d remotes from %d bytes", len(w.Remotes), len(val))
		}
		// What decodes must re-encode to something that decodes the same.
		w2, err := UnmarshalWindow(key, MarshalWindow(w))
		if err != nil {
			t.Fatalf("re-encoding failed to decode: %v", err)
		}
		if !reflect.DeepEqual(w, w2) {
			t.Fatalf("round trip changed the window:\n%+v\n%+v", w, w2)
		}
	})
}

func BenchmarkMarshalWindow(b *testing.B) {
	w := bigWindow(t0, 100_000)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(MarshalWindow(w))
	}
	b.ReportMetric(float64(n)/100_000, "B/remote")
}

func BenchmarkUnmarshalWindow(b *testing.B) {
	w := bigWindow(t0, 100_000)
	key, val := windowKey(w.Start), MarshalWindow(w)
	b.SetBytes(int64(len(val)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalWindow(key, val); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUvarintIsBinaryUvarint: the word-at-a-time uvarint reads what
// binary.Uvarint reads, value and length, whatever follows the varint, and
// refuses what it refuses (truncated, too long, overflowing).
func TestUvarintIsBinaryUvarint(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	check := func(p []byte) {
		t.Helper()
		v, n := uvarint(p)
		wv, wn := binary.Uvarint(p)
		if v != wv || n != wn {
			t.Fatalf("uvarint(% x) = %d, %d; binary.Uvarint: %d, %d", p, v, n, wv, wn)
		}
		// decodeCounts reads four of them the same way.
		var want [4]uint64
		rest, wok := p, true
		for k := range want {
			var n int
			if want[k], n = binary.Uvarint(rest); n <= 0 {
				wok = false
				break
			}
			rest = rest[n:]
		}
		c, got, ok := decodeCounts(p)
		if ok != wok || ok && (c != window.Counts{TxPackets: want[0], TxBytes: want[1], RxPackets: want[2], RxBytes: want[3]} || len(got) != len(rest)) {
			t.Fatalf("decodeCounts(% x) = %+v, %d left, %v; want %v, %d left, %v", p, c, len(got), ok, want, len(rest), wok)
		}
	}
	for i := range 200_000 {
		var p []byte
		for range 1 + rng.IntN(5) {
			p = binary.AppendUvarint(p, rng.Uint64()>>rng.IntN(64))
		}
		for range rng.IntN(12) {
			p = append(p, byte(rng.Uint32()))
		}
		check(p)
		check(p[:rng.IntN(len(p)+1)])
		if i%4 == 0 { // non-minimal encodings, and bytes with the continuation bit only
			q := make([]byte, 1+rng.IntN(14))
			for j := range q {
				q[j] = byte(rng.Uint32()) | 0x80
			}
			if rng.IntN(2) == 0 {
				q[rng.IntN(len(q))] &= 0x7f
			}
			check(q)
		}
	}
	for _, p := range [][]byte{nil, {0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0xff}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff}} {
		check(p)
	}
}

// BenchmarkUnmarshalWindowReuse is decoding alone, into a window whose
// remotes are reused, as a span with SpanOptions.Reuse decodes.
func BenchmarkUnmarshalWindowReuse(b *testing.B) {
	w := bigWindow(t0, 100_000)
	key, val := windowKey(w.Start), MarshalWindow(w)
	b.SetBytes(int64(len(val)))
	b.ReportAllocs()
	into := &window.Window{}
	for b.Loop() {
		if err := unmarshalInto(into, key, val); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/remote")
}

// TestStatsSectionOlderAndNewer: a stats section written before the
// oversize and spoofed counters existed reads them as 0, and today's section
// carries them.
func TestStatsSectionOlderAndNewer(t *testing.T) {
	start := time.Unix(1_800_000_000, 0).UTC()
	w := &window.Window{Start: start, Length: 20 * time.Second,
		Stats: window.Stats{Frames: 10, Tallied: 4, Malformed: 1, Oversize: 2, Spoofed: 3}}
	got, err := UnmarshalWindow(windowKey(start), MarshalWindow(w))
	if err != nil {
		t.Fatal(err)
	}
	if got.Stats != w.Stats {
		t.Fatalf("stats %+v, want %+v", got.Stats, w.Stats)
	}
	// The value an older version wrote: header and the ten counters it had.
	var stats []byte
	for _, v := range []uint64{7, 5, 1, 0, 1, 0, 0, 3, 0, 0} {
		stats = binary.AppendUvarint(stats, v)
	}
	val := []byte{1}
	val = appendSection(val, secHeader, []byte{20, 0})
	val = appendSection(val, secStats, stats)
	old, err := UnmarshalWindow(windowKey(start), val)
	if err != nil {
		t.Fatal(err)
	}
	if want := (window.Stats{Frames: 7, Tallied: 5, NonIP: 1, Malformed: 1, Drops: 3}); old.Stats != want {
		t.Fatalf("old stats %+v, want %+v", old.Stats, want)
	}
}

// A window's partial set is appended after Overflow: today's value carries
// it, a section of thirteen counters (before it existed) reads it as none,
// merging joins the sets, and a value beyond a byte is refused as corrupt.
func TestStatsPartial(t *testing.T) {
	start := time.Unix(1_800_000_000, 0).UTC()
	w := &window.Window{Start: start, Length: 20 * time.Second,
		Stats: window.Stats{Frames: 10, Tallied: 10, Overflow: 4, Partial: window.PartialStart | window.PartialOutage}}
	got, err := UnmarshalWindow(windowKey(start), MarshalWindow(w))
	if err != nil {
		t.Fatal(err)
	}
	if got.Stats != w.Stats {
		t.Fatalf("stats %+v, want %+v", got.Stats, w.Stats)
	}
	section := func(vs ...uint64) []byte {
		var stats []byte
		for _, v := range vs {
			stats = binary.AppendUvarint(stats, v)
		}
		val := []byte{1}
		val = appendSection(val, secHeader, []byte{20, 0})
		return appendSection(val, secStats, stats)
	}
	old, err := UnmarshalWindow(windowKey(start), section(7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2))
	if err != nil || old.Stats != (window.Stats{Frames: 7, Tallied: 7, Overflow: 2}) {
		t.Fatalf("thirteen counters: %+v %v", old.Stats, err)
	}
	if _, err := UnmarshalWindow(windowKey(start), section(7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 256)); !errors.Is(err, errCorrupt) {
		t.Errorf("partial 256: %v", err)
	}

	d, err := Open(filepath.Join(t.TempDir(), "p.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	stop := &window.Window{Start: start, Length: 20 * time.Second, Stats: window.Stats{Partial: window.PartialStop}}
	again := &window.Window{Start: start, Length: 20 * time.Second, Stats: window.Stats{Partial: window.PartialStart}}
	if err := d.Put([]*window.Window{stop}); err != nil {
		t.Fatal(err)
	}
	if err := d.Put([]*window.Window{again}); err != nil {
		t.Fatal(err)
	}
	var merged window.Partial
	d.Last(context.Background(), 1, func(w *window.Window) error { merged = w.Stats.Partial; return nil })
	if merged != window.PartialStart|window.PartialStop {
		t.Errorf("merged partial %q, want start,stop", merged)
	}
}

package capture

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mapTestRecs is more than a map chunk of frames, so that reading the file
// remaps several times and records straddle chunk boundaries.
func mapTestRecs() ([]rec, []wantEv) {
	var recs []rec
	var want []wantEv
	for i := range 30000 {
		n := 100 + i%1300
		recs = append(recs, rec{ts: int64(i) * 1000, data: eth(etherIPv4, ipv4(local4, far4, n, v4opts{}))})
		want = append(want, wantEv{int64(i) * 1000, Egress, uint32(20 + n), far4})
	}
	return recs, want
}

func TestMappedFileAcrossChunks(t *testing.T) {
	recs, want := mapTestRecs()
	c := testClassifier()
	le := binary.LittleEndian
	pcap := pcapFile(le, false, 1, recs)
	ng := cat(ngSHBBytes(le), ngIDBBytes(le, ngIDBSpec{link: 1, tsres: 9}))
	for _, r := range recs {
		ng = append(ng, ngEPBBytes(le, 0, uint64(r.ts), r.data, 0)...)
	}
	for name, b := range map[string][]byte{"x.pcap": pcap, "x.pcapng": ng} {
		if len(b) < 3*mapChunk {
			t.Fatalf("%s: %d bytes, want more than three map chunks", name, len(b))
		}
		path := writeTemp(t, name, b)
		f, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.r.(*mapReader); !ok {
			t.Fatalf("%s: read through %T, want a mapping", name, f.r)
		}
		f.Close()
		got, err := runFile(t, path, c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkEvents(t, got, want)
	}
}

// TestPipeReadsLikeFile: a capture that cannot be mapped (a named pipe, as
// `--read /dev/stdin` gives) is read through a buffer, with the same events.
func TestPipeReadsLikeFile(t *testing.T) {
	recs, want := mapTestRecs()
	b := pcapFile(binary.LittleEndian, true, 1, recs)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = w.Write(b)
			w.Close()
		}
		werr <- err
	}()
	f, err := OpenFile(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.r.(bufSource); !ok {
		t.Fatalf("fifo read through %T, want a buffer", f.r)
	}
	got, err := runOpened(f, testClassifier())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	checkEvents(t, got, want)
}

// TestMappedFileShrinks: a capture cut short by someone else while it is
// read. Cut before its next chunk is mapped, the read ends where the file
// now ends, exactly as a truncated file's; cut inside the chunk being read,
// a mapped page past the new end faults, and the replay must end with an
// error, not a crash.
func TestMappedFileShrinks(t *testing.T) {
	recs, want := mapTestRecs()
	full := pcapFile(binary.LittleEndian, false, 1, recs)
	cut := len(full) / 2
	complete := 0 // records wholly before the cut
	for off := 24; complete < len(recs); complete++ {
		off += 16 + len(recs[complete].data)
		if off > cut {
			break
		}
	}

	path := writeTemp(t, "shrink.pcap", full)
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(path, int64(cut)); err != nil {
		t.Fatal(err)
	}
	got, err := runOpened(f, testClassifier())
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut before the chunk: err = %v, want ErrTruncated", err)
	}
	checkEvents(t, got, want[:complete])

	path = writeTemp(t, "shrink2.pcap", full)
	f2, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if _, err := f2.r.Peek(16); err != nil { // maps the first chunk
		t.Fatal(err)
	}
	if err := os.Truncate(path, mapChunk/3); err != nil {
		t.Fatal(err)
	}
	_, err = runOpened(f2, testClassifier())
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "shrank while it was read") {
		t.Fatalf("cut inside the chunk: err = %v, want the fault reported as truncation", err)
	}
}

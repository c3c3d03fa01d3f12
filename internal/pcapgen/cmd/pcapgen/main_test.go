package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "a.pcapng")
	args := []string{"-o", out, "-n", "1000", "-remotes", "50", "-format", "pcapng", "-link", "sll2", "-local", "198.51.100.1, 2001:db8::1", "-span", "1m", "-start", "2025-03-01T00:00:00Z"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	if n != 1000 {
		t.Fatalf("%d packets, want 1000", n)
	}

	// Same flags, same bytes: the bench relies on reproducible files.
	out2 := filepath.Join(dir, "b.pcapng")
	args[1] = out2
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if string(a) != string(b) {
		t.Fatal("two runs with the same flags differ")
	}

	for _, bad := range [][]string{{}, {"-o", out, "-format", "cap"}, {"-o", out, "-link", "fddi"}, {"-o", out, "-local", "x"}, {"-o", out, "-start", "yesterday"}, {"-o", out, "-mix", "calm"}} {
		if err := run(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

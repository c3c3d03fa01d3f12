package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/internal/pcapgen"
	"github.com/dstwatch/dstwatch/storage"
)

// flipValueByte flips one byte inside the stored value of the window at
// start, the first one whose flip makes the value undecodable, as a bad
// disk sector or a stray write would. bbolt's checks do not see it.
func flipValueByte(t *testing.T, db string, start time.Time) {
	t.Helper()
	b, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := make([]byte, 8)
	for i, s := 0, uint64(start.Unix()); i < 8; i++ {
		key[7-i] = byte(s >> (8 * i))
	}
	err = b.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("windows"))
		v := bk.Get(key)
		if v == nil {
			t.Fatalf("no window %v stored", start)
		}
		// Past the version byte and the header: a byte in the varints of
		// the stats or remotes, not the version a reader checks first.
		for i := 4; i < len(v); i++ {
			bad := append([]byte(nil), v...)
			bad[i] ^= 0xff
			if _, err := storage.UnmarshalWindow(key, bad); err != nil {
				return bk.Put(key, bad)
			}
		}
		t.Fatalf("no single flipped byte makes window %v undecodable", start)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// One damaged window value must not stop storing (every later roll-up
// failed) nor fail queries over it: it is skipped, logged and named in the
// query's notes, and compact drops it.
func TestDamagedValueSkipped(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	replay := func(pkts []pcapgen.Packet) string {
		t.Helper()
		file := filepath.Join(dir, "in.pcap")
		if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet, pkts); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--socket", "none").CombinedOutput()
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		return string(out)
	}
	first := pcapgen.Mixed(3, 1500, 100, testLocal, testStart, 3*time.Minute, pcapgen.LinkEthernet)
	replay(first)
	bad := time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC)
	flipValueByte(t, db, bad)

	// A later hour: storing it seals (rolls up) the damaged window's hour.
	later := testStart.Add(50 * time.Minute)
	log := replay(pcapgen.Mixed(4, 500, 50, testLocal, later, time.Minute, pcapgen.LinkEthernet))
	if !strings.Contains(log, "damaged value") || !strings.Contains(log, "window 2026-11-22T13:20:00Z") {
		t.Errorf("the daemon's log does not name the damaged window:\n%s", log)
	}
	want := len(pcapgen.Truth(first, testLocal, nil, 20*time.Second)) - 1 +
		len(pcapgen.Truth(pcapgen.Mixed(4, 500, 50, testLocal, later, time.Minute, pcapgen.LinkEthernet), testLocal, nil, 20*time.Second))
	if got := len(readAll(t, db)); got != want {
		t.Errorf("%d windows readable, want %d (all but the damaged one)", got, want)
	}

	note := "damaged in the database and left out"
	for _, rng := range [][2]string{
		{"2026-11-22T13:19:00Z", "2026-11-22T13:25:00Z"}, // raw windows
		{"2026-11-22T13:00:00Z", "2026-11-22T15:00:00Z"}, // the hourly rollup the window is missing from
	} {
		code, out, stderr := runCmd(t, "query", "--db", db, "--from", rng[0], "--to", rng[1])
		if code != 0 || !strings.Contains(out, "note: "+note) || !strings.Contains(out, "window 2026-11-22T13:20:00Z") {
			t.Errorf("query %v: exit %d, no note naming the damaged window:\n%s%s", rng, code, out, stderr)
		}
		code, _, stderr = runCmd(t, "query", "--db", db, "--format", "json", "--from", rng[0], "--to", rng[1])
		if code != 0 || !strings.Contains(stderr, note) {
			t.Errorf("query --format json %v: exit %d, stderr %q", rng, code, stderr)
		}
	}

	if code, out, stderr := runCmd(t, "query", "--db", db, "--last", "1000"); code != 0 || !strings.Contains(out, "note: "+note) {
		t.Errorf("query --last: exit %d, no note naming the damaged window:\n%s%s", code, out, stderr)
	}

	code, out, stderr := runCmd(t, "report", "--db", db, "--from", "2026-11-22T13:00:00Z", "--to", "2026-11-22T15:00:00Z")
	if code != 0 || !strings.Contains(out, "damaged and left out") || !strings.Contains(out, "window 2026-11-22T13:20:00Z") {
		t.Errorf("report: exit %d, no note naming the damaged window:\n%s%s", code, out, stderr)
	}

	code, out, stderr = runCmd(t, "compact", "--db", db)
	if code != 0 || !strings.Contains(out, "dropped damaged window 2026-11-22T13:20:00Z") {
		t.Fatalf("compact: exit %d: %s%s", code, out, stderr)
	}
	code, out, stderr = runCmd(t, "query", "--db", db, "--from", "2026-11-22T13:19:00Z", "--to", "2026-11-22T13:25:00Z")
	if code != 0 || strings.Contains(out, note) {
		t.Errorf("query after compact: exit %d, still a note:\n%s%s", code, out, stderr)
	}
	// Storing into the damaged window's place works too (the same capture again).
	replay(first)
	if got := len(readAll(t, db)); got != want+1 {
		t.Errorf("%d windows after replaying the first capture again, want %d", got, want+1)
	}
}

// A running daemon answers a query over a damaged window through its API
// with the same note, and status lists the damaged value.
func TestDamagedValueLiveStatus(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	file := filepath.Join(dir, "in.pcap")
	if err := pcapgen.Write(file, pcapgen.PcapMicro, pcapgen.LinkEthernet,
		pcapgen.Mixed(3, 1500, 100, testLocal, testStart, 3*time.Minute, pcapgen.LinkEthernet)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary(t), "run", "--read", file, "--local", "198.51.100.1,2001:db8::1", "--db", db, "--socket", "none").CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	flipValueByte(t, db, time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC))
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db)
	defer d.stop(t)
	code, out, stderr := runCmd(t, "query", "--db", db, "--from", "2026-11-22T13:19:00Z", "--to", "2026-11-22T13:25:00Z")
	if code != 0 || !strings.Contains(out, "note: damaged in the database and left out") || !strings.Contains(out, "window 2026-11-22T13:20:00Z") {
		t.Errorf("query through the daemon: exit %d, no note naming the damaged window:\n%s%s", code, out, stderr)
	}
	code, out, stderr = runCmd(t, "query", "--db", db, "--last", "100")
	if code != 0 || !strings.Contains(out, "window 2026-11-22T13:20:00Z") {
		t.Errorf("query --last through the daemon: exit %d, no note naming the damaged window:\n%s%s", code, out, stderr)
	}
	code, out, stderr = runCmd(t, "status", "--db", db)
	if code != 0 || !strings.Contains(out, "damaged") || !strings.Contains(out, "window 2026-11-22T13:20:00Z") || !strings.Contains(out, "dstwatch compact") {
		t.Errorf("status: exit %d, no damaged line:\n%s%s", code, out, stderr)
	}
	if !strings.Contains(d.stderr.String(), "damaged value in the database") {
		t.Errorf("the daemon's log does not say it met a damaged value:\n%s", d.stderr.String())
	}
}

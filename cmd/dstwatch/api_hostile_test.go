package main

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

// bigDB writes n one-minute windows of 40 remotes each, ending an hour
// ago, so that one /v1/windows answer is megabytes: far more than a unix
// socket buffers for a client that does not read.
func bigDB(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.db")
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now().Add(-time.Hour - time.Duration(n)*time.Minute).Truncate(time.Minute)
	var ws []*storage.Window
	for i := range n {
		w := &storage.Window{Start: start.Add(time.Duration(i) * time.Minute), Length: time.Minute}
		for j := range 40 {
			c := rotate.Counts{TxPackets: uint64(i + j + 1), TxBytes: uint64(1000 * (i + j + 1))}
			w.Remotes = append(w.Remotes, storage.Remote{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(j + 1)}), Country: "NL", Counts: c})
			w.Stats.Tallied += c.TxPackets
		}
		ws = append(ws, w)
	}
	if err := d.Put(ws); err != nil {
		t.Fatal(err)
	}
	return path
}

// stalledClients opens n connections to sock that each ask for every
// window and never read the answer.
func stalledClients(t *testing.T, sock string, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("GET /v1/windows?last=100000 HTTP/1.1\r\nHost: dstwatch\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}
}

// Clients that ask for much and never read must not hold up anyone else:
// status and query answer within a second while they hang on.
func TestAPIStalledClients(t *testing.T) {
	p := netnstest.New(t)
	db := bigDB(t, 2500)
	sock := filepath.Join(filepath.Dir(db), "dstwatch.sock")
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1m")
	defer d.stop(t)

	stalledClients(t, sock, 8)
	time.Sleep(300 * time.Millisecond) // let the server fill their buffers
	for _, args := range [][]string{
		{"status", "--db", db},
		{"query", "--db", db, "--last", "5", "--format", "json"},
		{"query", "--db", db, "--from", "-30h", "--by", "country"},
		{"status", "--db", db},
	} {
		start := time.Now()
		done := make(chan struct{})
		var code int
		var out, errs string
		go func() {
			code, out, errs = runCmd(t, args...)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: no answer within 10s while clients stall", args)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%v took %v while clients stall, want under a second", args, took)
		}
		if code != 0 || out == "" {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		if args[0] == "query" && strings.Contains(args[len(args)-1], "json") && !strings.Contains(out, "198.51.100.1") {
			t.Errorf("%v: answer lacks the stored remotes:\n%.300s", args, out)
		}
	}
}

package main

import (
	"bytes"
	bin "encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/api"
	dstwatchd "github.com/dstwatch/dstwatch/daemon"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// historyStart is a UTC midnight; historyWindows cover three days from it.
var historyStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// historyWindows are 15-minute windows over three days, each with a few
// remotes of a pool of 12 (IPv4 and IPv6, several countries and ASes, one
// unknown), an other row now and then, and drops and folds in some.
func historyWindows() []*window.Window {
	var pool []window.Remote
	for i := range 12 {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
		if i%3 == 2 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
		}
		r := window.Remote{Addr: a, Country: []string{"NL", "DE", "JP", "US"}[i%4], ASN: uint32(64496 + i%5)}
		r.ASOrg = []string{"Alpha", "Beta", "Gamma", "Delta", "Epsilon"}[i%5]
		if i == 11 {
			r.Country, r.ASN, r.ASOrg = "", 0, ""
		}
		pool = append(pool, r)
	}
	var ws []*window.Window
	for i := range 3 * 96 {
		w := &window.Window{Start: historyStart.Add(time.Duration(i) * 15 * time.Minute), Length: 15 * time.Minute}
		for j := range 3 + i%5 {
			r := pool[(i*7+j*5)%len(pool)]
			n := uint64(1 + (i*13+j*31)%97)
			r.Counts = window.Counts{TxPackets: n, TxBytes: n * 1000, RxPackets: n / 2, RxBytes: n * 70}
			w.Remotes = append(w.Remotes, r)
			w.Stats.Tallied += r.TxPackets + r.RxPackets
		}
		if i%7 == 0 {
			w.Other = window.Counts{TxPackets: 3, TxBytes: 300, RxPackets: 1, RxBytes: 60}
			w.Stats.Folded = 2
		}
		if i%50 == 3 {
			w.Stats.Drops = 11
		}
		w.Stats.Frames = w.Stats.Tallied
		ws = append(ws, w)
	}
	return ws
}

func historyDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Put(historyWindows()); err != nil {
		t.Fatal(err)
	}
	return path
}

// rawAnswer is what the raw windows starting in [from, to) add up to.
func rawAnswer(t *testing.T, from, to time.Time, by query.By) string {
	t.Helper()
	var ws []*window.Window
	for _, w := range historyWindows() {
		if !w.Start.Before(from) && w.Start.Before(to) {
			ws = append(ws, w)
		}
	}
	rows, err := query.Aggregate(ws, by, query.Filter{}, query.SortBytes)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := encodeJSON(&buf, query.RowsJSON(rows, by)); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// A range over several days is answered from daily and hourly rollups and
// raw windows at its edges, and gives exactly the raw windows' rows.
func TestQueryTiersEqualRaw(t *testing.T) {
	db := historyDB(t)
	from := historyStart.Add(7*time.Hour + 45*time.Minute) // a window, 16 hours, a day, 13 hours, two windows
	to := historyStart.Add(2*24*time.Hour + 13*time.Hour + 30*time.Minute)
	for _, by := range []query.By{query.ByRemote, query.ByCountry, query.ByASN} {
		code, out, stderr := runCmd(t, "query", "--db", db, "--by", string(by), "--format", "json", "--from", rfc(from), "--to", rfc(to))
		if code != 0 {
			t.Fatalf("by %s: exit %d: %s", by, code, stderr)
		}
		if want := rawAnswer(t, from, to, by); out != want {
			t.Errorf("by %s from the tiers differs from the raw windows:\n--- got\n%s\n--- want\n%s", by, out, want)
		}
		if stderr != "" {
			t.Errorf("by %s: stderr %q", by, stderr)
		}
	}
	code, out, stderr := runCmd(t, "query", "--db", db, "--by", "country", "--utc", "--from", rfc(from), "--to", rfc(to))
	if code != 0 {
		t.Fatal(stderr)
	}
	header := "1 daily rollup, 29 hourly rollups and 3 windows from 2026-03-01 07:45:00 UTC to 2026-03-03 13:30:00 UTC"
	if !strings.HasPrefix(out, header+"\n") || strings.Contains(out, "resolution") {
		t.Errorf("table header: want %q, no resolution note:\n%s", header, out)
	}
}

// Where raw windows were pruned, an edge inside a pruned hour is rounded
// to the hour, and every output says at which resolution it answered.
func TestQueryPrunedRangeSaysResolution(t *testing.T) {
	db := historyDB(t)
	d, err := storage.Open(db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	newest := historyStart.Add(3*24*time.Hour - 15*time.Minute)
	if _, err := d.PruneTiers(newest, storage.Retention{Windows: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	from := historyStart.Add(5*time.Hour + 30*time.Minute) // raw windows pruned: its hour starts before it
	to := historyStart.Add(20 * time.Hour)
	args := []string{"query", "--db", db, "--by", "country", "--utc", "--from", rfc(from), "--to", rfc(to)}
	code, out, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatal(stderr)
	}
	note := "note: answered at hour resolution: raw windows before 2026-03-02 23:00:00 UTC were pruned"
	if !strings.Contains(out, note+"\n") {
		t.Errorf("table lacks %q:\n%s", note, out)
	}
	// The hour from 05:00 was left out: the answer is that of 06:00 on.
	want := rawAnswer(t, historyStart.Add(6*time.Hour), to, query.ByCountry)
	code, out, stderr = runCmd(t, append(args, "--format", "json")...)
	if code != 0 || out != want {
		t.Errorf("json: exit %d\n--- got\n%s\n--- want\n%s", code, out, want)
	}
	if !strings.Contains(stderr, "answered at hour resolution") {
		t.Errorf("json: stderr lacks the resolution note: %q", stderr)
	}
}

// dbSource serves a DB over the API as the daemon does.
type dbSource struct {
	query.Reader
	db *storage.DB
}

func (s dbSource) Status() (api.Status, error) {
	var st api.Status
	var err error
	st.DB, err = dstwatchd.DBStatus(s.db) // as the daemon's
	return st, err
}

// serveDB serves db's API on the socket beside it until stop.
func serveDB(t *testing.T, path string) (stop func()) {
	t.Helper()
	d, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := api.Listen(defaultSocket(path), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(dbSource{query.Local(d), d}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		srv.Shutdown(t.Context())
		if err := <-done; err != nil {
			t.Error(err)
		}
		d.Close()
	}
	t.Cleanup(stop)
	return stop
}

// Aggregates over rollups print the same whether the daemon adds them up
// (its /v1/aggregate) or the CLI reads the file.
func TestQueryTiersAPIEqualsFile(t *testing.T) {
	db := historyDB(t)
	d, err := storage.Open(db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PruneTiers(historyStart.Add(3*24*time.Hour), storage.Retention{Windows: 36 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	rng := []string{"--db", db, "--utc", "--from", rfc(historyStart.Add(30 * time.Minute)), "--to", rfc(historyStart.Add(62*time.Hour + 15*time.Minute))}
	cases := [][]string{
		{"--by", "remote", "--top", "5"},
		{"--by", "remote", "--country", "nl", "--direction", "tx"},
		{"--by", "country"},
		{"--by", "asn", "--sort", "packets"},
		{"--by", "asn", "--format", "csv"},
		{"--by", "remote", "--format", "json", "--top", "3"},
	}
	type result struct {
		code     int
		out, err string
	}
	ask := func() []result {
		var rs []result
		for _, c := range cases {
			code, out, stderr := runCmd(t, append(append([]string{"query"}, c...), rng...)...)
			rs = append(rs, result{code, out, stderr})
		}
		return rs
	}
	stop := serveDB(t, db)
	viaAPI := ask()
	stop()
	viaFile := ask()
	for i, c := range cases {
		a, f := viaAPI[i], viaFile[i]
		if a.code != 0 || f.code != 0 {
			t.Errorf("%v: exit %d via the API (%s), %d from the file (%s)", c, a.code, a.err, f.code, f.err)
			continue
		}
		if a != f {
			t.Errorf("%v differs:\n--- api\n%s%s\n--- file\n%s%s", c, a.out, a.err, f.out, f.err)
		}
	}
	if !strings.Contains(viaFile[2].out, "answered at hour resolution") || !strings.Contains(viaFile[2].out, "daily rollup") {
		t.Errorf("country table: want rollups and a resolution note:\n%s", viaFile[2].out)
	}
}

// writeFormat1 writes a database as dstwatch with format 1 (before the
// rollup tiers) did: meta, windows and asn buckets.
func writeFormat1(t *testing.T, path string, ws []*window.Window) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket([]byte("meta"))
		meta.Put([]byte("created"), []byte(time.Now().UTC().Format(time.RFC3339)))
		meta.Put([]byte("format"), bin.BigEndian.AppendUint32(nil, 1))
		wb, _ := tx.CreateBucket([]byte("windows"))
		ab, _ := tx.CreateBucket([]byte("asn"))
		for _, w := range ws {
			if err := wb.Put(bin.BigEndian.AppendUint64(nil, uint64(w.Start.Unix())), storage.MarshalWindow(w)); err != nil {
				return err
			}
			for _, r := range w.Remotes {
				if r.ASN != 0 {
					ab.Put(bin.BigEndian.AppendUint32(nil, r.ASN), []byte(r.ASOrg))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A format 1 file is upgraded by the first read-write open (here compact's)
// and then answers from its new rollups exactly as its raw windows did.
func TestFormat1UpgradedOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	writeFormat1(t, path, historyWindows())
	from, to := historyStart.Add(90*time.Minute), historyStart.Add(50*time.Hour)
	q := []string{"query", "--db", path, "--by", "remote", "--format", "json", "--from", rfc(from), "--to", rfc(to)}
	if code, _, stderr := runCmd(t, q...); code == 0 || !strings.Contains(stderr, "upgrade") {
		t.Errorf("query of a format 1 file: exit %d, %q; want a hint to upgrade it", code, stderr)
	}
	if code, out, stderr := runCmd(t, "compact", "--db", path); code != 0 {
		t.Fatalf("compact: exit %d: %s%s", code, out, stderr)
	}
	d, err := storage.Open(path, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.Usage()
	d.Close()
	if err != nil || u[window.Hourly].Units == 0 || u[window.Daily].Units == 0 {
		t.Fatalf("after the upgrade: %+v %v; want hourly and daily rollups", u, err)
	}
	code, out, stderr := runCmd(t, q...)
	if code != 0 {
		t.Fatal(stderr)
	}
	if want := rawAnswer(t, from, to, query.ByRemote); out != want {
		t.Errorf("upgraded file's answer differs from the raw windows':\n--- got\n%s\n--- want\n%s", out, want)
	}
}

// compact shrinks a pruned file, keeps every answer, and refuses while
// somebody holds the database.
func TestCompact(t *testing.T) {
	db := historyDB(t)
	d, err := storage.Open(db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PruneTiers(historyStart.Add(3*24*time.Hour), storage.Retention{Windows: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := os.Chmod(db, 0o604); err != nil {
		t.Fatal(err)
	}
	q := []string{"query", "--db", db, "--by", "asn", "--format", "csv", "--from", rfc(historyStart), "--to", rfc(historyStart.Add(72 * time.Hour))}
	_, before, _ := runCmd(t, q...)
	st0, _ := os.Stat(db)

	// Held read-write (as the daemon holds it): refused, file untouched.
	hold, err := storage.Open(db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, "compact", "--db", db)
	hold.Close()
	if code != 1 || !strings.Contains(stderr, "stop the daemon first") || !strings.Contains(stderr, "locked") {
		t.Errorf("compact of a held file: exit %d, %q %q", code, out, stderr)
	}
	if _, err := os.Stat(db + ".compact"); !os.IsNotExist(err) {
		t.Errorf("a held file left a copy: %v", err)
	}
	// A daemon answering on the socket: refused before anything is opened.
	stop := serveDB(t, db)
	code, _, stderr = runCmd(t, "compact", "--db", db)
	stop()
	if code != 1 || !strings.Contains(stderr, "a daemon answers on") {
		t.Errorf("compact while a daemon answers: exit %d, %q", code, stderr)
	}

	code, out, stderr = runCmd(t, "compact", "--db", db)
	if code != 0 {
		t.Fatalf("compact: exit %d: %s", code, stderr)
	}
	st1, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Size() >= st0.Size() {
		t.Errorf("compact: %d bytes before, %d after; want smaller", st0.Size(), st1.Size())
	}
	if st1.Mode().Perm() != 0o604 {
		t.Errorf("compacted file mode %v, want the original 0604", st1.Mode().Perm())
	}
	if !strings.Contains(out, "compacted "+db+": ") {
		t.Errorf("compact output: %q", out)
	}
	if _, after, _ := runCmd(t, q...); after != before {
		t.Errorf("answers differ after compact:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if _, err := os.Stat(db + ".compact"); !os.IsNotExist(err) {
		t.Errorf("copy left behind: %v", err)
	}
}

// status shows each tier.
func TestStatusTiers(t *testing.T) {
	db := historyDB(t)
	d, err := storage.Open(db, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ts, err := dstwatchd.TierStats(d)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Windows.Units != 288 || ts.Hours.Units != 71 || ts.Days.Units != 3 || ts.Sealed != "2026-03-03T23:00:00Z" {
		t.Errorf("tiers %+v", ts)
	}
	var st api.Status
	st.DB.Tiers = ts
	var buf bytes.Buffer
	writeStatus(&buf, st, time.UTC)
	for _, want := range []string{"  raw      288 windows from 2026-03-01 00:00:00 UTC to 2026-03-03 23:45:00 UTC, ", "  hourly   71 rollups from", "  daily    3 rollups from"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, buf.String())
		}
	}
}

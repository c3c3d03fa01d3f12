package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// untilInto sleeps until at is past a boundary of windows of length l.
func untilInto(l, at time.Duration) {
	now := time.Now()
	next := now.Truncate(l).Add(at)
	if !next.After(now) {
		next = next.Add(l)
	}
	time.Sleep(time.Until(next))
}

// A live daemon marks the windows it did not watch whole: the first after
// it starts and the last at SIGTERM, in the database, in query's JSON and
// table, and in the record log. Stopped and started again inside one
// window, it merges that window (partial start and stop) and writes no
// second header block for it in the record log.
func TestPartialWindowsLive(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "partial.db")
	recLog := filepath.Join(dir, "records.log")
	const L = 4 * time.Second
	args := []string{"-i", p.IfA, "--db", db, "--record-log", recLog, "--window", "4s", "--utc"}
	sink(t, p.A, netnstest.A4)
	binary(t) // built before the clock matters

	untilInto(L, time.Second) // start a second into a window
	d := startDaemon(t, p.A, args...)
	send(t, p.B, netnstest.B4, netnstest.A4, 5, 72)
	// Stop 0.8 s into the window after the next (two closed: the first,
	// partial, and a whole one), and start again at once, inside it.
	time.Sleep(L)
	untilInto(L, 800*time.Millisecond)
	d.stop(t)
	restarted := time.Now()
	d = startDaemon(t, p.A, args...)
	if time.Now().Truncate(L) != restarted.Truncate(L) {
		t.Skip("the restart took the daemon past the window it stopped in; the machine is too slow for this test")
	}
	send(t, p.B, netnstest.B4, netnstest.A4, 7, 72)
	// Let that window close (0.5 s past its end), then stop inside the next.
	time.Sleep(time.Until(restarted.Truncate(L).Add(L + 1500*time.Millisecond)))
	d.stop(t)

	ws := readAll(t, db)
	if len(ws) < 4 {
		t.Fatalf("%d windows stored, want at least 4", len(ws))
	}
	merged := ws[len(ws)-2] // stopped and started again inside it
	want := map[time.Time]window.Partial{ws[0].Start: window.PartialStart, merged.Start: window.PartialStart | window.PartialStop, ws[len(ws)-1].Start: window.PartialStop}
	for _, w := range ws {
		if w.Stats.Partial != want[w.Start] {
			t.Errorf("window %s: partial %q, want %q", w.Start.Format(time.TimeOnly), w.Stats.Partial, want[w.Start])
		}
	}
	if got := rxFrom(t, db, netnstest.B4.String()); got != 12 {
		t.Errorf("counted %d packets, want 12", got)
	}

	// query's JSON says it per window, its table in a column and a note.
	code, js, stderr := runCmd(t, "query", "--db", db, "--by", "window", "--format", "json", "--from", ws[0].Start.Format(time.RFC3339), "--to", ws[len(ws)-1].End().Format(time.RFC3339))
	if code != 0 {
		t.Fatal(stderr)
	}
	var jw []query.WindowJSON
	if err := json.Unmarshal([]byte(js), &jw); err != nil {
		t.Fatal(err)
	}
	if len(jw) != len(ws) {
		t.Fatalf("query: %d windows, want %d", len(jw), len(ws))
	}
	for i, w := range jw {
		if got, want := strings.Join(w.Partial, ","), ws[i].Stats.Partial.String(); got != want {
			t.Errorf("JSON window %s: partial %q, want %q", w.Start, got, want)
		}
	}
	if !strings.Contains(js, `"partial": [`+"\n"+`      "start",`+"\n"+`      "stop"`+"\n"+`    ]`) {
		t.Errorf("no partial start and stop in the JSON:\n%s", js)
	}
	_, table, _ := runCmd(t, "query", "--db", db, "--by", "window", "--utc", "--from", ws[0].Start.Format(time.RFC3339), "--to", ws[len(ws)-1].End().Format(time.RFC3339))
	rowOf := func(w *window.Window) string {
		for _, l := range strings.Split(table, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), w.Start.Format("2006-01-02 15:04:05 UTC")) {
				return l
			}
		}
		return ""
	}
	if l := rowOf(merged); !strings.HasSuffix(strings.TrimSpace(l), " start,stop") {
		t.Errorf("table row of the merged window: %q\n%s", l, table)
	}
	if l := rowOf(ws[1]); strings.HasSuffix(strings.TrimSpace(l), "start") || strings.Contains(table, "PARTIAL") == false {
		t.Errorf("table: a whole window marked, or no PARTIAL column: %q\n%s", l, table)
	}
	if !strings.Contains(table, "note: 3 of these windows were watched for only part of their time") {
		t.Errorf("no note on partial windows under the table:\n%s", table)
	}

	_, rep, stderr := runCmd(t, "report", "--db", db, "--utc", "--from", ws[0].Start.Format(time.RFC3339), "--to", ws[len(ws)-1].End().Format(time.RFC3339))
	if !strings.Contains(rep, "3 windows or rollups were watched for only part of their time") {
		t.Errorf("the report does not note the partial windows (%s):\n%s", stderr, rep)
	}

	// The record log: one header block per window, partial ones say so,
	// the restart's part of the merged window follows as a continuation.
	b, err := os.ReadFile(recLog)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, w := range ws {
		ts := w.Start.Format(time.RFC3339)
		var heads, cont []string
		for _, l := range strings.Split(log, "\n") {
			switch {
			case strings.HasPrefix(l, ts+" === window"):
				heads = append(heads, l)
			case strings.HasPrefix(l, ts+" +++ window"):
				cont = append(cont, l)
			}
		}
		if len(heads) != 1 {
			t.Errorf("window %s: %d header blocks in the record log, want 1:\n%s", ts, len(heads), log)
			continue
		}
		if p := w.Stats.Partial; w.Start.Equal(merged.Start) {
			if !strings.HasSuffix(heads[0], " partial stop ===") || len(cont) != 1 || !strings.HasSuffix(cont[0], " partial start +++") {
				t.Errorf("the merged window's lines: %q, continued %q", heads[0], cont)
			}
		} else if want := " partial " + p.String() + " ==="; p != 0 && !strings.HasSuffix(heads[0], want) || p == 0 && strings.Contains(heads[0], "partial") {
			t.Errorf("window %s (partial %q): header %q", ts, p, heads[0])
		}
	}
}

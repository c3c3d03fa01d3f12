// Package reclog owns the record log: the plain-text file that gets a block of
// lines for every stored window, for people to tail and grep. It survives
// logrotate: the file is reopened on request (SIGHUP) and whenever the path
// no longer names the file it has open (renamed or deleted away). Readers
// follow it as tail -F does (follow.go).
package reclog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dstwatch/dstwatch/internal/safefile"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/window"
)

// Log appends window blocks to a file. Its methods are safe for concurrent
// use: the writer appends while the signal handler asks for a reopen.
type Log struct {
	path string
	mode os.FileMode
	mu   sync.Mutex
	f    *os.File // guarded by mu
}

// Open opens path for appending, creating it with mode (0640 when zero).
func Open(path string, mode os.FileMode) (*Log, error) {
	if mode == 0 {
		mode = 0o640
	}
	if err := CheckText(path); err != nil {
		return nil, fmt.Errorf("record log: %w", err)
	}
	l := &Log{path: path, mode: mode}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// CheckText refuses to let path be written as text when it already holds
// binary data: a record log or a report never contains a NUL byte, while a
// bbolt database or a capture file has them in its first bytes. A swapped
// flag (--record-log naming the database) must not damage the file.
//
// It also refuses what safefile refuses: a link, or another user's file
// while running as root.
func CheckText(path string) error {
	f, err := safefile.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := io.ReadFull(f, buf)
	if bytes.IndexByte(buf[:n], 0) >= 0 {
		return fmt.Errorf("%s holds binary data (a database or a capture?); refusing to write text into it", path)
	}
	return nil
}

func (l *Log) reopen() error {
	f, err := safefile.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, l.mode)
	if err != nil {
		return fmt.Errorf("record log: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	return nil
}

// Reopen closes the file and opens the path again, as logrotate's
// postrotate (or SIGHUP) expects.
func (l *Log) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reopen()
}

// rotatedAway reports whether the path no longer names the open file.
func (l *Log) rotatedAway() bool {
	cur, err := l.f.Stat()
	if err != nil {
		return true
	}
	onDisk, err := os.Stat(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && !os.SameFile(cur, onDisk)
}

// Write appends w's block: a header line, its top remotes (all when top <= 0)
// and an others line for the rest. Times are shown in loc.
func (l *Log) Write(w *window.Window, top int, loc *time.Location) error {
	var b strings.Builder
	Format(&b, w, top, loc)
	return l.write(b.String())
}

// WriteContinued appends w's lines as the rest of a window whose block the
// log already has (the daemon stopped and started again inside it): a
// "+++ continued" line instead of a second header, then its remotes.
func (l *Log) WriteContinued(w *window.Window, top int, loc *time.Location) error {
	var b strings.Builder
	format(&b, w, top, loc, true)
	return l.write(b.String())
}

func (l *Log) write(block string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rotatedAway() {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	// One write per window: a reader tailing the file never sees half a block
	// from us, and O_APPEND keeps blocks whole even if two writers shared it.
	if _, err := io.WriteString(l.f, block); err != nil {
		return fmt.Errorf("record log %s: %w", l.path, err)
	}
	return nil
}

// WriteLine appends one line of its own (an alert, say), which should
// start with a time like the window lines do. A missing newline is added.
func (l *Log) WriteLine(line string) error {
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rotatedAway() {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(l.f, line); err != nil {
		return fmt.Errorf("record log %s: %w", l.path, err)
	}
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// Format writes w's block to b. Every line starts with the window's start
// time, so that grep on a time or an address finds whole answers. A window
// watched for only part of its time says so in its header ("partial
// start"), so that its small numbers are not read as quiet traffic.
func Format(b *strings.Builder, w *window.Window, top int, loc *time.Location) {
	format(b, w, top, loc, false)
}

func format(b *strings.Builder, w *window.Window, top int, loc *time.Location, continued bool) {
	ts := w.Start.In(loc).Format(time.RFC3339)
	var total window.Counts
	for i := range w.Remotes {
		total.Add(w.Remotes[i].Counts)
	}
	total.Add(w.Other)
	s := w.Stats
	mark, what := "===", "window "+w.Length.String()
	if continued {
		mark, what = "+++", "window "+w.Length.String()+" continued after a restart:"
	}
	partial := ""
	if s.Partial != 0 {
		partial = " partial " + s.Partial.String()
	}
	fmt.Fprintf(b, "%s %s %s remotes %d  tx %s %s pkts  rx %s %s pkts  frames %d skipped %d drops %d late %d folded %d%s %s\n",
		ts, mark, what, len(w.Remotes)+int(s.Folded),
		units.Bytes(total.TxBytes), units.Count(total.TxPackets),
		units.Bytes(total.RxBytes), units.Count(total.RxPackets),
		s.Frames, s.Skipped(), s.Drops, s.Late, s.Folded, partial, mark)
	n := len(w.Remotes)
	if top > 0 && n > top {
		n = top
	}
	var addr [64]byte
	for _, r := range w.Remotes[:n] {
		line(b, ts, r.Counts, country(r.Country), r.Addr.AppendTo(addr[:0]))
	}
	if n < len(w.Remotes) || !w.Other.IsZero() {
		var rest window.Counts
		for _, r := range w.Remotes[n:] {
			rest.Add(r.Counts)
		}
		rest.Add(w.Other)
		line(b, ts, rest, "--", fmt.Appendf(addr[:0], "others (%d remotes)", len(w.Remotes)-n+int(s.Folded)))
	}
}

// line is one remote's line: fmt's "%s  tx %10s %7s pkts  rx %10s %7s
// pkts  %-2s %s" written piece by piece, because a window's lines through
// fmt were a quarter of what a replay of a month of small windows cost.
func line(b *strings.Builder, ts string, c window.Counts, cc string, who []byte) {
	b.WriteString(ts)
	b.WriteString("  tx ")
	padLeft(b, units.Bytes(c.TxBytes), 10)
	b.WriteByte(' ')
	padLeft(b, units.Count(c.TxPackets), 7)
	b.WriteString(" pkts  rx ")
	padLeft(b, units.Bytes(c.RxBytes), 10)
	b.WriteByte(' ')
	padLeft(b, units.Count(c.RxPackets), 7)
	b.WriteString(" pkts  ")
	b.WriteString(cc)
	for range 2 - min(len(cc), 2) {
		b.WriteByte(' ')
	}
	b.WriteByte(' ')
	b.Write(who)
	b.WriteByte('\n')
}

// padLeft writes s right-aligned in width columns (s is ASCII).
func padLeft(b *strings.Builder, s string, width int) {
	for range width - min(len(s), width) {
		b.WriteByte(' ')
	}
	b.WriteString(s)
}

func country(cc string) string {
	if cc == "" {
		return "--"
	}
	return cc
}

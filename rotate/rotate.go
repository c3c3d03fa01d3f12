package rotate

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/window"
)

// Config says how windows are cut.
type Config struct {
	Length time.Duration // window length; whole seconds, at least 1s
	// Live closes windows on the clock as well as on packet timestamps, so a
	// quiet link still produces its (empty) windows on time.
	Live bool
	// Grace is how long past its end a live window stays open for frames
	// still sitting in a kernel ring block; it must exceed the block timeout.
	Grace time.Duration
	// ServiceTop is how many remotes each service keeps with rows of
	// their own per window (service.go); 0: DefaultServiceTop, < 0: none.
	ServiceTop int
	// MaxOpenRemotes bounds the distinct remotes the open window holds, and
	// its (service, remote) pairs the same; 0: DefaultMaxOpenRemotes, < 0:
	// no bound. Past it, a new remote's packets are added to the window's
	// Other and to its service's fold row, and counted in Stats.Overflow:
	// totals stay exact, memory stays bounded.
	MaxOpenRemotes int
}

// DefaultMaxOpenRemotes keeps every remote of a busy host's window (a few
// thousand to a few hundred thousand) and of most scans, while a flood of
// spoofed sources cannot take the open window past about 150 MB (docs/performance.md,
// Limits).
const DefaultMaxOpenRemotes = 1_000_000

// openBound is the bound in effect, 0 for none.
func (c Config) openBound() int {
	switch {
	case c.MaxOpenRemotes == 0:
		return DefaultMaxOpenRemotes
	case c.MaxOpenRemotes < 0:
		return 0
	}
	return c.MaxOpenRemotes
}

// Validate reports a configuration that cannot cut windows.
func (c Config) Validate() error {
	if c.Length < time.Second || c.Length%time.Second != 0 {
		return fmt.Errorf("window length %v: must be a whole number of seconds, at least 1s", c.Length)
	}
	if c.Grace < 0 || c.Grace >= c.Length {
		return fmt.Errorf("grace %v: must be between 0 and the window length", c.Grace)
	}
	return nil
}

// row is one remote's tally while its window is open. The address stays a
// pointer-free [16]byte so that a window with a million remotes costs the
// garbage collector nothing to scan.
type row struct {
	addr [16]byte
	window.Counts
	// svc is the first service the remote used in this window. While it
	// uses no other (mixed false), its (service, remote) tally is the row's
	// own Counts and the pair table is not touched: most remotes speak one
	// service with a host, and a second hash probe per packet cost more
	// than the rest of the tally.
	svc   uint32
	mixed bool
}

// Closed is a window as the tally closed it: every remote, unsorted and
// uncapped. Sorting and capping are left to Finish so that they run on the
// writer's goroutine, off the counting path.
type Closed struct {
	Start  time.Time
	Length time.Duration
	Stats  window.Stats
	rows   []row
	free   chan<- []row // where Finish hands rows back for the next window's table; nil: nowhere
	// freePairs is free for the pair table's arrays.
	freePairs chan<- []pair

	pairs      []pair // (service, remote) tallies, service.go
	serviceTop int
	overflow   window.Counts // remotes past the open window's bound, already summed
}

// Remotes is the number of distinct remotes tallied.
func (c *Closed) Remotes() int { return len(c.rows) }

// Finish sorts the remotes heaviest first (bytes both ways, ties by address)
// and keeps at most maxRemotes of them; the rest are summed into Other and
// counted in Stats.Folded, so that the window's totals stay exact.
// maxRemotes <= 0 keeps every remote.
func (c *Closed) Finish(maxRemotes int) *window.Window {
	rows := c.rows
	w := &window.Window{Start: c.Start, Length: c.Length, Stats: c.Stats, Other: c.overflow}
	// Services first: the pairs name their remotes by row position, which
	// ordering the rows would change.
	w.Services = c.services(rows)
	keep := len(rows)
	if maxRemotes > 0 && keep > maxRemotes {
		keep = maxRemotes
		// Only the kept ones need order: select them first (linear), then
		// sort just those, instead of sorting a scan's million remotes.
		selectHeaviest(rows, keep)
	}
	slices.SortFunc(rows[:keep], heavier)
	if keep < len(rows) {
		for i := range rows[keep:] {
			w.Other.Add(rows[keep+i].Counts)
		}
		w.Stats.Folded += uint64(len(rows) - keep)
	}
	w.Remotes = make([]window.Remote, keep)
	for i := range w.Remotes {
		w.Remotes[i] = window.Remote{Addr: netip.AddrFrom16(rows[i].addr).Unmap(), Counts: rows[i].Counts}
	}
	c.rows = nil
	if c.free != nil {
		// Reused by a later window's table: clearing an array we own is
		// cheaper than the page faults and GC cycles of a fresh one, and a
		// scan's window does not leave a 100 MB array behind as garbage.
		select {
		case c.free <- rows:
		default:
		}
	}
	return w
}

// heavier orders rows heaviest first (bytes both ways), ties by address, so
// that the order, and which remotes a cap keeps, never depends on map order.
func heavier(a, b row) int {
	if n := cmp.Compare(b.Bytes(), a.Bytes()); n != 0 {
		return n
	}
	return bytes.Compare(a.addr[:], b.addr[:])
}

// selectHeaviest reorders rows so that its first k are the k heaviest by
// heavier, in no particular order.
func selectHeaviest(rows []row, k int) { selectFirst(rows, k, heavier) }

// selectFirst reorders s so that its first k elements are the k smallest by
// cmp, in no particular order: quickselect with median-of-three pivots,
// linear on average, where sorting would be n log n.
func selectFirst[T any](s []T, k int, cmp func(a, b T) int) {
	lo, hi := 0, len(s)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if cmp(s[mid], s[lo]) < 0 {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if cmp(s[hi], s[lo]) < 0 {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if cmp(s[mid], s[hi]) < 0 {
			s[mid], s[hi] = s[hi], s[mid]
		}
		pivot := s[hi]
		i := lo
		for j := lo; j < hi; j++ {
			if cmp(s[j], pivot) < 0 {
				s[i], s[j] = s[j], s[i]
				i++
			}
		}
		s[i], s[hi] = s[hi], s[i]
		switch {
		case i == k || i == k-1:
			return
		case i < k:
			lo = i + 1
		default:
			hi = i - 1
		}
	}
}

// openWindow is the open window.
type openWindow struct {
	start    int64         // Unix ns
	deadline time.Duration // on the monotonic clock; live windows only
	stats    window.Stats
	outages  uint64 // Tally.outages when the window opened
}

// MaxFuture is how far ahead of the wall clock a packet timestamp may be
// before it counts as malformed rather than cutting a window.
const MaxFuture = 48 * time.Hour

// Tally owns the open window. It is driven by one goroutine (Run), or by tests
// calling add and tick with fixed times.
type Tally struct {
	cfg       Config
	length    int64 // ns
	cur       *openWindow
	badStamps uint64 // frames with impossible timestamps, not yet counted in a window
	// closedEnd is the end of the newest closed window: no window may start
	// before it, so a window that was handed to the writer is never reopened,
	// whatever the clock or the packet timestamps do.
	closedEnd int64
	tab       table // the open window's remotes
	hint      int   // remotes in the previous window, to size the next table
	emit      func(*Closed)
	// free and freePairs hold the arrays of finished windows for reuse.
	// Two each: one window is being finished while the next one closes.
	free      chan []row
	freePairs chan []pair

	pairs    pairTable // the open window's (service, remote) tallies
	pairHint int

	// opened is set once a window was opened: the first one of a live
	// tally began before the daemon did (Stats.Partial).
	opened bool
	// down counts capture sources that are down and outages counts their
	// changes (CaptureDown); both are set by the sources' goroutines, so
	// atomic. A window during which either said anything is partial.
	down    atomic.Int64
	outages atomic.Uint64

	// suspect holds, in a replay, frames stamped beyond the window after
	// the open one (see hold): a fixed array, so holding costs no
	// allocation. releasing is set while release tallies them.
	suspect   [suspectMax]capture.Event
	nSuspect  int
	releasing bool
	overflow  window.Counts // the open window's remotes past the table's bound
	sink      uint64        // what table.touch read, kept so that its loads are not optimised away
}

// suspectMax is how many frames in a row must agree on a jump ahead before a
// replay follows it. One frame stamped an hour ahead inside an old capture
// (a clock stepped and stepped back, a damaged record) would otherwise move
// every later frame into its future window as late; a real quiet gap is
// followed by more frames on the new time, or by the end of the file.
const suspectMax = 8

// New returns a Tally that hands every closed window to emit.
func New(cfg Config, emit func(*Closed)) *Tally {
	t := &Tally{cfg: cfg, length: int64(cfg.Length), closedEnd: minInt64, emit: emit,
		free: make(chan []row, 2), freePairs: make(chan []pair, 2)}
	t.tab.max, t.tab.free = cfg.openBound(), t.free
	t.pairs.max, t.pairs.free = cfg.openBound(), t.freePairs
	return t
}

const minInt64 = -1 << 63

// Start returns the start of the window holding ts (Unix ns): floor(ts/L)*L,
// also for times before 1970.
func (t *Tally) windowStart(ts int64) int64 {
	s := ts / t.length * t.length
	if ts < 0 && s != ts {
		s -= t.length
	}
	return s
}

// clock is a reading of both clocks: the wall clock, which packet timestamps
// come from and which NTP may step, and a monotonic one, which only moves
// forward. Taking them as parameters lets tests step one without the other.
type clock struct {
	wall int64         // Unix ns
	mono time.Duration // since an arbitrary origin
}

func now(origin time.Time) clock {
	n := time.Now()
	return clock{wall: n.UnixNano(), mono: n.Sub(origin)}
}

func (t *Tally) open(start int64, c clock) {
	start = max(start, t.closedEnd)
	// Sized like the previous window: growing a table of 100k remotes from
	// nothing costs more than tallying them.
	w := &openWindow{start: start}
	t.tab.reset(t.hint)
	t.pairs.reset(t.pairHint)
	if t.cfg.Live {
		if !t.opened && c.wall > start {
			w.stats.Partial |= window.PartialStart
		}
		w.outages = t.outages.Load()
		if t.down.Load() > 0 {
			w.stats.Partial |= window.PartialOutage
		}
		// The deadline is set on the monotonic clock, so a wall clock stepped
		// back by an hour cannot keep a window open for an hour.
		untilEnd := time.Duration(start + t.length - c.wall)
		untilEnd = min(max(untilEnd, 0), t.cfg.Length)
		w.deadline = c.mono + untilEnd + t.cfg.Grace
	}
	t.cur = w
	t.opened = true
}

// CaptureDown tells the tally that a capture source stopped (true) or
// captures again (false): the windows open meanwhile are marked
// PartialOutage. Safe for use from any goroutine.
func (t *Tally) CaptureDown(down bool) {
	if down {
		t.down.Add(1)
	} else {
		t.down.Add(-1)
	}
	t.outages.Add(1)
}

func (t *Tally) close() {
	w := t.cur
	t.cur = nil
	if t.cfg.Live && (t.down.Load() > 0 || t.outages.Load() != w.outages) {
		w.stats.Partial |= window.PartialOutage
	}
	t.closedEnd = w.start + t.length
	t.hint = t.tab.remotes()
	t.pairHint = len(t.pairs.rows)
	t.emit(&Closed{
		Start:      time.Unix(0, w.start).UTC(),
		Length:     t.cfg.Length,
		Stats:      w.stats,
		rows:       t.tab.take(),
		free:       t.free,
		pairs:      t.pairs.take(),
		freePairs:  t.freePairs,
		serviceTop: t.cfg.ServiceTop,
		overflow:   t.overflow,
	})
	t.overflow = window.Counts{}
}

// add tallies one batch. c is only used to set a live window's deadline.
func (t *Tally) add(evs []capture.Event, c clock) {
	// A frame stamped before 1970 or days ahead of the wall clock has a
	// broken timestamp (a damaged capture file, a clock set wrong). Cutting
	// a window there would push every later window after it and, with
	// retention counted from the newest window, prune the history.
	future := time.Now().Add(MaxFuture).UnixNano()
	if t.cur != nil {
		t.sink += t.tab.touch(evs, &t.pairs)
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Kind != capture.Drops && (ev.TS < 0 || ev.TS > future) {
			t.badStamps++
			continue
		}
		if ev.Kind == capture.Drops {
			// A drop report is stamped by the wall clock, not by a packet, so it
			// joins whatever window is open rather than cutting one.
			if t.cur == nil {
				t.open(t.windowStart(ev.TS), c)
			}
			t.cur.stats.Drops += uint64(ev.Len)
			continue
		}
		if !t.cfg.Live && t.hold(ev, c) {
			continue
		}
		ws := t.windowStart(ev.TS)
		switch {
		case t.cur == nil:
			t.open(ws, c)
		case ws >= t.cur.start+t.length:
			t.close()
			t.open(ws, c)
		}
		w := t.cur
		if t.badStamps > 0 {
			// Counted where they can be: as malformed frames of the window
			// that is open when the next good frame comes.
			w.stats.Frames += t.badStamps
			w.stats.Malformed += t.badStamps
			t.badStamps = 0
		}
		if ws < w.start {
			w.stats.Late++
		}
		w.stats.Frames++
		switch ev.Kind {
		case capture.Egress, capture.Ingress:
			w.stats.Tallied++
			r, pos := t.tab.get(&ev.Remote)
			if r == nil {
				// The window holds as many remotes as it may: this one is
				// summed, exactly, where folded remotes are.
				w.stats.Overflow++
				t.addOverflow(ev)
				continue
			}
			svc := uint32(ev.Service())
			switch {
			case r.mixed:
			case r.TxPackets+r.RxPackets == 0:
				r.svc = svc
			case r.svc != svc:
				// A second service: what the row holds so far was all its
				// first service's; from here on the pair table keeps both.
				r.mixed = true
				t.pairs.get(pos, r.svc).Counts.Add(r.Counts) // Add: past the pair cap this is the service's shared fold row
			}
			if ev.Kind == capture.Egress {
				r.TxPackets++
				r.TxBytes += uint64(ev.Len)
			} else {
				r.RxPackets++
				r.RxBytes += uint64(ev.Len)
			}
			if r.mixed {
				t.pairs.add(pos, ev)
			}
		case capture.SkipNonIP:
			w.stats.NonIP++
		case capture.SkipTransit:
			w.stats.Transit++
		case capture.SkipExcluded:
			w.stats.Excluded++
		case capture.SkipLocal:
			w.stats.Local++
		case capture.SkipOversize:
			w.stats.Oversize++
		case capture.SkipSpoofed:
			w.stats.Spoofed++
		default:
			w.stats.Malformed++
		}
	}
}

// hold judges a replayed frame's stamp against the capture's own timeline
// and reports whether it took the frame. A frame stamped beyond the window
// after the open one is held, not tallied. The frames after it decide: if
// suspectMax frames in a row are all that far ahead, the capture really
// jumped (a quiet gap) and they are tallied in order, as they would have been
// without holding; if a frame comes that continues the open window's
// timeline, the held ones were the outliers: they are counted as malformed
// (bad stamps) and not tallied. At the end of the file (flush) held frames
// are tallied: nothing contradicts them. So a real gap gives the windows it
// always did, and every frame is counted exactly once.
//
// Live capture does not use this: its stamps come from the kernel's clock,
// which the wall-clock rules (MaxFuture, tick) already judge.
func (t *Tally) hold(ev *capture.Event, c clock) bool {
	if t.cur == nil || t.releasing {
		return false
	}
	if t.windowStart(ev.TS) <= t.cur.start+t.length {
		if t.nSuspect > 0 {
			t.badStamps += uint64(t.nSuspect)
			t.nSuspect = 0
		}
		return false
	}
	t.suspect[t.nSuspect] = *ev
	t.nSuspect++
	if t.nSuspect == suspectMax {
		t.release(c)
	}
	return true
}

// release tallies the held frames in the order they came.
func (t *Tally) release(c clock) {
	if t.nSuspect == 0 {
		return
	}
	held, n := t.suspect, t.nSuspect
	t.nSuspect = 0
	t.releasing = true
	t.add(held[:n], c)
	t.releasing = false
}

// addOverflow tallies a packet of a remote the open window has no room
// for: into the window's Other and into its service's fold row, so that
// the window's and the services' totals stay exact.
func (t *Tally) addOverflow(ev *capture.Event) {
	p := t.pairs.get(foldPos, uint32(ev.Service())|foldBit)
	if ev.Kind == capture.Egress {
		t.overflow.TxPackets++
		t.overflow.TxBytes += uint64(ev.Len)
		p.TxPackets++
		p.TxBytes += uint64(ev.Len)
	} else {
		t.overflow.RxPackets++
		t.overflow.RxBytes += uint64(ev.Len)
		p.RxPackets++
		p.RxBytes += uint64(ev.Len)
	}
}

// tick closes the open live window once its deadline has passed and opens the
// one holding now, so that windows keep coming when no traffic does.
func (t *Tally) tick(c clock) {
	if !t.cfg.Live {
		return
	}
	if t.cur == nil {
		t.open(t.windowStart(c.wall), c)
		return
	}
	if c.mono < t.cur.deadline {
		return
	}
	t.close()
	// After a forward clock step this is one window far ahead, never the
	// thousands in between; after a backward step it is the next one in line.
	t.open(t.windowStart(c.wall-int64(t.cfg.Grace)), c)
}

// flush closes the open window, if any: the partial window at shutdown or
// at the end of a capture file.
func (t *Tally) flush() { t.flushAt(time.Now().UnixNano()) }

// flushAt is flush at wall clock time wall (Unix ns).
func (t *Tally) flushAt(wall int64) {
	t.release(clock{})
	if t.cur != nil {
		if t.cfg.Live && wall < t.cur.start+t.length {
			t.cur.stats.Partial |= window.PartialStop // the daemon stops inside it
		}
		t.cur.stats.Frames += t.badStamps
		t.cur.stats.Malformed += t.badStamps
		t.badStamps = 0
		t.close()
	}
}

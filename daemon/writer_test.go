package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/geo"
	"github.com/dstwatch/dstwatch/reclog"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// The writer's tests drive its real loop with windows a real tally closed,
// a real bbolt file and record log in t.TempDir(); the one seam is put,
// which fails like a full disk (ENOSPC from the transaction) while the
// test says so. Timers run in a synctest bubble.

// syncLog is a logger whose output the test reads while the writer runs.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testWriter is an App with just what the writer uses, and a store that
// fails while fail is set.
type testWriter struct {
	t      *testing.T
	a      *App
	wr     *writer
	log    *syncLog
	mu     sync.Mutex
	fail   bool
	tries  []time.Time // when put was called
	stored []time.Time // windows the consumer was told of, in order
}

var errFull = &os.PathError{Op: "write", Path: "test.db", Err: syscall.ENOSPC}

func newTestWriter(t *testing.T, live bool) *testWriter {
	t.Helper()
	dir := t.TempDir()
	tw := &testWriter{t: t, log: &syncLog{}}
	a := &App{cfg: Config{Window: time.Second, LogTop: 10, Location: time.UTC, DBPath: filepath.Join(dir, "w.db")},
		log: slog.New(slog.NewTextHandler(tw.log, nil))}
	var err error
	if a.geo, err = geo.NewReloader(func() []string { return nil }); err != nil {
		t.Fatal(err)
	}
	if a.db, err = storage.Open(a.cfg.DBPath, storage.Options{Timeout: time.Second, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.db.Close() })
	if a.rec, err = reclog.Open(filepath.Join(dir, "records.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.rec.Close() })
	tw.a = a
	tw.wr = a.newWriter(live)
	put := tw.wr.put
	tw.wr.put = func(ws []*window.Window) error {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		tw.tries = append(tw.tries, time.Now())
		if tw.fail {
			return errFull
		}
		return put(ws)
	}
	tw.wr.consumers = append(tw.wr.consumers, consumerFunc(func(w *window.Window) {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		tw.stored = append(tw.stored, w.Start)
	}))
	return tw
}

func (tw *testWriter) setFail(fail bool) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.fail = fail
}

// triesSince are the put calls' times as offsets from start.
func (tw *testWriter) triesSince(start time.Time) []time.Duration {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	var out []time.Duration
	for _, at := range tw.tries {
		out = append(out, at.Sub(start))
	}
	return out
}

func (tw *testWriter) told() []time.Time {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]time.Time(nil), tw.stored...)
}

// inDB are the starts of the windows the file holds.
func (tw *testWriter) inDB() []time.Time {
	tw.t.Helper()
	var out []time.Time
	if err := tw.a.db.Windows(context.Background(), time.Unix(0, 0), time.Now().Add(24*time.Hour), func(w *window.Window) error {
		out = append(out, w.Start)
		return nil
	}); err != nil {
		tw.t.Fatal(err)
	}
	return out
}

// closedWindows has a real tally cut n consecutive 1 s windows from
// first, each with remotes remotes (one 100-byte packet each).
func closedWindows(t *testing.T, first time.Time, n, remotes int) []*rotate.Closed {
	t.Helper()
	var out []*rotate.Closed
	tally := rotate.New(rotate.Config{Length: time.Second}, func(c *rotate.Closed) { out = append(out, c) })
	pipe := capture.NewPipe(n)
	for i := range n {
		b := pipe.Get()
		for r := range remotes {
			addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(r + 1)})
			b = append(b, capture.Event{TS: first.Add(time.Duration(i)*time.Second + 100*time.Millisecond).UnixNano(), Remote: addr.As16(), Len: 100, Kind: capture.Egress})
		}
		pipe.Full <- b
	}
	close(pipe.Full)
	tally.Run(pipe)
	if len(out) != n {
		t.Fatalf("tally closed %d windows, want %d", len(out), n)
	}
	return out
}

func starts(first time.Time, from, to int) []time.Time {
	var out []time.Time
	for i := from; i < to; i++ {
		out = append(out, first.Add(time.Duration(i)*time.Second))
	}
	return out
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// While stores fail, the writer keeps taking windows (counting never
// waits for the disk), retries only on its timer, backing off from 1 s
// doubling up to a minute, and says so in status; once a store works, the
// queue goes to the file and to the consumers oldest first.
func TestWriterBacksOffThenCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := time.Now().Truncate(time.Second)
		cs := closedWindows(t, first, 10, 2)
		tw := newTestWriter(t, true)
		closed := make(chan *rotate.Closed, 1)
		done := make(chan error, 1)
		go func() { done <- tw.wr.run(closed, nil) }()

		tw.setFail(true)
		start := time.Now()
		closed <- cs[0]
		synctest.Wait()
		// 1+2+4+8+16+32 s, then the cap: 60 s between tries.
		time.Sleep(63*time.Second + 3*time.Minute)
		for _, c := range cs[1:] { // a window each second while failing
			closed <- c
			synctest.Wait()
		}
		synctest.Wait()
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second, 63 * time.Second,
			63*time.Second + time.Minute, 63*time.Second + 2*time.Minute, 63*time.Second + 3*time.Minute}
		if got := tw.triesSince(start); !equalDurations(got, want) {
			t.Errorf("store tries at %v, want %v (new windows must not try while backing off)", got, want)
		}
		if n := len(closed); n != 0 {
			t.Errorf("%d windows wait in the channel: the writer stopped taking them", n)
		}
		if q := tw.a.queued.Load(); q != 10 {
			t.Errorf("queued %d, want 10", q)
		}
		if f := tw.a.failing.Load(); f == nil || !strings.Contains(*f, "no space left on device") {
			t.Errorf("failing %v, want the store error", f)
		}
		if n := tw.a.storeErrs.Load(); n != 10 {
			t.Errorf("store errors %d, want 10", n)
		}
		if len(tw.told()) != 0 || len(tw.inDB()) != 0 {
			t.Errorf("told %v, stored %v while every store failed", tw.told(), tw.inDB())
		}

		tw.setFail(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := tw.told(), starts(first, 0, 10); !equalTimes(got, want) {
			t.Errorf("consumers told %v, want %v", got, want)
		}
		if got, want := tw.inDB(), starts(first, 0, 10); !equalTimes(got, want) {
			t.Errorf("the file holds %v, want %v", got, want)
		}
		if tw.a.failing.Load() != nil || tw.a.queued.Load() != 0 || tw.a.stored.Load() != 10 || tw.a.dropped.Load() != 0 {
			t.Errorf("after recovery: failing %v, queued %d, stored %d, dropped %d", tw.a.failing.Load(), tw.a.queued.Load(), tw.a.stored.Load(), tw.a.dropped.Load())
		}
		if !strings.Contains(tw.log.String(), "storing works again") {
			t.Errorf("recovery not logged:\n%s", tw.log.String())
		}
		// The next window is stored at once again.
		tries := len(tw.triesSince(start))
		more := closedWindows(t, first.Add(10*time.Second), 1, 1)
		closed <- more[0]
		synctest.Wait()
		if n := len(tw.triesSince(start)); n != tries+1 || len(tw.inDB()) != 11 {
			t.Errorf("after recovery a new window took %d tries and the file holds %d windows; want 1 and 11", n-tries, len(tw.inDB()))
		}
		close(closed)
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Past the queue's bound, the oldest windows are dropped, counted and
// logged, and the newest stored once the disk works again.
func TestWriterDropsOldestPastTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := time.Now().Truncate(time.Second)
		cs := closedWindows(t, first, 6, 2)
		tw := newTestWriter(t, true)
		per := queueRows(closedWindows(t, first, 1, 2)[0].Finish(0)) // two remotes, their services and top rows
		tw.wr.maxQueued = 3*per + per/2                              // three windows, not four
		closed := make(chan *rotate.Closed)
		done := make(chan error, 1)
		go func() { done <- tw.wr.run(closed, nil) }()

		tw.setFail(true)
		for _, c := range cs {
			closed <- c
			synctest.Wait()
		}
		if d, q := tw.a.dropped.Load(), tw.a.queued.Load(); d != 3 || q != 3 {
			t.Errorf("dropped %d, queued %d; want 3 and 3", d, q)
		}
		if n := strings.Count(tw.log.String(), "store queue full: dropped the oldest window"); n != 3 {
			t.Errorf("%d drops logged, want 3:\n%s", n, tw.log.String())
		}
		tw.setFail(false)
		time.Sleep(retryMax)
		synctest.Wait()
		if got, want := tw.inDB(), starts(first, 3, 6); !equalTimes(got, want) {
			t.Errorf("the file holds %v, want the newest three %v", got, want)
		}
		if got, want := tw.told(), starts(first, 3, 6); !equalTimes(got, want) {
			t.Errorf("consumers told %v, want %v", got, want)
		}
		close(closed)
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// One window over the bound on its own is kept: the queue never drops the
// window it has just taken.
func TestWriterKeepsOneWindowOverTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := time.Now().Truncate(time.Second)
		cs := closedWindows(t, first, 1, 5)
		tw := newTestWriter(t, true)
		tw.wr.maxQueued = 2
		tw.setFail(true)
		closed := make(chan *rotate.Closed, 1)
		done := make(chan error, 1)
		go func() { done <- tw.wr.run(closed, nil) }()
		closed <- cs[0]
		synctest.Wait()
		if d, q := tw.a.dropped.Load(), tw.a.queued.Load(); d != 0 || q != 1 {
			t.Errorf("dropped %d, queued %d; want 0 and 1", d, q)
		}
		tw.setFail(false)
		close(closed)
		if err := <-done; err != nil || len(tw.inDB()) != 1 {
			t.Errorf("drain: %v, %d windows stored; want nil and 1", err, len(tw.inDB()))
		}
	})
}

// At shutdown the writer keeps retrying a failing store for drainTimeout,
// then reports the windows it could not store and returns the error.
func TestWriterDrainGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := time.Now().Truncate(time.Second)
		cs := closedWindows(t, first, 2, 1)
		tw := newTestWriter(t, true)
		tw.setFail(true)
		closed := make(chan *rotate.Closed, 2)
		closed <- cs[0]
		closed <- cs[1]
		close(closed)
		start := time.Now()
		err := tw.wr.run(closed, nil)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("run: %v, want the store error", err)
		}
		if took := time.Since(start); took != drainTimeout {
			t.Errorf("drain took %v, want %v", took, drainTimeout)
		}
		// The first window is tried on arrival (it fails and starts the
		// backoff, so the second is only queued), both once more when the
		// drain starts, then after the doubled backoff (2 s), then at the
		// deadline.
		want := []time.Duration{0, 0, 2 * time.Second, drainTimeout}
		if got := tw.triesSince(start); !equalDurations(got, want) {
			t.Errorf("store tries at %v, want %v", got, want)
		}
		if !strings.Contains(tw.log.String(), "windows lost at shutdown: the store kept failing") || !strings.Contains(tw.log.String(), "windows=2") {
			t.Errorf("loss not logged:\n%s", tw.log.String())
		}
		if len(tw.told()) != 0 {
			t.Errorf("consumers told %v of windows never stored", tw.told())
		}
	})
}

// A store that works again while shutdown drains stores every window.
func TestWriterDrainRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := time.Now().Truncate(time.Second)
		cs := closedWindows(t, first, 3, 1)
		tw := newTestWriter(t, false) // a replay: one batch at the end
		tw.setFail(true)
		closed := make(chan *rotate.Closed, 3)
		for _, c := range cs {
			closed <- c
		}
		close(closed)
		go func() {
			time.Sleep(1500 * time.Millisecond)
			tw.setFail(false)
		}()
		start := time.Now()
		if err := tw.wr.run(closed, nil); err != nil {
			t.Errorf("run: %v", err)
		}
		// A replay stores once the channel is empty: a try when the last
		// window came, one when the drain starts, one after 2 s.
		if got, want := tw.triesSince(start), []time.Duration{0, 0, 2 * time.Second}; !equalDurations(got, want) {
			t.Errorf("store tries at %v, want %v", got, want)
		}
		if got, want := tw.inDB(), starts(first, 0, 3); !equalTimes(got, want) {
			t.Errorf("the file holds %v, want %v", got, want)
		}
		if got, want := tw.told(), starts(first, 0, 3); !equalTimes(got, want) {
			t.Errorf("consumers told %v, want %v", got, want)
		}
		rec, err := os.ReadFile(filepath.Join(filepath.Dir(tw.a.cfg.DBPath), "records.log"))
		if err != nil || strings.Count(string(rec), "203.0.113.1") != 3 {
			t.Errorf("record log (%v):\n%s", err, rec)
		}
	})
}

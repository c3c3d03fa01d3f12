package daemon

import (
	"os"
	"time"

	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/window"
)

const (
	// offlineBatch bounds how many windows one transaction stores: a replay
	// of a month of 20 s windows must not pay 130k fsyncs.
	offlineBatch = 1024
	// maxQueuedRemotes bounds the memory of windows waiting for a failing
	// disk, in rows (queueRows: remotes and services, about 60 and 100
	// bytes): ~120-200 MB. Typical windows hold a few hundred, so that is
	// days of windows; a flood (150k services a window in a replay) fills
	// it sooner.
	maxQueuedRemotes = 2_000_000
	// Store retries back off from retryMin to retryMax.
	retryMin = time.Second
	retryMax = time.Minute
	// drainTimeout is how long shutdown keeps retrying a failing store.
	drainTimeout = 5 * time.Second
)

// writer takes closed windows off the tally's hands: it finishes them
// (sort, cap), resolves GeoIP, stores, then logs and publishes. Storing
// comes first, so the record log and the API never announce a window the
// DB does not hold. While stores fail it keeps taking windows, so counting
// never stalls on a full or broken disk: they wait in a bounded queue and
// the store is retried with backoff; past the bound the oldest are dropped
// and counted.
type writer struct {
	a         *App
	live      bool
	consumers []Consumer // told of each stored window, in order (consumers.go)
	// put stores a batch in one transaction: the DB's Put. A field, so
	// that tests can make the store fail as a full disk does.
	put       func([]*window.Window) error
	maxQueued int // remotes the queue holds at most: maxQueuedRemotes

	queue   []*window.Window // resolved, oldest first
	remotes int              // remotes held by queue

	newest   time.Time
	prunedAt time.Time // newest window when we last pruned
	backoff  time.Duration
	retry    *time.Timer
	lastErr  error
}

func (a *App) write(closed <-chan *rotate.Closed, hup <-chan os.Signal, live bool) error {
	return a.newWriter(live).run(closed, hup)
}

func (a *App) newWriter(live bool) *writer {
	wr := &writer{a: a, live: live, retry: time.NewTimer(time.Hour), consumers: a.consumers(live), put: a.db.Put, maxQueued: maxQueuedRemotes}
	wr.retry.Stop()
	return wr
}

// run stores the windows from closed until it is closed, then drains.
func (wr *writer) run(closed <-chan *rotate.Closed, hup <-chan os.Signal) error {
	a := wr.a
	for {
		var retry <-chan time.Time
		if wr.backoff > 0 {
			retry = wr.retry.C
		}
		select {
		case <-hup:
			a.reload()
		case <-retry:
			wr.flush()
		case c, ok := <-closed:
			if !ok {
				return wr.drain()
			}
			wr.enqueue(a.resolve(c.Finish(a.cfg.MaxRemotes)))
			// Live: one transaction per window, as soon as it closes. A
			// replay batches whatever is already queued behind it. While a
			// store is failing, only the retry timer tries again.
			if wr.backoff == 0 && (wr.live || len(wr.queue) >= offlineBatch || len(closed) == 0) {
				wr.flush()
			}
		}
	}
}

func (wr *writer) enqueue(w *window.Window) {
	if w.Start.After(wr.newest) {
		wr.newest = w.Start
	}
	wr.queue = append(wr.queue, w)
	wr.remotes += queueRows(w)
	for wr.remotes > wr.maxQueued && len(wr.queue) > 1 {
		old := wr.queue[0]
		wr.queue[0] = nil
		wr.queue = wr.queue[1:]
		wr.remotes -= queueRows(old)
		wr.a.dropped.Add(1)
		wr.a.log.Error("store queue full: dropped the oldest window", "window", old.Start, "remotes", len(old.Remotes), "queued", len(wr.queue))
	}
	wr.a.queued.Store(int64(len(wr.queue)))
}

// queueRows is what a queued window counts against maxQueuedRemotes: its
// remotes, its services and their top rows.
func queueRows(w *window.Window) int {
	n := len(w.Remotes) + len(w.Services)
	for i := range w.Services {
		n += len(w.Services[i].Top)
	}
	return n
}

// flush stores queued windows, oldest first, a batch per transaction.
// It reports whether the queue is empty.
func (wr *writer) flush() bool {
	a := wr.a
	for len(wr.queue) > 0 {
		batch := wr.queue[:min(len(wr.queue), offlineBatch)]
		if err := wr.put(batch); err != nil {
			a.storeErrs.Add(1)
			msg := err.Error()
			a.failing.Store(&msg)
			wr.backoff = min(max(2*wr.backoff, retryMin), retryMax)
			wr.retry.Reset(wr.backoff)
			wr.lastErr = err
			a.log.Error("store windows failed; keeping them queued and retrying",
				"windows", len(batch), "queued", len(wr.queue), "retry_in", wr.backoff, "err", err)
			return false
		}
		if wr.backoff > 0 {
			a.log.Info("storing works again", "windows", len(batch))
			wr.backoff = 0
			a.failing.Store(nil)
			wr.lastErr = nil
		}
		for _, w := range batch {
			for _, c := range wr.consumers {
				c.Stored(w)
			}
			wr.remotes -= queueRows(w)
		}
		a.stored.Add(uint64(len(batch)))
		a.lastStored.Store(batch[len(batch)-1].Start.Unix())
		clear(batch)
		wr.queue = wr.queue[len(batch):]
		a.queued.Store(int64(len(wr.queue)))
	}
	// Pruning is a write transaction of its own: once per hour of windows
	// is plenty for a retention counted in days.
	if wr.newest.Sub(wr.prunedAt) >= time.Hour {
		a.prune(wr.newest)
		wr.prunedAt = wr.newest
	}
	return true
}

// drain stores what is left at shutdown, retrying a failing store for a
// little while; what still cannot be stored is reported, not hidden.
func (wr *writer) drain() error {
	deadline := time.Now().Add(drainTimeout)
	for !wr.flush() && time.Now().Before(deadline) {
		time.Sleep(min(wr.backoff, time.Until(deadline)))
	}
	if len(wr.queue) > 0 {
		wr.a.log.Error("windows lost at shutdown: the store kept failing", "windows", len(wr.queue), "err", wr.lastErr)
		return wr.lastErr
	}
	if wr.newest.After(wr.prunedAt) {
		wr.a.prune(wr.newest)
	}
	wr.a.log.Info("stopped", "windows_stored", wr.a.stored.Load())
	return nil
}

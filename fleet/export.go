package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// Config is what an Exporter needs.
type Config struct {
	Target  Target
	Host    string // the host name every row carries
	Cluster string // when set, also create Distributed tables <table>_all over it
	DB      *storage.DB
	Logger  *slog.Logger
}

// Exporter sends stored windows to ClickHouse from the outbox. The sink
// calls Stored after each store; the work happens in the exporter's own
// goroutine, so a slow or absent ClickHouse never holds up counting or
// storing: windows wait in the bbolt file, not in memory.
type Exporter struct {
	cfg   Config
	log   *slog.Logger
	nudge chan struct{}
	stop  chan time.Time // the drain deadline
	done  chan struct{}

	conn     clickhouse.Conn // the goroutine's own
	schemaOK bool
	// rolledTo: every hour of this host before it is rolled up in
	// ClickHouse (rollup.go); -1 until the first roll-up on a
	// connection, which checks the host's whole history. The goroutine's.
	rolledTo int64

	newest   atomic.Int64 // Unix seconds of the newest stored window start
	pending  atomic.Int64
	oldest   atomic.Int64 // Unix seconds of the oldest pending window start; 0: none
	length   atomic.Int64 // seconds of the newest window
	exported atomic.Uint64
	errs     atomic.Uint64
	gone     atomic.Uint64
	rollups  atomic.Uint64 // rollups built since start
	failing  atomic.Pointer[string]
	stopOnce sync.Once
}

// batchWindows bounds one insert while catching up: 64 windows of 10,000
// remotes are 640k rows, a few tens of MB on the wire.
const batchWindows = 64

// Retries back off from retryMin to retryMax.
const (
	retryMin = time.Second
	retryMax = time.Minute
)

// New makes an exporter and enables the DB's outbox (whose first creation
// queues every window already stored).
func New(cfg Config) (*Exporter, error) {
	if cfg.Host == "" {
		return nil, errors.New("fleet export: empty host name")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	created, err := cfg.DB.EnableOutbox()
	if err != nil {
		return nil, err
	}
	e := &Exporter{cfg: cfg, log: cfg.Logger, nudge: make(chan struct{}, 1), stop: make(chan time.Time, 1), done: make(chan struct{}), rolledTo: -1}
	_, last, n, err := cfg.DB.Bounds()
	if err != nil {
		return nil, err
	}
	if n > 0 {
		e.newest.Store(last.Unix())
	}
	if created && n > 0 {
		e.log.Info("clickhouse export: first start, the stored windows will be exported too", "windows", n)
	}
	e.refresh()
	return e, nil
}

// Start begins exporting in a goroutine of its own.
func (e *Exporter) Start() {
	e.log.Info("clickhouse export", "to", e.cfg.Target.Addrs, "database", e.cfg.Target.Database, "host", e.cfg.Host, "pending", e.pending.Load())
	go e.run()
}

// Stored tells the exporter that windows were stored. It never blocks.
func (e *Exporter) Stored(ws []*window.Window) {
	for _, w := range ws {
		if u := w.Start.Unix(); u > e.newest.Load() {
			e.newest.Store(u)
			e.length.Store(int64(w.Length / time.Second))
		}
	}
	select {
	case e.nudge <- struct{}{}:
	default:
	}
}

// Stop drains the outbox for at most grace, then stops; what is left
// stays in the outbox for the next start.
func (e *Exporter) Stop(grace time.Duration) {
	e.stopOnce.Do(func() { e.stop <- time.Now().Add(grace) })
	<-e.done
	if e.conn != nil {
		e.conn.Close()
	}
	if n := e.pending.Load(); n > 0 {
		e.log.Warn("clickhouse export stopped with windows still to send; the next start sends them", "pending", n)
	} else {
		e.log.Info("clickhouse export stopped", "exported", e.exported.Load())
	}
}

// Lag is how far the export is behind the local database.
type Lag struct {
	Windows  int64  // stored windows not yet exported
	Seconds  int64  // from the oldest of them to the newest stored window's end; 0 when none
	Exported uint64 // windows exported since start
	Errors   uint64 // failed attempts since start
	Gone     uint64 // windows pruned or missing before they could be exported
	Failing  string // the last error while the export fails
}

// Lag reads the exporter's counters; safe from any goroutine.
func (e *Exporter) Lag() Lag {
	l := Lag{Windows: e.pending.Load(), Exported: e.exported.Load(), Errors: e.errs.Load(), Gone: e.gone.Load()}
	if o := e.oldest.Load(); o > 0 && l.Windows > 0 {
		l.Seconds = max(e.newest.Load()+max(e.length.Load(), 1)-o, 0)
	}
	if f := e.failing.Load(); f != nil {
		l.Failing = *f
	}
	return l
}

// Gone counts windows that a prune deleted before they were exported; the
// sink reports storage.Pruned.Unexported here.
func (e *Exporter) Gone(n int) {
	if n > 0 {
		e.gone.Add(uint64(n))
		e.log.Warn("retention pruned windows that were never exported to clickhouse", "windows", n)
		e.refresh()
	}
}

// refresh reads the outbox's length and oldest entry.
func (e *Exporter) refresh() {
	es, total, err := e.cfg.DB.Pending(1)
	if err != nil {
		return
	}
	e.pending.Store(int64(total))
	if len(es) > 0 {
		e.oldest.Store(es[0].Start.Unix())
	} else {
		e.oldest.Store(0)
	}
}

func (e *Exporter) run() {
	defer close(e.done)
	var deadline time.Time // set once Stop was called
	backoff := time.Duration(0)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, deadline)
		}
		more, err := e.step(ctx)
		cancel()
		switch {
		case err != nil:
			e.errs.Add(1)
			msg := err.Error()
			if e.failing.Swap(&msg) == nil || backoff >= retryMax {
				e.log.Error("clickhouse export failed; the windows wait in the local database", "pending", e.pending.Load(), "err", err)
			}
			backoff = min(max(2*backoff, retryMin), retryMax)
			if e.conn != nil {
				e.conn.Close()
				e.conn, e.schemaOK, e.rolledTo = nil, false, -1
			}
		case backoff > 0:
			e.log.Info("clickhouse export works again", "pending", e.pending.Load())
			backoff = 0
			e.failing.Store(nil)
		}
		if !deadline.IsZero() && !more && err == nil {
			return // drained
		}
		if more && err == nil {
			// Catching up: look for Stop between batches, so that a
			// long backlog cannot hold a stop past its grace.
			select {
			case d := <-e.stop:
				deadline = d
			default:
			}
			continue
		}
		wait := backoff
		if err == nil {
			wait = time.Hour // until nudged
		}
		if !deadline.IsZero() {
			wait = min(wait, time.Until(deadline))
		}
		timer.Reset(wait)
		select {
		case <-e.nudge:
		case d := <-e.stop:
			deadline = d
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// step exports up to batchWindows of the oldest pending windows in one
// insert per table, then deletes their outbox entries. It reports whether
// more are pending.
func (e *Exporter) step(ctx context.Context) (more bool, err error) {
	es, total, err := e.cfg.DB.Pending(batchWindows)
	if err != nil {
		return false, err
	}
	e.pending.Store(int64(total))
	if len(es) == 0 {
		e.oldest.Store(0)
		return false, nil
	}
	e.oldest.Store(es[0].Start.Unix())
	if e.conn == nil {
		if e.conn, err = e.cfg.Target.open("default"); err != nil {
			return false, fmt.Errorf("connect: %w", err)
		}
	}
	if !e.schemaOK {
		if err := ensureSchema(ctx, e.conn, e.cfg.Target.Database, e.cfg.Cluster); err != nil {
			return false, err
		}
		e.schemaOK = true
	}
	// The newest entry of a window wins; its version is that sequence.
	latest := map[int64]uint64{}
	var order []int64
	for _, en := range es {
		u := en.Start.Unix()
		if _, ok := latest[u]; !ok {
			order = append(order, u)
		}
		latest[u] = en.Seq
	}
	var ws []versioned
	for _, u := range order {
		t := time.Unix(u, 0)
		var w *window.Window
		if err := e.cfg.DB.Windows(ctx, t, t.Add(time.Second), func(x *window.Window) error { w = x; return nil }); err != nil {
			return false, err
		}
		if w == nil {
			e.gone.Add(1)
			e.log.Warn("window no longer stored (pruned?) before its export", "window", t.UTC())
			continue
		}
		ws = append(ws, versioned{w, latest[u]})
	}
	if err := insert(ctx, e.conn, e.cfg.Target.Database, e.cfg.Host, ws); err != nil {
		return false, err
	}
	// The rollups of the hours this batch closed or changed, before the
	// outbox forgets the batch: a failure here sends it again (harmless:
	// read once), so no closed hour is left without its rollup.
	since := int64(0)
	if e.rolledTo >= 0 {
		since = min(e.rolledTo, es[0].Start.Unix())
		for _, en := range es {
			since = min(since, en.Start.Unix())
		}
	}
	open, built, err := rollUp(ctx, e.conn, e.cfg.Target.Database, e.cfg.Host, since)
	if err != nil {
		return false, err
	}
	e.rolledTo = open
	e.rollups.Add(uint64(built))
	if err := e.cfg.DB.Exported(es[len(es)-1].Seq); err != nil {
		return false, err
	}
	e.exported.Add(uint64(len(ws)))
	e.pending.Store(int64(total - len(es)))
	if total > len(es) {
		return true, nil
	}
	e.oldest.Store(0)
	return false, nil
}

type versioned struct {
	w       *window.Window
	version uint64
}

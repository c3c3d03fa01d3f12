package daemon

import (
	"context"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// A Consumer is told of each window once it is stored: the sink fans a
// window out to its consumers only after the transaction committed, so
// none of them announces a window the database does not hold.
//
// Stored runs on the sink's goroutine, for one window at a time, in the
// order windows were stored, and the sink waits for it. So a consumer that
// can be slow does not wait in Stored: the API's and the dashboard's
// streams drop a slow subscriber's windows rather than wait for it, and an
// export only takes note and works from the outbox on its own goroutine.
// The record log is a local append, and the alert engine's queue (bounded)
// is the one wait allowed, since the engine must see every window.
type Consumer interface {
	Stored(w *window.Window)
}

// consumerFunc makes a function a Consumer.
type consumerFunc func(*window.Window)

func (f consumerFunc) Stored(w *window.Window) { f(w) }

// consumers are the readers of stored windows, in the order the sink
// tells them: the record log, the API's streams, the metrics, the
// dashboard, the alert engine, the export. Only the parts this start runs
// are in it.
func (a *App) consumers(live bool) []Consumer {
	rl := &recordLog{a: a}
	if live {
		a.db.Last(context.Background(), 1, func(w *window.Window) error { rl.resumed = w.Start; return nil })
	}
	cs := []Consumer{rl}
	if a.api != nil {
		cs = append(cs, consumerFunc(a.api.Publish))
	}
	if a.metrics != nil {
		cs = append(cs, consumerFunc(a.metrics.Observe))
	}
	if a.web != nil {
		cs = append(cs, consumerFunc(a.web.Publish))
	}
	if a.alerts != nil {
		cs = append(cs, consumerFunc(a.alerts.Observe))
	}
	if a.export != nil {
		cs = append(cs, consumerFunc(a.exportStored)) // fleet.go
	}
	return cs
}

// recordLog appends stored windows to the record log. A failed append is
// logged, not retried: the window is safe in the database.
type recordLog struct {
	a *App
	// resumed is the newest window stored before this run (live only):
	// if this run's first window is the same one, the daemon restarted
	// inside it and the record log already has its block.
	resumed time.Time
}

func (r *recordLog) Stored(w *window.Window) {
	a := r.a
	write := a.rec.Write
	if !r.resumed.IsZero() && w.Start.Equal(r.resumed) {
		write = a.rec.WriteContinued // no second header for one window
	}
	r.resumed = time.Time{}
	if err := write(w, a.cfg.LogTop, a.cfg.Location); err != nil {
		a.log.Error("write record log", "err", err)
	}
}

package daemon

import (
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/fleet"
	"github.com/dstwatch/dstwatch/metrics"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// The daemon's side of the export to ClickHouse (package fleet): opened by
// New once the DB is open, started and drained as a component of Run, told
// of stored windows as a Consumer, reported in status and metrics.

// Drain budgets for the export at the end of a run: a replay exports its
// windows before it exits; a stop (SIGTERM) leaves the rest in the outbox
// for the next start, within systemd's default stop timeout.
const (
	exportDrainLive   = 10 * time.Second
	exportDrainReplay = 5 * time.Minute
)

// openExport makes the exporter once the DB is open.
func (a *App) openExport() error {
	if a.cfg.Export == nil {
		return nil
	}
	e, err := fleet.New(fleet.Config{Target: *a.cfg.Export, Host: a.cfg.HostName, Cluster: a.cfg.ExportCluster, DB: a.db, Logger: a.log})
	if err != nil {
		return err
	}
	a.export = e
	return nil
}

// startExport starts the exporter; the returned stop drains it.
func (a *App) startExport() (stop func()) {
	if a.export == nil {
		return func() {}
	}
	a.export.Start()
	return func() {
		grace := exportDrainLive
		if a.cfg.Read != "" {
			grace = exportDrainReplay
		}
		a.export.Stop(grace)
	}
}

// exportStored tells the exporter about a stored window; it never blocks:
// the exporter takes note and works from the outbox on its own goroutine.
func (a *App) exportStored(w *window.Window) { a.export.Stored([]*window.Window{w}) }

// exportPruned reports windows a prune deleted before their export.
func (a *App) exportPruned(p storage.Pruned) {
	if p.Unexported == 0 {
		return
	}
	if a.export != nil {
		a.export.Gone(p.Unexported)
	} else {
		a.log.Warn("retention pruned windows that were never exported to clickhouse (run without --clickhouse)", "windows", p.Unexported)
	}
}

func (a *App) exportStatus() *api.ExportStats {
	if a.export == nil {
		return nil
	}
	l := a.export.Lag()
	t := a.cfg.Export
	return &api.ExportStats{Target: strings.Join(t.Addrs, ",") + "/" + t.Database, Host: a.cfg.HostName,
		LagWindows: l.Windows, LagSeconds: l.Seconds, Exported: l.Exported, Errors: l.Errors, Unexported: l.Gone, Failing: l.Failing}
}

func (a *App) exportHealth() *metrics.ExportLag {
	if a.export == nil {
		return nil
	}
	l := a.export.Lag()
	return &metrics.ExportLag{Windows: l.Windows, Seconds: l.Seconds}
}

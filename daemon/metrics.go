package daemon

import (
	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/metrics"
)

// The Prometheus listener (--metrics): opened by New, served by Run, fed by
// the writer after each successful store.

// openMetrics makes the collectors and binds --metrics, so that a busy port
// fails the start (and a low port is bound before --user drops root).
func (a *App) openMetrics() error {
	if a.cfg.Metrics == "" {
		return nil
	}
	a.metrics = metrics.New(metrics.Config{ASNTop: a.cfg.MetricsASNTop, ServiceTop: a.cfg.MetricsServiceTop, Version: buildVersion(), Health: a.health,
		WebConfig: a.cfg.WebConfig, Log: a.log.With("listener", "metrics")})
	srv, err := a.metrics.Listen(a.cfg.Metrics)
	if err != nil {
		return err
	}
	a.metricsSrv = srv
	return nil
}

// serveMetrics serves /metrics until the returned stop is called.
func (a *App) serveMetrics() (stop func()) {
	if a.metricsSrv == nil {
		return func() {}
	}
	stop = serveUntilStop(a.log, "metrics listener failed", a.metricsSrv.Serve, func() { a.metricsSrv.Close() })
	a.log.Info("metrics listening", "addr", a.metricsSrv.Addr().String(), "path", "/metrics")
	return stop
}

// health is the daemon's state for a scrape: what Status reports, without
// touching the database.
func (a *App) health() metrics.Health {
	h := metrics.Health{
		WriterBacklog:  len(a.closed) + int(a.queued.Load()),
		StoreErrors:    a.storeErrs.Load(),
		WindowsDropped: a.dropped.Load(),
		CaptureGaps:    a.gaps.Load(),
		InterfacesDown: len(a.downList()),
		Export:         a.exportHealth(), // fleet.go
	}
	for _, f := range a.geo.Current().Files() {
		h.GeoIP = append(h.GeoIP, metrics.GeoFile{Path: f.Path, Type: f.Type, Build: f.Build})
	}
	if st := a.alertStats(); st != nil { // alerts.go
		s := st.Suppressed
		h.Alerts = &metrics.Alerts{Active: st.Active, Running: st.Running, Queued: st.Queued,
			Suppressed: map[string]uint64{alert.OverPerWindow: s.PerWindow, alert.OverActive: s.Active, alert.OverQueue: s.Queue}}
	}
	return h
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

// healthCollector exports Config.Health, read once per scrape.
type healthCollector struct{ fn func() Health }

var (
	descBacklog = prometheus.NewDesc("dstwatch_writer_backlog_windows",
		"Closed windows waiting to be stored.", nil, nil)
	descStoreErrors = prometheus.NewDesc("dstwatch_store_errors_total",
		"Failed store transactions; the windows stay queued and are retried.", nil, nil)
	descDropped = prometheus.NewDesc("dstwatch_windows_dropped_total",
		"Windows given up because the store queue was full (the store kept failing).", nil, nil)
	descGaps = prometheus.NewDesc("dstwatch_capture_gaps_total",
		"Live capture outages: an interface went down or away.", nil, nil)
	descDown = prometheus.NewDesc("dstwatch_capture_interfaces_down",
		"Capture interfaces not capturing now.", nil, nil)
	descAlertsActive = prometheus.NewDesc("dstwatch_alert_incidents_open",
		"Alert incidents open now (active or expiring).", nil, nil)
	descAlertsRunning = prometheus.NewDesc("dstwatch_alert_actions_running",
		"Alert incidents running actions now (at most the limit running).", nil, nil)
	descAlertsQueued = prometheus.NewDesc("dstwatch_alert_actions_queued",
		"Alert incidents waiting for a free slot to run their actions.", nil, nil)
	descAlertsSuppressed = prometheus.NewDesc("dstwatch_alert_incidents_suppressed_total",
		"Alert incidents not opened because a limit was reached, by reason: per_window, active, queue (kept in alerts.db).",
		[]string{"reason"}, nil)
	descExportWindows = prometheus.NewDesc("dstwatch_export_lag_windows",
		"Stored windows not yet exported to ClickHouse.", nil, nil)
	descExportSeconds = prometheus.NewDesc("dstwatch_export_lag_seconds",
		"Seconds of traffic from the oldest window not yet exported to the newest stored window's end.", nil, nil)
	descGeoBuild = prometheus.NewDesc("dstwatch_geoip_build_timestamp_seconds",
		"Build time of each GeoIP database in use, in Unix seconds; its age is time() minus this.",
		[]string{"type", "path"}, nil)
)

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBacklog, descStoreErrors, descDropped, descGaps, descDown, descGeoBuild,
		descAlertsActive, descAlertsRunning, descAlertsQueued, descAlertsSuppressed, descExportWindows, descExportSeconds} {
		ch <- d
	}
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.fn()
	ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(h.WriterBacklog))
	ch <- prometheus.MustNewConstMetric(descStoreErrors, prometheus.CounterValue, float64(h.StoreErrors))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(h.WindowsDropped))
	ch <- prometheus.MustNewConstMetric(descGaps, prometheus.CounterValue, float64(h.CaptureGaps))
	ch <- prometheus.MustNewConstMetric(descDown, prometheus.GaugeValue, float64(h.InterfacesDown))
	if a := h.Alerts; a != nil {
		ch <- prometheus.MustNewConstMetric(descAlertsActive, prometheus.GaugeValue, float64(a.Active))
		ch <- prometheus.MustNewConstMetric(descAlertsRunning, prometheus.GaugeValue, float64(a.Running))
		ch <- prometheus.MustNewConstMetric(descAlertsQueued, prometheus.GaugeValue, float64(a.Queued))
		for _, r := range []string{"per_window", "active", "queue"} {
			ch <- prometheus.MustNewConstMetric(descAlertsSuppressed, prometheus.CounterValue, float64(a.Suppressed[r]), r)
		}
	}
	if e := h.Export; e != nil {
		ch <- prometheus.MustNewConstMetric(descExportWindows, prometheus.GaugeValue, float64(e.Windows))
		ch <- prometheus.MustNewConstMetric(descExportSeconds, prometheus.GaugeValue, float64(e.Seconds))
	}
	seen := map[[2]string]bool{}
	for _, f := range h.GeoIP {
		k := [2]string{labelValue(f.Type), labelValue(f.Path)}
		if seen[k] || f.Build.IsZero() {
			continue
		}
		seen[k] = true
		// The erroring form: one odd file name must not fail every scrape.
		m, err := prometheus.NewConstMetric(descGeoBuild, prometheus.GaugeValue, float64(f.Build.Unix()), k[0], k[1])
		if err == nil {
			ch <- m
		}
	}
}

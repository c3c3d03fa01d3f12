package daemon

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/api"
)

// openAlerts loads --rules and opens the incidents file. Without --rules the
// file is still opened when it exists: incidents fired by an earlier run
// must expire and run their undo even if the rules are gone.
func (a *App) openAlerts() error {
	rs := a.cfg.RuleSet
	if rs == nil && a.cfg.Rules != "" {
		var err error
		if rs, err = alert.LoadRules(a.cfg.Rules); err != nil {
			return err
		}
	}
	if rs == nil {
		if _, err := os.Stat(a.cfg.AlertsDB); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	loc := a.cfg.Location
	if loc == nil {
		loc = time.Local
	}
	e, err := alert.Open(alert.Options{
		Path: a.cfg.AlertsDB, Mode: a.cfg.FileMode, Logger: a.log, History: a.db.Windows,
		Record: func(t time.Time, line string) {
			if err := a.rec.WriteLine(t.In(loc).Format(time.RFC3339) + " " + line); err != nil {
				a.log.Error("write record log", "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	if rs != nil {
		e.SetRules(rs)
		a.log.Info("alert rules loaded", "rules", len(rs.Rules), "path", a.cfg.Rules, "incidents", a.cfg.AlertsDB)
	}
	a.alerts = e
	return nil
}

// startAlerts resumes what the last run left and runs the expiries that
// passed while the daemon was down.
func (a *App) startAlerts() error {
	if a.alerts == nil {
		return nil
	}
	return a.alerts.Start()
}

// reloadRules is SIGHUP's part for alerts: a rules file that does not
// validate is logged and the rules in use stay.
func (a *App) reloadRules() {
	if a.alerts == nil || a.cfg.Rules == "" {
		return
	}
	rs, err := alert.LoadRules(a.cfg.Rules)
	if err != nil {
		a.log.Error("alert rules not reloaded; keeping the rules in use", "err", err)
		return
	}
	a.alerts.SetRules(rs)
	a.log.Info("alert rules reloaded", "rules", len(rs.Rules), "path", a.cfg.Rules)
}

func (a *App) closeAlerts() {
	// Waits for API requests still using the engine: the API's shutdown
	// gives up after a while, and an expiry may be running an undo.
	a.alertsMu.Lock()
	defer a.alertsMu.Unlock()
	if a.alerts != nil {
		if err := a.alerts.Close(); err != nil {
			a.log.Error("close alerts", "err", err)
		}
		a.alerts = nil
	}
}

// Incidents, Incident and ExpireIncident make App the API's IncidentSource.

func (a *App) Incidents(ctx context.Context, openOnly bool) ([]*alert.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.alertsMu.RLock()
	defer a.alertsMu.RUnlock()
	if a.alerts == nil {
		return nil, api.ErrAlertsOff
	}
	return a.alerts.List(openOnly)
}

func (a *App) Incident(ctx context.Context, id uint64) (*alert.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.alertsMu.RLock()
	defer a.alertsMu.RUnlock()
	if a.alerts == nil {
		return nil, api.ErrAlertsOff
	}
	return a.alerts.Get(id)
}

func (a *App) ExpireIncident(ctx context.Context, id uint64) (*alert.Incident, error) {
	a.alertsMu.RLock()
	defer a.alertsMu.RUnlock()
	if a.alerts == nil {
		return nil, api.ErrAlertsOff
	}
	return a.alerts.Expire(ctx, id, "expired early by request")
}

// alertStats are the alert limits and what they suppressed, for status and
// metrics; nil while alerts are off.
func (a *App) alertStats() *alert.Stats {
	a.alertsMu.RLock()
	defer a.alertsMu.RUnlock()
	if a.alerts == nil {
		return nil
	}
	st, err := a.alerts.Stats()
	if err != nil {
		a.log.Error("alerts: read stats", "err", err)
	}
	return &st
}

package daemon

import (
	"github.com/dstwatch/dstwatch/web"
)

// The opt-in web dashboard (--web): bound by New (a busy port fails the
// start, a low one is bound before --user drops root), served by Run, fed
// by the writer after each successful store, as the API's stream is.

func (a *App) openWeb() error {
	if a.cfg.Web.Addr == "" {
		return nil
	}
	c := a.cfg.Web
	c.Reader, c.Status, c.Log, c.Location = a, a.Status, a.log, a.cfg.Location
	c.WebConfig = a.cfg.WebConfig
	s, err := web.Listen(c)
	if err != nil {
		return err
	}
	a.web = s
	return nil
}

// serveWeb serves the dashboard until the returned stop is called.
func (a *App) serveWeb() (stop func()) {
	if a.web == nil {
		return func() {}
	}
	stop = serveUntilStop(a.log, "web dashboard failed", a.web.Serve, a.web.Close)
	a.log.Info("web dashboard listening", "addr", a.web.URL())
	return stop
}

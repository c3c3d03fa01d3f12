package daemon

import (
	"context"
	"net/netip"

	"github.com/dstwatch/dstwatch/capture"
)

// Per-service wiring: which local ports are services (the kernel's socket
// tables live, --service-ports and the ephemeral range), and the services
// of a closed window resolved like its remotes.

// openServices builds the port set the classifiers decide service sides
// with. Live: the host's listening sockets and ephemeral range, reread by
// followServices. Replay: the listening sockets of the captured host are
// unknown, so only --service-ports and --ephemeral-start count.
func (a *App) openServices() error {
	if a.cfg.Read != "" {
		start := a.cfg.EphemeralStart
		if start == 0 {
			start = capture.DefaultEphemeralStart
		}
		ps := capture.NewPortSet(start)
		for _, p := range a.cfg.ServicePorts {
			ps.AddService(p)
		}
		a.services = capture.NewServices(ps)
		return nil
	}
	ps, err := capture.ProcNet{EphemeralStart: a.cfg.EphemeralStart}.ReadPortSet(a.cfg.ServicePorts)
	if err != nil {
		return err
	}
	a.services = capture.NewServices(ps)
	return nil
}

// followServices rereads the listening sockets every RefreshEvery.
func (a *App) followServices(ctx context.Context) {
	pn := capture.ProcNet{EphemeralStart: a.cfg.EphemeralStart}
	pn.Follow(ctx, a.services, a.cfg.ServicePorts, capture.RefreshEvery, func(err error) {
		a.log.Warn("cannot reread the listening sockets; keeping the last ones", "err", err)
	})
}

// newClassifier is capture.NewClassifier with the daemon's services.
func (a *App) newClassifier(local []netip.Addr) *capture.Classifier {
	c := capture.NewClassifier(local, a.cfg.Exclude)
	c.SetServices(a.services)
	return c
}

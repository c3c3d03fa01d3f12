package daemon

import (
	"context"
	"net/netip"

	"github.com/dstwatch/dstwatch/anon"
	"github.com/dstwatch/dstwatch/window"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/geo"
	"github.com/dstwatch/dstwatch/rotate"
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

// resolveServices gives each service's top remotes their country and ASN,
// and anonymises them as the window's remotes are (merging rows that map
// to one value).
func (a *App) resolveServices(ss []rotate.Service, g *geo.DB) []window.Service {
	if len(ss) == 0 {
		return nil
	}
	out := make([]window.Service, len(ss))
	for i, s := range ss {
		o := window.Service{Key: s.Key, Remotes: s.Remotes, Counts: s.Counts, Other: s.Other}
		if len(s.Top) > 0 {
			o.Top = make([]window.Remote, 0, len(s.Top))
		}
		for _, r := range s.Top {
			info := g.Lookup(r.Addr)
			o.Top = append(o.Top, window.Remote{Addr: r.Addr, Country: info.Country, ASN: info.ASN, ASOrg: info.ASOrg, Counts: r.Counts})
		}
		if a.cfg.Anonymize != nil {
			o.Top = anon.Remotes(a.cfg.Anonymize, o.Top)
			// Distinct anonymised values: never more than the rows show
			// when the window's list was complete.
			if s.Remotes == len(s.Top) {
				o.Remotes = len(o.Top)
			}
		}
		out[i] = o
	}
	return out
}

package daemon

import (
	"github.com/dstwatch/dstwatch/anon"
	"github.com/dstwatch/dstwatch/geo"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/window"
)

// resolve gives each remote of a closed window, and each top remote of its
// services, its country and ASN: one lookup per distinct address per
// window, never per packet. Anonymisation comes after the lookup, so
// countries stay exact while the stored window never holds a full address.
func (a *App) resolve(w *rotate.Window) *window.Window {
	return resolveWindow(a.geo.Current(), a.cfg.Anonymize, w)
}

// resolveWindow is resolve with the database (one for the whole window,
// even mid-reload) and the anonymiser (nil: none) given.
func resolveWindow(g *geo.DB, an anon.Anonymizer, w *rotate.Window) *window.Window {
	sw := &window.Window{Start: w.Start, Length: w.Length, Other: w.Other, Stats: w.Stats, GeoBuild: g.CountryBuild()}
	sw.Remotes = make([]window.Remote, len(w.Remotes))
	for i, r := range w.Remotes {
		sw.Remotes[i] = window.Remote{Addr: r.Addr, Counts: r.Counts}
	}
	tops := 0
	for i := range w.Services {
		tops += len(w.Services[i].Top)
	}
	// One array for every service's top rows: a flood's window has a
	// service (a random port) for nearly every remote, and an allocation
	// each was a tenth of the writer's time.
	rows := make([]window.Remote, 0, tops)
	if len(w.Services) > 0 {
		sw.Services = make([]window.Service, len(w.Services))
	}
	for i, s := range w.Services {
		o := window.Service{Key: s.Key, Remotes: s.Remotes, Counts: s.Counts, Other: s.Other}
		if len(s.Top) > 0 {
			start := len(rows)
			for _, r := range s.Top {
				rows = append(rows, window.Remote{Addr: r.Addr, Counts: r.Counts})
			}
			o.Top = rows[start:len(rows):len(rows)]
		}
		sw.Services[i] = o
	}
	lookupAll(g, sw.Remotes, rows)
	if an != nil {
		anon.Apply(an, sw)
		for i := range sw.Services {
			o := &sw.Services[i]
			n := len(o.Top)
			o.Top = anon.Remotes(an, o.Top)
			// Distinct anonymised values: never more than the rows show
			// when the window's list was complete.
			if o.Remotes == n {
				o.Remotes = len(o.Top)
			}
		}
	}
	return sw
}

// lookupAll fills in the country and AS of every row of the lists.
func lookupAll(g *geo.DB, lists ...[]window.Remote) {
	for _, l := range lists {
		for i := range l {
			info := g.Lookup(l[i].Addr)
			l[i].Country, l[i].ASN, l[i].ASOrg = info.Country, info.ASN, info.ASOrg
		}
	}
}

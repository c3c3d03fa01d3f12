package daemon

import (
	"github.com/dstwatch/dstwatch/anon"
	"github.com/dstwatch/dstwatch/geo"
	"github.com/dstwatch/dstwatch/window"
)

// resolve gives each remote of a closed window, and each top remote of its
// services, its country and ASN, in place: one lookup per remote per
// window, never per packet. Anonymisation comes after the lookup, so
// countries stay exact while the stored window never holds a full address.
func (a *App) resolve(w *window.Window) *window.Window {
	return resolveWindow(a.geo.Current(), a.cfg.Anonymize, w)
}

// resolveWindow is resolve with the database (one for the whole window,
// even mid-reload) and the anonymiser (nil: none) given.
func resolveWindow(g *geo.DB, an anon.Anonymizer, w *window.Window) *window.Window {
	w.GeoBuild = g.CountryBuild()
	lookupAll(g, w.Remotes)
	for i := range w.Services {
		lookupAll(g, w.Services[i].Top)
	}
	if an != nil {
		anon.Apply(an, w)
		for i := range w.Services {
			s := &w.Services[i]
			n := len(s.Top)
			s.Top = anon.Remotes(an, s.Top)
			// Distinct anonymised values: never more than the rows show
			// when the window's list was complete.
			if s.Remotes == n {
				s.Remotes = len(s.Top)
			}
		}
	}
	return w
}

// lookupAll fills in the country and AS of every row.
func lookupAll(g *geo.DB, rows []window.Remote) {
	if g == nil {
		return
	}
	for i := range rows {
		info := g.Lookup(rows[i].Addr)
		rows[i].Country, rows[i].ASN, rows[i].ASOrg = info.Country, info.ASN, info.ASOrg
	}
}

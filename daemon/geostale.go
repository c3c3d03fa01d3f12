package daemon

import (
	"time"

	"github.com/dstwatch/dstwatch/geo"
)

// warnStale says, at start and at every reload, when a GeoIP file has not
// been rebuilt for weeks: its countries keep being used (an old answer
// beats none), but they go stale as networks move.
func (a *App) warnStale(f geo.FileInfo) {
	now := time.Now()
	if f.Stale(now) {
		a.log.Warn("geoip database is old; its countries and AS numbers go stale: update it (geoipupdate, weekly)",
			"path", f.Path, "build", f.Build.Format(time.DateOnly), "age_days", int(now.Sub(f.Build).Hours()/24))
	}
}

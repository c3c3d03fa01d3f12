package daemon

import (
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// SpanWith and Bounds (with Last) make App a query.Reader: the API answers
// a range's aggregate from the rollup tiers, exactly as a read of the file
// does.

func (a *App) SpanWith(from, to time.Time, opt storage.SpanOptions, fn func(*window.Window) error) (window.Resolution, error) {
	return a.db.SpanWith(from, to, opt, fn)
}

func (a *App) Bounds() (first, last time.Time, n int, err error) { return a.db.Bounds() }

// LastWith lets the API's --last answers name the damaged windows they skip.
func (a *App) LastWith(n int, opt storage.SpanOptions, fn func(*window.Window) error) error {
	return a.db.LastWith(n, opt, fn)
}

var _ query.Reader = (*App)(nil)

// TierStats is what each tier of db holds, for status.
func TierStats(db *storage.DB) (*api.Tiers, error) {
	u, err := db.Usage()
	if err != nil {
		return nil, err
	}
	sealed, err := db.Sealed()
	if err != nil {
		return nil, err
	}
	one := func(t storage.TierUsage) api.TierStats {
		s := api.TierStats{Units: t.Units, Bytes: t.Bytes}
		if t.Units > 0 {
			s.First, s.Last = t.First.UTC().Format(time.RFC3339), t.Last.UTC().Format(time.RFC3339)
		}
		return s
	}
	ts := &api.Tiers{Windows: one(u[window.Raw]), Hours: one(u[window.Hourly]), Days: one(u[window.Daily])}
	if sealed.Unix() > 0 {
		ts.Sealed = sealed.UTC().Format(time.RFC3339)
	}
	return ts, nil
}

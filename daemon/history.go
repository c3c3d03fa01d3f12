package daemon

import (
	"context"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// Windows, Aggregate, Services and Usage make App a query.Reader, which
// the API and the dashboard read: a range's aggregate is answered from the
// rollup tiers, exactly as a read of the file is.

func (a *App) Windows(ctx context.Context, r query.Range, fn func(*window.Window) error) error {
	return query.Local(a.db).Windows(ctx, r, fn)
}

func (a *App) Aggregate(ctx context.Context, r query.Range, q query.Question) ([]query.Row, query.Summary, error) {
	return query.Local(a.db).Aggregate(ctx, r, q)
}

func (a *App) Services(ctx context.Context, r query.Range, q query.ServiceQuestion) ([]query.ServiceRow, query.Summary, error) {
	return query.Local(a.db).Services(ctx, r, q)
}

func (a *App) Usage(ctx context.Context) ([3]query.Tier, error) {
	return query.Local(a.db).Usage(ctx)
}

var _ api.Source = (*App)(nil)

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

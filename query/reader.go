package query

import (
	"context"
	"time"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// Range is what a read covers: the windows starting in [From, To), or the
// Last N windows when Last > 0 (From and To are then ignored).
type Range struct {
	From, To time.Time
	Last     int
}

// Reader is where the CLI, the report, the dashboard and the API read
// stored windows and their answers: a database in this process (Local),
// the daemon in front of one (daemon.App), or a running daemon over its
// socket (api.Client). The answers are the same whichever it is: a
// database's are Answer and AnswerServices, the daemon's API answers with
// those. Every read stops when ctx is done.
//
// It answers rather than hands out rollups: what a range's aggregate is
// read from (tiers, pruned edges, caps) is the database's business, and an
// API client gets the daemon's answer instead of re-adding units.
type Reader interface {
	// Windows calls fn with each raw window of r, oldest first; an error
	// from fn stops the read and is returned as is.
	Windows(ctx context.Context, r Range, fn func(*window.Window) error) error
	// Aggregate is Answer over r.
	Aggregate(ctx context.Context, r Range, q Question) ([]Row, Summary, error)
	// Services is AnswerServices over r.
	Services(ctx context.Context, r Range, q ServiceQuestion) ([]ServiceRow, Summary, error)
	// Usage is what each tier holds, indexed by window.Resolution.
	Usage(ctx context.Context) ([3]Tier, error)
}

// Tier is what one tier of stored units holds.
type Tier struct {
	Units       int
	First, Last time.Time // the first and the last unit's start; zero when none
}

// Local is the Reader of a database opened in this process.
func Local(db *storage.DB) Reader { return local{db} }

type local struct{ db *storage.DB }

func (l local) Windows(ctx context.Context, r Range, fn func(*window.Window) error) error {
	if r.Last > 0 {
		return l.db.Last(ctx, r.Last, fn)
	}
	return l.db.Windows(ctx, r.From, r.To, fn)
}

func (l local) Aggregate(ctx context.Context, r Range, q Question) ([]Row, Summary, error) {
	return Answer(ctx, l.db, r, q)
}

func (l local) Services(ctx context.Context, r Range, q ServiceQuestion) ([]ServiceRow, Summary, error) {
	return AnswerServices(ctx, l.db, r, q)
}

func (l local) Usage(ctx context.Context) ([3]Tier, error) {
	var ts [3]Tier
	if err := ctx.Err(); err != nil {
		return ts, err
	}
	u, err := l.db.Usage()
	for i, t := range u {
		ts[i] = Tier{Units: t.Units, First: t.First, Last: t.Last}
	}
	return ts, err
}

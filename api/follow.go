package api

import (
	"context"
	"errors"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// followRetry is how long Follow waits after the stream broke before it
// dials again.
const followRetry = time.Second

// Follow calls fn with each window stored after since, oldest first, as
// the daemon's stream brings them. Once subscribed it first fetches what
// was stored after since (nothing when since is zero), so that a window
// stored meanwhile is neither missed nor told twice. When the stream
// breaks (the daemon stopped or restarted, or this reader fell behind) it
// waits a second, dials again with dial (a daemon started later may listen
// elsewhere) and does the same from the newest window told.
//
// live (if not nil) is told each time the stream is up; broke (if not
// nil) each time it breaks, with why: nil when the daemon ended the
// stream, ErrNotRunning when no daemon answers, else the error (fn's
// included). An error broke returns ends Follow with it; without broke,
// any error but ErrNotRunning does. Follow returns nil once ctx is done.
func Follow(ctx context.Context, dial func() *Client, since time.Time, fn func(*window.Window) error, live func(), broke func(error) error) error {
	newest := since
	tell := func(w *window.Window) error {
		if !w.Start.After(newest) {
			return nil
		}
		newest = w.Start
		return fn(w)
	}
	for {
		c := dial()
		fill := func() error {
			if live != nil {
				live()
			}
			if newest.IsZero() {
				return nil
			}
			return c.Windows(ctx, query.Range{From: newest.Add(time.Second), To: time.Now().Add(24 * time.Hour)}, tell)
		}
		err := c.Stream(ctx, fill, tell)
		c.Close()
		if ctx.Err() != nil {
			return nil
		}
		if broke != nil {
			if err := broke(err); err != nil {
				return err
			}
		} else if err != nil && !errors.Is(err, ErrNotRunning) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followRetry):
		}
	}
}

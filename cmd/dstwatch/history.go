package main

import (
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
)

// SpanWith and Bounds (with Last) make App a query.Reader: the API answers
// a range's aggregate from the rollup tiers, exactly as a read of the file
// does.

func (a *App) SpanWith(from, to time.Time, opt storage.SpanOptions, fn func(*storage.Window) error) (storage.Resolution, error) {
	return a.db.SpanWith(from, to, opt, fn)
}

func (a *App) Bounds() (first, last time.Time, n int, err error) { return a.db.Bounds() }

var _ query.Reader = (*App)(nil)

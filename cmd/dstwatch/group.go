package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/dstwatch/dstwatch/query"
)

// checkGrouping refuses flags that do not fit --by: periods are listed
// whole and oldest first, so --top and --sort have nothing to do there;
// --prefix4 and --prefix6 are for --by prefix.
func checkGrouping(o queryOpts, given map[string]bool) error {
	if o.by.IsPeriod() && (given["top"] || given["sort"]) {
		return fmt.Errorf("%w: --by %s lists every %s oldest first: --top and --sort are for the other groupings", errUsage, o.by, o.by)
	}
	if o.by != query.ByPrefix && (given["prefix4"] || given["prefix6"]) {
		return fmt.Errorf("%w: --prefix4 and --prefix6 are for --by prefix", errUsage)
	}
	if o.prefix4 < 1 || o.prefix4 > 32 {
		return fmt.Errorf("%w: --prefix4 %d: want 1 to 32", errUsage, o.prefix4)
	}
	if o.prefix6 < 1 || o.prefix6 > 128 {
		return fmt.Errorf("%w: --prefix6 %d: want 1 to 128", errUsage, o.prefix6)
	}
	return nil
}

// periodName is how a table names a period: by its start, in loc.
func periodName(by query.By, start time.Time, loc *time.Location) string {
	l := start.In(loc)
	switch by {
	case query.ByHour:
		// The zone tells apart the two hours that share a clock time on
		// the day summer time ends.
		return l.Format("2006-01-02 15:04 MST")
	case query.ByDay:
		return l.Format("2006-01-02 Mon")
	case query.ByWeek:
		_, w := l.ISOWeek()
		return l.Format("2006-01-02") + " W" + strconv.Itoa(w)
	}
	return l.Format("2006-01")
}

// remotesCell is a period's distinct remotes, >= when a lower bound.
func remotesCell(r query.Row) string {
	if r.Inexact {
		return ">=" + strconv.Itoa(r.Remotes)
	}
	return strconv.Itoa(r.Remotes)
}

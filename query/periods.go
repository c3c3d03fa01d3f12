package query

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// Calendar groupings: totals per hour, day, week (from Monday) or month of
// a time zone, oldest first.
const (
	ByHour  By = "hour"
	ByDay   By = "day"
	ByWeek  By = "week"
	ByMonth By = "month"
)

// IsPeriod reports whether b groups by calendar periods.
func (b By) IsPeriod() bool {
	switch b {
	case ByHour, ByDay, ByWeek, ByMonth:
		return true
	}
	return false
}

// maxPeriodRemotes bounds the distinct addresses one period keeps to count
// its remotes (about 50 MB); past it the count is a lower bound. A month
// of a scanned host can see millions.
var maxPeriodRemotes = 1 << 20 // a variable for tests

// PeriodStart is the start of the period of b holding t, in loc: the local
// hour, midnight, Monday midnight or first of the month. An hour is where
// loc's clock shows a whole hour, so in a zone 30 minutes off UTC it starts
// at half past a UTC hour; twice the same local hour on the day summer time
// ends are two periods.
func PeriodStart(b By, t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	y, m, d := l.Date()
	switch b {
	case ByHour:
		return t.Add(-time.Duration(l.Minute())*time.Minute - time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond()))
	case ByDay:
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case ByWeek:
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	case ByMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	return t
}

// PeriodEnd is the start of the period after the one starting at start.
func PeriodEnd(b By, start time.Time, loc *time.Location) time.Time {
	l := start.In(loc)
	y, m, d := l.Date()
	switch b {
	case ByHour:
		// The next whole hour of loc's clock; one hour on in all zones
		// but those whose offset changes by a part of an hour.
		if next := PeriodStart(b, start.Add(time.Hour+30*time.Minute), loc); next.After(start) && next.Sub(start) <= time.Hour {
			return next
		}
		return start.Add(time.Hour)
	case ByDay:
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case ByWeek:
		return time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	case ByMonth:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return start
}

// Periods splits [from, to) into whole periods of b in loc: the first one
// holds from, the last one holds the instant before to, so the range is
// widened to whole periods.
func Periods(b By, from, to time.Time, loc *time.Location) [][2]time.Time {
	var ps [][2]time.Time
	for p := PeriodStart(b, from, loc); p.Before(to); {
		e := PeriodEnd(b, p, loc)
		if !e.After(p) { // cannot happen; never loop forever
			break
		}
		ps = append(ps, [2]time.Time{p, e})
		p = e
	}
	return ps
}

// periodState is what an Aggregator grouping by period keeps for the
// period being added up: units arrive oldest first, so only the newest
// period's distinct addresses are held.
type periodState struct {
	loc   *time.Location
	cur   int32 // row of the current period; -1 none
	addrs map[netip.Addr]struct{}
}

func (a *Aggregator) addPeriod(w *window.Window) {
	p := &a.period
	start := PeriodStart(a.by, w.Start, p.loc)
	if p.cur < 0 || !a.rows[p.cur].Start.Equal(start) {
		// Units come oldest first (Span per period, Last), so a period
		// once left is not met again.
		p.cur = int32(len(a.rows))
		a.rows = append(a.rows, Row{Start: start, End: PeriodEnd(a.by, start, p.loc)})
		p.addrs = map[netip.Addr]struct{}{}
	}
	row := &a.rows[p.cur]
	for i := range w.Remotes {
		r := &w.Remotes[i]
		row.Counts.Add(r.Counts)
		if _, ok := p.addrs[r.Addr]; ok {
			continue
		}
		if len(p.addrs) >= maxPeriodRemotes {
			row.Inexact = true
			continue
		}
		p.addrs[r.Addr] = struct{}{}
	}
	row.Remotes = len(p.addrs)
	row.Counts.Add(w.Other)
	// Remotes folded by --max-remotes or a rollup's cap have no address:
	// the period's count of distinct remotes cannot include them.
	if w.Stats.Folded > 0 || w.Capped > 0 {
		row.Inexact = true
	}
}

// readPeriods feeds add the units of each period of [from, to) widened to
// whole periods, one span per period, so that no rollup straddles two of
// them: a local day is its hourly rollups (UTC daily rollups only where the
// zone is UTC), a local month its whole UTC days' rollups and the hours at
// its edges.
func readPeriods(ctx context.Context, db *storage.DB, b By, loc *time.Location, from, to time.Time, opt storage.SpanOptions, feed func(*window.Window) error) (window.Resolution, error) {
	res := window.Raw
	for i, p := range Periods(b, from, to, loc) {
		n := 0
		r, err := db.SpanWith(ctx, p[0], p[1], opt, func(w *window.Window) error {
			n++
			return feed(w)
		})
		if err != nil {
			return res, err
		}
		// A period with nothing stored had nothing rounded: what a
		// coarser unit holds went to the period it starts in, which says
		// so itself. Only the first period's left-out unit belongs to
		// none, so its resolution always counts. Without this, every
		// empty hour of a year-wide --by hour would report the tiers'
		// pruning marks.
		if n > 0 || i == 0 {
			res = max(res, r)
		}
	}
	return res, nil
}

// ParseZone reads a time zone as the API's tz parameter carries it: UTC,
// or an IANA name such as Europe/Berlin.
func ParseZone(s string) (*time.Location, error) {
	if s == "" || s == "UTC" {
		return time.UTC, nil
	}
	if s == "Local" {
		// The reader's local zone is not the asker's: refuse the name.
		return nil, fmt.Errorf("time zone %q: give an IANA name such as Europe/Berlin", s)
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", s, err)
	}
	return loc, nil
}

// NamedLocal is the local time zone loaded by its IANA name, which a
// daemon can load too: from TZ, or from where /etc/localtime links to.
// A zone that has no name (a copied /etc/localtime, TZ naming a file) is
// an error.
func NamedLocal() (*time.Location, error) {
	name, set := os.LookupEnv("TZ")
	if set {
		name = strings.TrimPrefix(name, ":")
		if name == "" {
			return time.UTC, nil
		}
	} else {
		target, err := filepath.EvalSymlinks("/etc/localtime")
		if err != nil {
			if os.IsNotExist(err) {
				return time.UTC, nil // as Go's time.Local then is
			}
			return nil, fmt.Errorf("local time zone: %w", err)
		}
		_, after, ok := strings.Cut(target, "zoneinfo/")
		if !ok {
			return nil, fmt.Errorf("local time zone: /etc/localtime is not a link into a zoneinfo directory")
		}
		name = after
	}
	loc, err := ParseZone(name)
	if err != nil {
		return nil, fmt.Errorf("local time zone: %w", err)
	}
	return loc, nil
}

// sortPeriods orders period rows oldest first.
func sortPeriods(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int { return a.Start.Compare(b.Start) })
}

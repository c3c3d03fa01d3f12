package storage

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// Default rollup caps: how many remotes one rollup keeps with their own row.
//
// A rollup is rewritten whole when it changes, and a month-wide query
// decodes up to ~46 hourly and ~30 daily rollups, so the caps bound both the
// write cost and a query's cost, as well as the file: at about 25 bytes per
// remote, a full hourly rollup is 1.25 MB and a full daily one 2.5 MB. With
// the default retentions that is at most 2.7 GB of hourly and 1.8 GB of
// daily rollups for a host whose every hour sees 50k distinct remotes, which
// is a scanner, not a proxy. A busy proxy sees a few thousand to ~20k
// distinct remotes an hour, well under the caps, so its rollups are exact
// per remote; the caps only stop a scan (millions of one-packet remotes)
// from making every rollup huge.
const (
	DefaultHourCap = 50_000
	DefaultDayCap  = 100_000
)

// caps are the rollup caps, and how the write paths that get them report
// a damaged value they skip (nil: not reported).
type caps struct {
	hour, day int
	damage    func(r window.Resolution, key []byte, err error)
}

func (c caps) skip(r window.Resolution, key []byte, err error) {
	if c.damage != nil {
		c.damage(r, key, err)
	}
}

func capsOf(o Options) caps {
	c := caps{hour: o.HourCap, day: o.DayCap}
	if c.hour == 0 {
		c.hour = DefaultHourCap
	}
	if c.day == 0 {
		c.day = DefaultDayCap
	}
	return c
}

func (c caps) of(r window.Resolution) int {
	if r == window.Daily {
		return c.day
	}
	return c.hour
}

// acc adds windows (or finer rollups) up into one rollup, folding remotes
// past its cap into Other. The cap rule is "first come, first kept": while
// the rollup has fewer rows than its cap, a new remote gets a row; once it
// is full, its set of rows is frozen, so a remote without a row has all of
// its counts in Other and a remote with one has all of them there. Windows
// come heaviest remote first, so of one window the heaviest get the last
// free rows.
type acc struct {
	w   *window.Window
	at  map[[16]byte]int
	cap int
	svc *svcAcc // services.go
}

func newAcc(start time.Time, r window.Resolution, cap int) *acc {
	return &acc{w: &window.Window{Start: start, Length: tierLength(r)}, at: map[[16]byte]int{}, cap: cap}
}

// loadAcc starts from the stored rollup at start, when there is one. A
// stored rollup that does not decode is returned as errCorrupt, for the
// caller to skip.
func loadAcc(b *bolt.Bucket, start time.Time, r window.Resolution, cap int) (*acc, error) {
	a := newAcc(start, r, cap)
	k := windowKey(start)
	v := b.Get(k)
	if v == nil {
		return a, nil
	}
	old, err := UnmarshalWindow(k, v)
	if err != nil {
		return nil, fmt.Errorf("%s rollup %s: %w", r, start.Format(time.RFC3339), err)
	}
	old.Length = a.w.Length
	a.w = old
	a.at = make(map[[16]byte]int, len(old.Remotes))
	for i := range old.Remotes {
		a.at[old.Remotes[i].Addr.As16()] = i
	}
	return a, nil
}

func (a *acc) add(w *window.Window) {
	m := a.w
	a.addServices(w)
	m.Stats.Add(w.Stats)
	m.Other.Add(w.Other)
	if w.GeoBuild.After(m.GeoBuild) {
		m.GeoBuild = w.GeoBuild
	}
	for i := range w.Remotes {
		r := &w.Remotes[i]
		k := r.Addr.Unmap().As16()
		if j, ok := a.at[k]; ok {
			e := &m.Remotes[j]
			e.Counts.Add(r.Counts)
			if r.Country != "" {
				e.Country = r.Country
			}
			if r.ASN != 0 {
				e.ASN, e.ASOrg = r.ASN, r.ASOrg
			}
			continue
		}
		if a.cap > 0 && len(m.Remotes) >= a.cap {
			m.Other.Add(r.Counts)
			m.Capped++
			continue
		}
		a.at[k] = len(m.Remotes)
		nr := *r
		nr.Addr = r.Addr.Unmap()
		m.Remotes = append(m.Remotes, nr)
	}
}

func (a *acc) store(b *bolt.Bucket) error {
	sortRemotes(a.w.Remotes)
	a.storeServices()
	a.w.Groups = groupsOf(a.w.Remotes)
	// The map's indexes are stale now; an acc is stored once, at its end.
	a.at = nil
	return b.Put(windowKey(a.w.Start), MarshalWindow(a.w))
}

// groupsOf sums remotes per (country, ASN), ordered by country then ASN.
func groupsOf(rs []window.Remote) []window.Group {
	type key struct {
		c   string
		asn uint32
	}
	at := map[key]int{}
	var gs []window.Group
	for i := range rs {
		r := &rs[i]
		k := key{r.Country, r.ASN}
		j, ok := at[k]
		if !ok {
			j = len(gs)
			at[k] = j
			gs = append(gs, window.Group{Country: r.Country, ASN: r.ASN})
		}
		gs[j].Remotes++
		gs[j].Counts.Add(r.Counts)
	}
	slices.SortFunc(gs, func(a, b window.Group) int {
		if a.Country != b.Country {
			return strings.Compare(a.Country, b.Country)
		}
		return cmp.Compare(a.ASN, b.ASN)
	})
	return gs
}

// accs holds the rollups one transaction touches, keyed by start, loaded
// on first use and stored once at the end.
type accs struct {
	r     window.Resolution
	cap   int
	c     caps
	b     *bolt.Bucket
	m     map[int64]*acc
	order []int64
}

func newAccs(tx *bolt.Tx, r window.Resolution, c caps) *accs {
	return &accs{r: r, cap: c.of(r), c: c, b: tx.Bucket(tierBucket(r)), m: map[int64]*acc{}}
}

// get returns the rollup at start, or nil when the stored one is damaged:
// it is left as it is (and reported) rather than rewritten with part of its
// counts, which would look right and be wrong.
func (s *accs) get(start time.Time) (*acc, error) {
	if a, ok := s.m[start.Unix()]; ok {
		return a, nil
	}
	a, err := loadAcc(s.b, start, s.r, s.cap)
	if isDamage(err) {
		s.c.skip(s.r, windowKey(start), err)
		a, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.m[start.Unix()] = a
	s.order = append(s.order, start.Unix())
	return a, nil
}

func (s *accs) store() error {
	// Keys in ascending order: bbolt splits pages badly on random inserts.
	slices.Sort(s.order)
	for _, k := range s.order {
		if s.m[k] == nil {
			continue // damaged: left as it is
		}
		if err := s.m[k].store(s.b); err != nil {
			return err
		}
	}
	return nil
}

// rollUp keeps the rollups in step with windows Put has just stored, in
// Put's transaction. ws are the windows as given to Put (not merged with
// stored ones: only their counts are new), in start order. Windows of hours
// that are already sealed are added to their hourly and daily rollups
// directly; then every hour before the newest window's hour is sealed.
func rollUp(tx *bolt.Tx, ws []*window.Window, c caps) error {
	sealed := getTime(tx.Bucket(bucketMeta), keySealed)
	hours, days := newAccs(tx, window.Hourly, c), newAccs(tx, window.Daily, c)
	for _, w := range ws {
		if !w.Start.Before(sealed) {
			break
		}
		h, err := hours.get(floorHour(w.Start))
		if err != nil {
			return err
		}
		if h != nil {
			h.add(w)
		}
		d, err := days.get(floorDay(w.Start))
		if err != nil {
			return err
		}
		if d != nil {
			d.add(w)
		}
	}
	if err := hours.store(); err != nil {
		return err
	}
	if err := days.store(); err != nil {
		return err
	}
	return seal(tx, floorHour(ws[len(ws)-1].Start), c)
}

// seal rolls the raw windows of every hour in [sealed, to) up into new
// hourly rollups and into their daily rollups, and moves the sealed mark to
// to. Both tiers are built from the raw windows, so each applies its own cap
// to them and a row of either holds exactly its remote's raw sum. Each
// window is read once, and each day's rollup is rewritten once per call,
// not once per hour.
func seal(tx *bolt.Tx, to time.Time, c caps) error {
	meta := tx.Bucket(bucketMeta)
	from := getTime(meta, keySealed)
	if !to.After(from) {
		return nil
	}
	hb := tx.Bucket(bucketHours)
	days := newAccs(tx, window.Daily, c)
	var hour *acc
	flush := func() error {
		if hour == nil {
			return nil
		}
		h := hour // nothing stored yet: the usual case
		if hb.Get(windowKey(hour.w.Start)) != nil {
			var err error
			h, err = loadAcc(hb, hour.w.Start, window.Hourly, c.hour)
			switch {
			case isDamage(err):
				// The raw windows are the truth of an hour being sealed:
				// a damaged rollup of it is replaced by their sum.
				c.skip(window.Hourly, windowKey(hour.w.Start), err)
				h = hour
			case err != nil:
				return err
			default:
				hour.storeServices() // into hour.w, to be added
				h.add(hour.w)
			}
		}
		return h.store(hb)
	}
	end := windowKey(to)
	cur := tx.Bucket(bucketWindows).Cursor()
	// One Window decoded into again and again: add copies what it keeps,
	// and a month's replay seals 130k windows.
	w := &window.Window{}
	for k, v := cur.Seek(windowKey(from)); k != nil && bytes.Compare(k, end) < 0; k, v = cur.Next() {
		err := unmarshalInto(w, k, v)
		if isDamage(err) {
			// Left out of its rollups (reported, and recorded so that
			// queries over them say so); the rest of the hour is
			// rolled up, and storing goes on.
			c.skip(window.Raw, k, err)
			if err := putLost(tx, k, err); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("roll up window %s: %w", keyTime(k).Format(time.RFC3339), err)
		}
		if h := floorHour(w.Start); hour == nil || !hour.w.Start.Equal(h) {
			if err := flush(); err != nil {
				return err
			}
			hour = newAcc(h, window.Hourly, c.hour)
		}
		hour.add(w)
		d, err := days.get(floorDay(w.Start))
		if err != nil {
			return err
		}
		if d != nil {
			d.add(w)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := days.store(); err != nil {
		return err
	}
	return putTime(meta, keySealed, to)
}

// upgradeTiers turns a format 1 file into format 2: it creates the rollup
// buckets and rolls up every stored window but those of the newest hour,
// which stay raw until a later window seals them, as on a live file.
func upgradeTiers(tx *bolt.Tx, c caps) error {
	for _, name := range [][]byte{bucketHours, bucketDays} {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	k, _ := tx.Bucket(bucketWindows).Cursor().Last()
	if k == nil {
		return nil
	}
	return seal(tx, floorHour(keyTime(k)), c)
}

// Rollups calls fn for each stored rollup of tier r (Hourly or Daily; Raw
// is Windows) with from <= Start < to, oldest first. Only sealed hours
// have rollups: the windows of the newest hour are not in any yet, and the
// daily rollup of the newest day holds only its sealed hours. Sealed
// reports up to where rollups are complete.
func (db *DB) Rollups(ctx context.Context, r window.Resolution, from, to time.Time, fn func(*window.Window) error) error {
	return db.scanBucket(ctx, tierBucket(r), clampKey(from), clampKey(to), -1, fn, nil)
}

package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Resolution is a tier of stored history: raw windows, hourly rollups or
// daily rollups (UTC days).
type Resolution int

const (
	Raw    Resolution = iota // the windows as stored (e.g. 20 s)
	Hourly                   // rollups of [h, h+1h), h a whole UTC hour
	Daily                    // rollups of [d, d+24h), d a UTC midnight
)

func (r Resolution) String() string {
	switch r {
	case Raw:
		return "window"
	case Hourly:
		return "hour"
	case Daily:
		return "day"
	}
	return fmt.Sprintf("Resolution(%d)", int(r))
}

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
	damage    func(r Resolution, key []byte, err error)
}

func (c caps) skip(r Resolution, key []byte, err error) {
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

func (c caps) of(r Resolution) int {
	if r == Daily {
		return c.day
	}
	return c.hour
}

// Retention is how long each tier is kept, measured back from the newest
// window. Zero keeps a tier forever.
type Retention struct {
	Windows, Hours, Days time.Duration
}

// DefaultRetention keeps raw windows 2 days, hourly rollups 90 days and
// daily rollups 2 years.
var DefaultRetention = Retention{
	Windows: 2 * 24 * time.Hour,
	Hours:   90 * 24 * time.Hour,
	Days:    730 * 24 * time.Hour,
}

// Pruned counts what PruneTiers deleted; Unexported, the raw windows
// among them that were still waiting in the outbox (outbox.go).
type Pruned struct{ Windows, Hours, Days, Unexported int }

// Meta keys of format 2. Each holds 8 bytes: big-endian Unix seconds.
var (
	// keySealed: every hour before it has been rolled up into its hourly
	// and daily rollups; windows at or after it are in neither yet.
	keySealed = []byte("sealed")
	// keyPruned*: Prune deleted every unit of the tier starting before it.
	keyPrunedWindows = []byte("pruned.windows")
	keyPrunedHours   = []byte("pruned.hours")
	keyPrunedDays    = []byte("pruned.days")
)

const (
	hourSecs = 3600
	daySecs  = 86400
)

func floorTo(t time.Time, secs int64) time.Time {
	u := t.Unix()
	if u < 0 {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(u-u%secs, 0).UTC()
}

func floorHour(t time.Time) time.Time { return floorTo(t, hourSecs) }
func floorDay(t time.Time) time.Time  { return floorTo(t, daySecs) }

// ceilSecond is the first whole second at or after t, never before 1970:
// the first window start a range from t includes.
func ceilSecond(t time.Time) time.Time {
	if t.Unix() < 0 {
		return time.Unix(0, 0).UTC()
	}
	if t.Nanosecond() != 0 {
		t = t.Truncate(time.Second).Add(time.Second)
	}
	return t.UTC()
}

func ceilHour(t time.Time) time.Time {
	t = ceilSecond(t)
	if f := floorHour(t); !f.Equal(t) {
		return f.Add(time.Hour)
	}
	return t
}

func getTime(meta *bolt.Bucket, key []byte) time.Time {
	v := meta.Get(key)
	if len(v) != 8 {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC()
}

func putTime(meta *bolt.Bucket, key []byte, t time.Time) error {
	return meta.Put(key, binary.BigEndian.AppendUint64(nil, uint64(t.Unix())))
}

func tierBucket(r Resolution) []byte {
	switch r {
	case Hourly:
		return bucketHours
	case Daily:
		return bucketDays
	}
	return bucketWindows
}

func tierLength(r Resolution) time.Duration {
	if r == Daily {
		return 24 * time.Hour
	}
	return time.Hour
}

// acc adds windows (or finer rollups) up into one rollup, folding remotes
// past its cap into Other. The cap rule is "first come, first kept": while
// the rollup has fewer rows than its cap, a new remote gets a row; once it
// is full, its set of rows is frozen, so a remote without a row has all of
// its counts in Other and a remote with one has all of them there. Windows
// come heaviest remote first, so of one window the heaviest get the last
// free rows.
type acc struct {
	w   *Window
	at  map[[16]byte]int
	cap int
	svc *svcAcc // services.go
}

func newAcc(start time.Time, r Resolution, cap int) *acc {
	return &acc{w: &Window{Start: start, Length: tierLength(r)}, at: map[[16]byte]int{}, cap: cap}
}

// loadAcc starts from the stored rollup at start, when there is one. A
// stored rollup that does not decode is returned as errCorrupt, for the
// caller to skip.
func loadAcc(b *bolt.Bucket, start time.Time, r Resolution, cap int) (*acc, error) {
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

func (a *acc) add(w *Window) {
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
func groupsOf(rs []Remote) []Group {
	type key struct {
		c   string
		asn uint32
	}
	at := map[key]int{}
	var gs []Group
	for i := range rs {
		r := &rs[i]
		k := key{r.Country, r.ASN}
		j, ok := at[k]
		if !ok {
			j = len(gs)
			at[k] = j
			gs = append(gs, Group{Country: r.Country, ASN: r.ASN})
		}
		gs[j].Remotes++
		gs[j].Counts.Add(r.Counts)
	}
	slices.SortFunc(gs, func(a, b Group) int {
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
	r     Resolution
	cap   int
	c     caps
	b     *bolt.Bucket
	m     map[int64]*acc
	order []int64
}

func newAccs(tx *bolt.Tx, r Resolution, c caps) *accs {
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
func rollUp(tx *bolt.Tx, ws []*Window, c caps) error {
	sealed := getTime(tx.Bucket(bucketMeta), keySealed)
	hours, days := newAccs(tx, Hourly, c), newAccs(tx, Daily, c)
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
	days := newAccs(tx, Daily, c)
	var hour *acc
	flush := func() error {
		if hour == nil {
			return nil
		}
		h := hour // nothing stored yet: the usual case
		if hb.Get(windowKey(hour.w.Start)) != nil {
			var err error
			h, err = loadAcc(hb, hour.w.Start, Hourly, c.hour)
			switch {
			case isDamage(err):
				// The raw windows are the truth of an hour being sealed:
				// a damaged rollup of it is replaced by their sum.
				c.skip(Hourly, windowKey(hour.w.Start), err)
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
	w := &Window{}
	for k, v := cur.Seek(windowKey(from)); k != nil && bytes.Compare(k, end) < 0; k, v = cur.Next() {
		err := unmarshalInto(w, k, v)
		if isDamage(err) {
			// Left out of its rollups (reported, and recorded so that
			// queries over them say so); the rest of the hour is
			// rolled up, and storing goes on.
			c.skip(Raw, k, err)
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
			hour = newAcc(h, Hourly, c.hour)
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

// PruneTier deletes the units of one tier (windows, hourly or daily
// rollups) that start before before, in one transaction, and reports how
// many. Before raw windows go, every hour they touch is sealed, so their
// counts live on in the rollups. The file does not shrink; bbolt reuses the
// pages.
func (db *DB) PruneTier(r Resolution, before time.Time) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) (err error) {
		n, err = pruneTier(tx, r, before, db.caps)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s: %w", db.path, err)
	}
	return n, nil
}

// PruneTiers applies a retention to every tier in one transaction, counted
// back from newest (the newest window's start, as the daemon knows it).
// Cut-offs are rounded down to a whole hour for raw windows and to a whole
// UTC day for rollups, so each tier loses whole units of the next coarser
// one and a range answered from a coarser tier has clean edges.
func (db *DB) PruneTiers(newest time.Time, keep Retention) (Pruned, error) {
	var p Pruned
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, t := range []struct {
			r    Resolution
			keep time.Duration
			n    *int
		}{{Raw, keep.Windows, &p.Windows}, {Hourly, keep.Hours, &p.Hours}, {Daily, keep.Days, &p.Days}} {
			if t.keep <= 0 {
				continue
			}
			cut := newest.Add(-t.keep)
			if t.r == Raw {
				cut = floorHour(cut)
			} else {
				cut = floorDay(cut)
			}
			n, err := pruneTier(tx, t.r, cut, db.caps)
			if err != nil {
				return err
			}
			*t.n = n
			if t.r == Raw && n > 0 {
				if p.Unexported, err = pruneOutbox(tx, ceilSecond(cut)); err != nil { // outbox.go
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("prune %s: %w", db.path, err)
	}
	return p, nil
}

func pruneTier(tx *bolt.Tx, r Resolution, before time.Time, c caps) (int, error) {
	before = ceilSecond(before)
	if r == Raw {
		meta := tx.Bucket(bucketMeta)
		if to := ceilHour(before); to.After(getTime(meta, keySealed)) {
			if err := seal(tx, to, c); err != nil {
				return 0, err
			}
		}
	}
	b := tx.Bucket(tierBucket(r))
	end := windowKey(before)
	var keys [][]byte
	cur := b.Cursor()
	for k, _ := cur.First(); k != nil && bytes.Compare(k, end) < 0; k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	// Deleting through the cursor while iterating skips keys in bbolt;
	// collect first, then delete in key order.
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	if r == Daily {
		if err := pruneLost(tx, before); err != nil {
			return 0, err
		}
	}
	meta := tx.Bucket(bucketMeta)
	key := map[Resolution][]byte{Raw: keyPrunedWindows, Hourly: keyPrunedHours, Daily: keyPrunedDays}[r]
	if before.After(getTime(meta, key)) {
		if err := putTime(meta, key, before); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// Rollups calls fn for each stored rollup of tier r (Hourly or Daily; Raw
// is Windows) with from <= Start < to, oldest first. Only sealed hours
// have rollups: the windows of the newest hour are not in any yet, and the
// daily rollup of the newest day holds only its sealed hours. Sealed
// reports up to where rollups are complete.
func (db *DB) Rollups(r Resolution, from, to time.Time, fn func(*Window) error) error {
	return db.scanBucket(tierBucket(r), clampKey(from), clampKey(to), -1, fn, nil)
}

// tiers is what a read transaction knows about which tier holds what.
type tiers struct {
	sealed                        time.Time // hours before it are rolled up
	rawFloor, hourFloor, dayFloor time.Time // units starting before these were pruned
}

func readTiers(tx *bolt.Tx) tiers {
	meta := tx.Bucket(bucketMeta)
	return tiers{
		sealed:    getTime(meta, keySealed),
		rawFloor:  getTime(meta, keyPrunedWindows),
		hourFloor: getTime(meta, keyPrunedHours),
		dayFloor:  getTime(meta, keyPrunedDays),
	}
}

func (t *tiers) hourOK(h time.Time) bool {
	return !h.Before(t.hourFloor) && !h.Add(time.Hour).After(t.sealed)
}

func (t *tiers) dayOK(d time.Time) bool {
	return !d.Before(t.dayFloor) && !d.Add(24*time.Hour).After(t.sealed)
}

// segment is one piece of a Span plan: the raw windows starting in
// [start, end), or the rollup of tier r starting at start.
type segment struct {
	r          Resolution
	start, end time.Time
}

// plan splits [from, to) into segments, coarsest first where it is exact,
// and reports the coarsest resolution an edge had to be rounded to.
func (t *tiers) plan(from, to time.Time) ([]segment, Resolution) {
	var segs []segment
	res := Raw
	addRaw := func(a, b time.Time) {
		if n := len(segs); n > 0 && segs[n-1].r == Raw && segs[n-1].end.Equal(a) {
			segs[n-1].end = b
			return
		}
		segs = append(segs, segment{Raw, a, b})
	}
	for cur := from; cur.Before(to); {
		h := floorHour(cur)
		next := h.Add(time.Hour)
		aligned := cur.Equal(h)
		dayAligned := aligned && cur.Equal(floorDay(cur))
		switch {
		case dayAligned && !cur.Add(24*time.Hour).After(to) && t.dayOK(cur):
			segs = append(segs, segment{Daily, cur, cur.Add(24 * time.Hour)})
			cur = cur.Add(24 * time.Hour)
			continue
		case aligned && !next.After(to) && t.hourOK(cur):
			segs = append(segs, segment{Hourly, cur, next})
		case !cur.Before(t.rawFloor):
			addRaw(cur, minTime(next, to))
		// From here on the raw windows of [cur, next) were pruned: a
		// coarser unit that starts in the range stands for them.
		case aligned && t.hourOK(cur):
			segs = append(segs, segment{Hourly, cur, next})
			res = max(res, Hourly)
		case dayAligned && t.dayOK(cur):
			segs = append(segs, segment{Daily, cur, cur.Add(24 * time.Hour)})
			res = Daily
			cur = cur.Add(24 * time.Hour)
			continue
		case t.hourOK(h):
			res = max(res, Hourly) // left out: its hour starts before cur
		case t.dayOK(floorDay(cur)):
			res = Daily // left out: its day starts before cur
		}
		cur = minTime(next, to)
	}
	return segs, res
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// spanBatch bounds how many remotes one read transaction of Span decodes:
// a transaction is not held across many rollups, nor while fn runs.
var spanBatch = 100_000 // a variable for tests

// SpanOptions tune Span.
type SpanOptions struct {
	// Reuse lets Span decode later windows into the memory of earlier
	// ones: fn must not keep a window, its Remotes, or pointers into them
	// after it returns (strings may be kept; copy the rest). That saves
	// allocating and collecting ~100 bytes per remote, a third of the
	// time of a month-wide span. query.Aggregator.Add qualifies.
	Reuse bool

	// Groups delivers rollups (Length 1h or 24h) with Groups set and
	// Remotes nil (Other and Stats as always); raw windows keep their
	// Remotes. Sums by country or AS are then the same as from the
	// remotes, without decoding them: about 30x less work for a month.
	// What groups cannot give is per-remote anything, including how many
	// distinct remotes a country had over several rollups (Group.Remotes
	// counts one rollup's rows).
	Groups bool

	// Damaged, if set, is told about each damaged value the span skipped
	// (see Damage), after the last call to fn, on fn's goroutine.
	Damaged func(Damage)

	// Workers, when above 1 with Parallel set, reads the span on up to
	// that many goroutines at once instead of calling fn: each takes the
	// plan's next unit (a rollup, or an hour's raw windows) when it is
	// free, decodes it and calls Parallel with its own number (0 to
	// Workers-1) and each window. A worker's windows come oldest first;
	// workers run at once and take units in no set order, so Parallel
	// suits a caller that adds up per worker and merges the sums. Reuse
	// then holds per worker. Damaged is told on the caller's goroutine,
	// after the workers are done, in the order a serial span tells it.
	Workers  int
	Parallel func(worker int, w *Window) error

	// NoOrgs leaves every ASOrg empty, for a caller that shows no AS
	// organisations (answers by country or network): filling them in is
	// a lookup per remote.
	NoOrgs bool
}

// Span calls fn, oldest first, with windows that together hold exactly
// what the raw windows with from <= Start < to hold: raw windows for the
// parts of the range that are not whole hours, an hourly rollup (Length 1h)
// for each whole UTC hour, a daily rollup (Length 24h) for each whole UTC
// day, each used only where it is the sum of the raw windows it stands for
// (a rollup [h, h+1h) is used when it lies within [from, to), so every raw
// window starting in it would be selected, and when its hour is sealed).
// Totals therefore equal the raw windows' sums; rows per remote do too
// unless a rollup's cap folded some (Window.Capped > 0).
//
// Where raw windows were pruned, a coarser unit stands for them: an hour
// (or day) that starts inside the range is answered by its rollup as a
// whole, one that starts before the range is left out, as a window is. The
// returned Resolution is the coarsest unit an edge was rounded to: Raw
// means the answer is exactly that of the raw windows.
//
// Windows are read and decoded on another goroutine while fn runs on the
// caller's, in short read transactions, so fn may be slow or call other DB
// methods. A Prune that runs between the transactions of a long span may
// remove units the span had planned to read; they are then missing from
// the answer. An error from fn stops the span and is returned as is.
func (db *DB) Span(from, to time.Time, fn func(*Window) error) (Resolution, error) {
	return db.SpanWith(from, to, SpanOptions{}, fn)
}

// SpanWith is Span with options.
func (db *DB) SpanWith(from, to time.Time, opt SpanOptions, fn func(*Window) error) (Resolution, error) {
	from, to = ceilSecond(from), ceilSecond(to)
	if !from.Before(to) {
		return Raw, nil
	}
	var segs []segment
	var res Resolution
	err := db.bolt.View(func(tx *bolt.Tx) error {
		t := readTiers(tx)
		segs, res = t.plan(from, to)
		return nil
	})
	if err != nil {
		return Raw, fmt.Errorf("read %s: %w", db.path, err)
	}
	if opt.Workers > 1 && opt.Parallel != nil {
		return db.spanParallel(segs, res, opt)
	}

	const ahead = 8 // windows decoded ahead of fn
	out := make(chan *Window, ahead)
	free := make(chan *Window, 2*ahead)
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	var skipped []Damage // written by the reader before it sends to readErr
	go func() {
		defer close(out)
		readErr <- db.readSegments(segs, opt, free, out, stop, &skipped)
	}()
	var fnErr error
	for w := range out {
		if fnErr == nil {
			if fnErr = fn(w); fnErr != nil {
				close(stop)
			}
		}
		if opt.Reuse {
			select {
			case free <- w:
			default:
			}
		}
	}
	if fnErr != nil {
		return res, fnErr
	}
	if err := <-readErr; err != nil {
		return res, fmt.Errorf("read %s: %w", db.path, err)
	}
	if opt.Damaged != nil {
		for _, d := range skipped {
			opt.Damaged(d)
		}
	}
	return res, nil
}

// readSegments decodes the plan's windows in order and sends them to out,
// in read transactions of at most scanBatch windows or spanBatch remotes.
// A value that does not decode is skipped and added to skipped.
func (db *DB) readSegments(segs []segment, opt SpanOptions, free <-chan *Window, out chan<- *Window, stop <-chan struct{}, skipped *[]Damage) error {
	newWindow := func() *Window {
		if opt.Reuse {
			select {
			case w := <-free:
				return w
			default:
			}
		}
		return &Window{}
	}
	var batch []*Window
	send := func() bool {
		for _, w := range batch {
			select {
			case out <- w:
			case <-stop:
				return false
			}
		}
		batch = batch[:0]
		return true
	}
	var next []byte // where a raw segment's next transaction resumes
	for i := 0; i < len(segs); {
		err := db.bolt.View(func(tx *bolt.Tx) error {
			n := 0
			for ; i < len(segs) && n < spanBatch && len(batch) < scanBatch; i++ {
				s := segs[i]
				b := tx.Bucket(tierBucket(s.r))
				if s.r != Raw {
					k := windowKey(s.start)
					v := b.Get(k)
					if v == nil {
						continue
					}
					*skipped = append(*skipped, lostIn(tx, s.start, s.end)...)
					w := newWindow()
					mode := decodeNoGroups
					if opt.Groups {
						mode = decodeGroups
					}
					if err := unmarshalWith(w, k, v, mode); isDamage(err) {
						*skipped = append(*skipped, db.noteDamage(s.r, k, err))
						continue
					} else if err != nil {
						return fmt.Errorf("%s rollup %s: %w", s.r, s.start.Format(time.RFC3339), err)
					}
					if !opt.NoOrgs {
						db.fillOrgs(tx, w)
					}
					n += len(w.Remotes) + len(w.Groups) + 1
					batch = append(batch, w)
					continue
				}
				start, end := windowKey(s.start), windowKey(s.end)
				if next != nil {
					start, next = next, nil
				}
				c := b.Cursor()
				k, v := c.Seek(start)
				for ; k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
					if n >= spanBatch || len(batch) >= scanBatch {
						next = bytes.Clone(k)
						return nil // resume this segment in the next transaction
					}
					w := newWindow()
					if err := unmarshalInto(w, k, v); isDamage(err) {
						*skipped = append(*skipped, db.noteDamage(Raw, k, err))
						continue
					} else if err != nil {
						return fmt.Errorf("window %s: %w", keyTime(k).Format(time.RFC3339), err)
					}
					if !opt.NoOrgs {
						db.fillOrgs(tx, w)
					}
					n += len(w.Remotes) + 1
					batch = append(batch, w)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !send() {
			return nil
		}
	}
	return nil
}

// Sealed reports the instant before which every hour has been rolled up:
// hourly rollups starting before it and daily rollups ending by it are
// complete, and later windows are raw only. It is the start of the newest
// window's hour, unless Prune sealed further.
func (db *DB) Sealed() (time.Time, error) {
	var t time.Time
	err := db.bolt.View(func(tx *bolt.Tx) error {
		t = getTime(tx.Bucket(bucketMeta), keySealed)
		return nil
	})
	return t, err
}

// TierUsage is what one tier holds: how many units (windows or rollups),
// the first and last start, and the bytes of their keys and values (the
// file adds bbolt's page overhead and free pages to that).
type TierUsage struct {
	Units       int
	First, Last time.Time
	Bytes       int64
}

// Usage reports what each tier holds, indexed by Resolution. It reads
// every key, not the values' pages, so it is quick even on a large file.
func (db *DB) Usage() ([3]TierUsage, error) {
	var u [3]TierUsage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, r := range []Resolution{Raw, Hourly, Daily} {
			t := &u[r]
			c := tx.Bucket(tierBucket(r)).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if t.Units == 0 {
					t.First = keyTime(k)
				}
				t.Last = keyTime(k)
				t.Units++
				t.Bytes += int64(len(k) + len(v))
			}
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("read %s: %w", db.path, err)
	}
	return u, nil
}

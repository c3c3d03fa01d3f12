package alert

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dstwatch/dstwatch/storage"
)

// The incident store: everything alerts.db holds (incidents, the active
// and cool-down indexes) and the transactions that change it. The job
// runner (jobs.go) and apply write through it; nothing else opens a
// transaction on incidents.

// checkFile refuses, before bbolt may write to it, a path that is not an
// incidents file: anything storage.CheckBolt refuses (not a regular file,
// not bbolt, damaged, a link, another user's file), a window database, and
// a bbolt file with buckets but no incidents bucket.
func checkFile(path string) error {
	const hint = "point the alerts file at another path"
	fresh, err := storage.CheckBolt(path, hint)
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	if fresh {
		return nil
	}
	b, err := bolt.Open(path, 0, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("alerts %s: locked by another process (a running daemon?)", path)
		}
		return fmt.Errorf("alerts %s: %w", path, err)
	}
	defer b.Close()
	return b.View(func(tx *bolt.Tx) error {
		if storage.IsWindowDB(tx) {
			return fmt.Errorf("alerts %s: it is a window database, not an alerts file; refusing to touch it: %s", path, hint)
		}
		if tx.Bucket(bucketIncidents) != nil {
			return nil
		}
		// Buckets, but not ours: somebody else's bbolt file. (A file
		// without any bucket is an empty one, ours to initialise.)
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			return fmt.Errorf("alerts %s: a bbolt file with a bucket %q and no incidents; refusing to touch it: %s", path, name, hint)
		})
	})
}

// forActive calls fn with each open (active or expiring) incident, in the
// order of the active bucket: the one scan that recovery and expiry share.
func forActive(tx *bolt.Tx, fn func(*Incident) error) error {
	b := tx.Bucket(bucketIncidents)
	return tx.Bucket(bucketActive).ForEach(func(_, v []byte) error {
		raw := b.Get(v)
		if raw == nil {
			return nil
		}
		inc, err := decode(raw)
		if err != nil {
			return err
		}
		return fn(inc)
	})
}

func put(tx *bolt.Tx, inc *Incident) error {
	b, err := jsonMarshal(inc)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketIncidents).Put(idKey(inc.ID), b)
}

func get(tx *bolt.Tx, id uint64) (*Incident, error) {
	raw := tx.Bucket(bucketIncidents).Get(idKey(id))
	if raw == nil {
		return nil, ErrNotFound
	}
	return decode(raw)
}

// update changes one incident in a transaction of its own.
func (e *Engine) update(id uint64, fn func(*Incident) error) (*Incident, error) {
	var inc *Incident
	err := e.db.Update(func(tx *bolt.Tx) error {
		var err error
		if inc, err = get(tx, id); err != nil {
			return err
		}
		if err := fn(inc); err != nil {
			return err
		}
		return put(tx, inc)
	})
	return inc, err
}

// Get returns one incident.
func (e *Engine) Get(id uint64) (*Incident, error) {
	var inc *Incident
	err := e.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketIncidents) == nil {
			return ErrNotFound
		}
		var err error
		inc, err = get(tx, id)
		return err
	})
	if inc != nil {
		inc = inc.redacted()
	}
	return inc, err
}

// List returns the incidents, oldest first: all, or only those not closed.
func (e *Engine) List(openOnly bool) ([]*Incident, error) {
	var out []*Incident
	err := e.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIncidents)
		if b == nil {
			return nil // a file no daemon has written yet
		}
		return b.ForEach(func(_, v []byte) error {
			inc, err := decode(v)
			if err != nil {
				return err
			}
			if !openOnly || inc.State != Closed {
				out = append(out, inc.redacted())
			}
			return nil
		})
	})
	return out, err
}

// finish closes an expiring incident whose undo actions are through.
func (e *Engine) finish(id uint64) {
	var inc *Incident
	err := e.db.Update(func(tx *bolt.Tx) error {
		var err error
		if inc, err = get(tx, id); err != nil || inc.State != Expiring || inc.next() != nil {
			return err
		}
		now := e.now()
		inc.State, inc.Ended = Closed, &now
		if err := put(tx, inc); err != nil {
			return err
		}
		ak := activeKey(inc.Rule, inc.Key)
		if err := tx.Bucket(bucketActive).Delete(ak); err != nil {
			return err
		}
		if err := pruneCooldowns(tx, now); err != nil {
			return err
		}
		if inc.Cooldown > 0 {
			until := now.Add(time.Duration(inc.Cooldown)).UnixNano()
			if err := tx.Bucket(bucketCooldown).Put(ak, strconv.AppendInt(nil, until, 10)); err != nil {
				return err
			}
		}
		return pruneHistory(tx)
	})
	if err != nil {
		e.log.Error("alerts: close incident", "incident", id, "err", err)
		return
	}
	if inc != nil && inc.State == Closed {
		e.log.Info("alerts: incident closed", "incident", id, "rule", inc.Rule, "key", inc.Key, "reason", inc.Reason)
	}
}

// pruneCooldowns deletes cool-downs that have run out: a per-remote rule
// on a host that sees scans would otherwise keep one for every key that
// ever fired.
func pruneCooldowns(tx *bolt.Tx, now time.Time) error {
	c := tx.Bucket(bucketCooldown).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		until, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || until <= now.UnixNano() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

// pruneHistory deletes the oldest closed incidents beyond MaxHistory.
func pruneHistory(tx *bolt.Tx) error {
	b := tx.Bucket(bucketIncidents)
	extra := b.Stats().KeyN - tx.Bucket(bucketActive).Stats().KeyN - MaxHistory
	if extra <= 0 {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil && extra > 0; k, v = c.Next() {
		inc, err := decode(v)
		if err != nil || inc.State != Closed {
			continue
		}
		if err := c.Delete(); err != nil {
			return err
		}
		extra--
	}
	return nil
}

// beginExpire records that the incident expires now and plans its undo:
// for each action, last first, its undo command, a webhook "expired" post
// or a log line.
func (e *Engine) beginExpire(id uint64, reason string) (*Incident, error) {
	return e.update(id, func(inc *Incident) error {
		switch inc.State {
		case Closed:
			return ErrClosed
		case Expiring:
			return nil
		}
		inc.State, inc.Reason = Expiring, reason
		inc.Undo = []Result{}
		for i := len(inc.Plan) - 1; i >= 0; i-- {
			s := inc.Plan[i]
			switch {
			case s.Kind == KindExec && len(s.Undo) > 0:
				inc.Undo = append(inc.Undo, Result{Step: i, Kind: KindUndo, State: StatePending, Argv: s.Undo})
			case s.Kind == KindWebhook || s.Kind == KindLog:
				inc.Undo = append(inc.Undo, Result{Step: i, Kind: s.Kind, State: StatePending})
			}
		}
		return nil
	})
}

// apply records, in one transaction, new incidents and refires; then the
// new incidents' actions start. New incidents over a limit are suppressed
// and counted (see Limits).
func (e *Engine) apply(cands []candidate) error {
	now := e.now()
	lim := e.limits()
	running, waiting := e.slots.counts()
	var fired []*Incident
	var supp map[string]*Suppressed
	err := e.db.Update(func(tx *bolt.Tx) error {
		fired, supp = fired[:0], map[string]*Suppressed{}
		opened := map[string]int{}
		inc, act, cool := tx.Bucket(bucketIncidents), tx.Bucket(bucketActive), tx.Bucket(bucketCooldown)
		active := act.Stats().KeyN
		for _, c := range cands {
			ak := activeKey(c.rule.Name, c.key)
			if id := act.Get(ak); id != nil {
				old, err := decode(inc.Get(id))
				if err != nil {
					return err
				}
				old.Refires++
				old.LastWindow = c.window
				old.Peak = max(old.Peak, c.value)
				if old.State == Active && old.OnRefire == RefireExtend {
					old.Expires = now.Add(time.Duration(old.Expire))
				}
				if err := put(tx, old); err != nil {
					return err
				}
				continue
			}
			if until := cool.Get(ak); until != nil {
				if n, _ := strconv.ParseInt(string(until), 10, 64); now.UnixNano() < n {
					continue
				}
				if err := cool.Delete(ak); err != nil {
					return err
				}
			}
			reason := ""
			switch {
			case opened[c.rule.Name] >= lim.PerWindow:
				reason = OverPerWindow
			case active >= lim.Active:
				reason = OverActive
			case running+waiting+len(fired) >= lim.Running+lim.Queued:
				reason = OverQueue
			}
			if reason != "" {
				s := supp[c.rule.Name]
				if s == nil {
					w := c.window
					s = &Suppressed{Last: &w}
					supp[c.rule.Name] = s
				}
				s.count(reason)
				continue
			}
			seq, err := inc.NextSequence()
			if err != nil {
				return err
			}
			n := newIncident(seq, c, now)
			if err := put(tx, n); err != nil {
				return err
			}
			if err := act.Put(ak, idKey(n.ID)); err != nil {
				return err
			}
			fired = append(fired, n)
			opened[c.rule.Name]++
			active++
		}
		return addSuppressed(tx, supp)
	})
	if err != nil {
		return err
	}
	e.reportSuppressed(supp, lim, now)
	for _, n := range fired {
		e.log.Info("alerts: incident fired", "incident", n.ID, "rule", n.Rule, "key", n.Key, "metric", n.Metric,
			"value", n.Value, "threshold", n.Threshold, "expires", n.Expires)
		e.schedule(n.ID)
	}
	e.kick()
	return nil
}

func newIncident(id uint64, c candidate, now time.Time) *Incident {
	r := c.rule
	n := &Incident{
		ID: id, Rule: r.Name, Key: c.key, Prefix: c.agg.prefix, Country: c.agg.country, ASN: c.agg.asn,
		Metric: r.Metric, Threshold: r.Threshold, Value: c.value, Peak: c.value, Window: c.window, LastWindow: c.window,
		OnRefire: r.OnRefire, Expire: Dur(r.Expire), Cooldown: Dur(r.Cooldown),
		Started: now, Expires: now.Add(r.Expire), State: Active, Plan: []Step{}, Actions: []Result{},
	}
	f := n.fields()
	for i, a := range r.Actions {
		s := Step{Kind: a.Kind, Timeout: Dur(a.Timeout), Retries: a.Retries, Backoff: Dur(a.Backoff)}
		if a.Kind == KindWebhook {
			s.URL, s.URLHash = RedactURL(a.URL), urlHash(a.URL)
		}
		res := Result{Step: i, Kind: a.Kind, State: StatePending}
		if a.Kind == KindExec {
			s.Argv = expandAll(a.Argv, f)
			res.Argv = s.Argv
			if len(a.Undo) > 0 {
				s.Undo = expandAll(a.Undo, f)
			}
		}
		n.Plan = append(n.Plan, s)
		n.Actions = append(n.Actions, res)
	}
	return n
}

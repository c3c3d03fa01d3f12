// Package alert turns stored windows into incidents: rules (a YAML file)
// say what traffic is too much for how long; an incident that fires runs
// its actions (commands, webhooks, log lines) and, when its expiry passes,
// its undo actions. Everything an incident is and did lives in a bbolt file
// of its own (alerts.db beside the window database), written before and
// after every action, so that a restart, even after kill -9, neither loses
// an expiry nor runs an action twice.
//
// Delivery: every action is recorded as started (and fsynced) before it
// runs and with its outcome after. An action recorded as pending runs after
// a restart; one recorded as started but not finished is marked interrupted
// and never run again. So each action runs at most once, and exactly once
// unless the daemon dies while that very action runs, which the record then
// says.
//
// Limits (limits.go): traffic decides when rules fire, and spoofed traffic
// can make a per-remote rule fire for thousands of keys at once. New
// incidents per rule and window, open incidents, and incidents running or
// waiting to run actions are bounded; a new incident over a bound is not
// opened, and counted (alerts.db, the record log, Stats). Evaluation never
// waits for an action.
//
// Secrets (redact.go): webhook URLs are kept and shown redacted; the full
// URL is looked up in the rules when the webhook runs.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dstwatch/dstwatch/internal/safefile"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

var (
	bucketIncidents = []byte("incidents") // id -> Incident JSON
	bucketActive    = []byte("active")    // rule \0 key -> id, while not closed
	bucketCooldown  = []byte("cooldown")  // rule \0 key -> unix ns until which the rule may not fire again
)

// ErrNotFound is returned for an incident ID that does not exist.
var ErrNotFound = errors.New("no such incident")

// ErrClosed is returned when asking to expire an incident that has ended.
var ErrClosed = errors.New("incident already ended")

// MaxHistory is how many closed incidents are kept; older ones are deleted.
const MaxHistory = 10000

// closeGrace is how long Close lets running actions finish before it
// cancels them (they are then recorded as interrupted).
const closeGrace = 5 * time.Second

// Options configure an Engine.
type Options struct {
	Path     string
	Mode     os.FileMode // of a new file; 0640 when zero
	ReadOnly bool        // for listing while no daemon runs
	Logger   *slog.Logger
	// Record writes a line to the record log (the Log action); may be nil.
	Record func(t time.Time, line string)
	// Now is the clock; nil is time.Now. Tests drive it.
	Now func() time.Time
	// History reads stored windows with from <= Start < to, oldest first
	// (storage.DB.Windows); may be nil. It seeds the sums of bytes rules
	// over a period when their evaluation (re)starts: at start, after a
	// gap, and when a reload changed the rule.
	History func(from, to time.Time, fn func(*storage.Window) error) error
}

// Engine evaluates rules on windows and keeps incidents.
type Engine struct {
	db     *bolt.DB
	log    *slog.Logger
	record func(time.Time, string)
	now    func() time.Time
	hist   func(from, to time.Time, fn func(*storage.Window) error) error
	hc     *http.Client
	rules  atomic.Pointer[RuleSet]

	evalMu sync.Mutex
	state  map[string]*ruleState

	mu     sync.Mutex
	jobs   map[uint64]chan struct{} // each incident's latest job; jobs of one incident run in turn
	slots  slots                    // bound the jobs that run at once (limits.running)
	jobsWG sync.WaitGroup
	ctx    context.Context // cancelled by Close after closeGrace: running actions stop
	cancel context.CancelFunc
	quit   chan struct{} // closed by Close: the loops stop
	stop   chan struct{} // closed by Close after closeGrace: no new action starts
	wake   chan struct{}
	loops  sync.WaitGroup

	windows chan *storage.Window

	// beforeRun, in tests, runs after an action is recorded as started and
	// before it runs; returning false abandons the job there, as a crash would.
	beforeRun func(inc *Incident, r *Result) bool
	// beforeStart, in tests, runs before an action is recorded as started;
	// returning false abandons the job with the action still pending.
	beforeStart func(id uint64) bool
}

// Open opens (creating, unless read-only) the incidents file.
func Open(o Options) (*Engine, error) {
	if o.Mode == 0 {
		o.Mode = 0o640
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if !o.ReadOnly {
		if err := checkFile(o.Path); err != nil {
			return nil, err
		}
	}
	bo := &bolt.Options{Timeout: time.Second, ReadOnly: o.ReadOnly}
	if !o.ReadOnly {
		bo.OpenFile = safefile.OpenFile // what checkFile saw may have been swapped since
	}
	db, err := bolt.Open(o.Path, o.Mode, bo)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("alerts %s: locked by another process (a running daemon?)", o.Path)
		}
		return nil, fmt.Errorf("alerts %s: %w", o.Path, err)
	}
	if !o.ReadOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketIncidents, bucketActive, bucketCooldown, bucketSuppressed} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return redactStored(tx)
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("alerts %s: %w", o.Path, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		db: db, log: o.Logger, record: o.Record, now: o.Now, hist: o.History,
		hc:    &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		state: map[string]*ruleState{}, jobs: map[uint64]chan struct{}{},
		ctx: ctx, cancel: cancel, quit: make(chan struct{}), stop: make(chan struct{}), wake: make(chan struct{}, 1),
		windows: make(chan *storage.Window, 64),
	}
	e.rules.Store(&RuleSet{})
	return e, nil
}

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

// Path is the incidents file.
func (e *Engine) Path() string { return e.db.Path() }

// SetRules replaces the rules. Streaks of rules whose definition did not
// change go on; active incidents stay whatever happens to their rule.
func (e *Engine) SetRules(rs *RuleSet) {
	e.rules.Store(rs)
	e.slots.setLimit(e.limits().Running) // a raised limit starts waiting jobs now
}

// Rules are the rules in use.
func (e *Engine) Rules() *RuleSet { return e.rules.Load() }

// Start recovers what a previous run left (see the package comment), runs
// the expiries that passed meanwhile, and starts evaluating windows given to
// Observe and expiring incidents on time.
func (e *Engine) Start() error {
	if err := e.Recover(); err != nil {
		return err
	}
	e.loops.Add(2)
	go func() {
		defer e.loops.Done()
		for w := range e.windows {
			if err := e.Evaluate(w); err != nil {
				e.log.Error("alerts: evaluate window", "window", w.Start, "err", err)
			}
		}
	}()
	go func() { defer e.loops.Done(); e.expiryLoop() }()
	return nil
}

// Observe hands a stored window to the evaluation goroutine. It blocks when
// 64 windows wait, which only a replay reaches: evaluation is quick, the
// actions run elsewhere.
func (e *Engine) Observe(w *storage.Window) { e.windows <- w }

// Close stops evaluating and expiring, lets the actions of incidents that
// fired run for up to a few seconds, then stops them (recorded as
// interrupted), and closes the file. Actions not started by then stay
// pending and run at the next start.
func (e *Engine) Close() error {
	close(e.windows)
	close(e.quit)
	e.loops.Wait()
	done := make(chan struct{})
	go func() { e.jobsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace):
		e.log.Warn("alerts: stopping actions still running at shutdown")
		close(e.stop)
		e.cancel()
		<-done
	}
	e.cancel()
	return e.db.Close()
}

// CloseReadOnly closes an engine opened read-only (or never started).
func (e *Engine) CloseReadOnly() error {
	e.cancel()
	e.jobsWG.Wait()
	return e.db.Close()
}

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Recover marks actions left started by a previous run as interrupted and
// resumes each open incident: pending actions run, expiring incidents
// finish their undo. Then RunDue runs the expiries that passed.
func (e *Engine) Recover() error {
	var open []uint64
	err := e.db.Update(func(tx *bolt.Tx) error {
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
			changed := false
			for _, list := range [][]Result{inc.Actions, inc.Undo} {
				for i := range list {
					if list[i].State == StateStarted {
						list[i].State = StateInterrupted
						list[i].Error = "the daemon stopped while this ran: it may or may not have taken effect; not run again"
						changed = true
						e.log.Error("alerts: action interrupted by a daemon stop; not run again", "incident", inc.ID, "rule", inc.Rule, "key", inc.Key, "kind", list[i].Kind, "argv", list[i].Argv)
					}
				}
			}
			open = append(open, inc.ID)
			if changed {
				return put(tx, inc)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("alerts: recover: %w", err)
	}
	for _, id := range open {
		e.schedule(id)
	}
	if len(open) > 0 {
		e.log.Info("alerts: resumed open incidents", "incidents", len(open))
	}
	return e.RunDue()
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

// schedule runs advance for the incident after its previous job.
func (e *Engine) schedule(id uint64) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	prev := e.jobs[id]
	done := make(chan struct{})
	e.jobs[id] = done
	e.jobsWG.Add(1)
	go func() {
		defer e.jobsWG.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		if !e.slots.acquire(e.limits().Running, e.stop) {
			return // stopping: what is pending stays pending
		}
		e.advance(id)
		e.slots.release()
		e.mu.Lock()
		if e.jobs[id] == done {
			delete(e.jobs, id)
		}
		e.mu.Unlock()
	}()
	return done
}

// Wait waits until no action runs or waits to run (tests).
func (e *Engine) Wait() { e.jobsWG.Wait() }

func (e *Engine) stopping() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// advance runs the incident's pending actions in order, each recorded as
// started before and with its outcome after, and closes an expiring
// incident once its undo actions are through.
func (e *Engine) advance(id uint64) {
	for {
		if e.stopping() || (e.beforeStart != nil && !e.beforeStart(id)) {
			return // what is pending stays pending: the next start runs it
		}
		var undo bool
		var idx int
		var started bool
		inc, err := e.update(id, func(inc *Incident) error {
			r := inc.next()
			if r == nil {
				return nil
			}
			undo, idx = inc.locate(r)
			now := e.now()
			r.State, r.Started, started = StateStarted, &now, true
			return nil
		})
		if err != nil {
			e.log.Error("alerts: record action start", "incident", id, "err", err)
			return
		}
		if !started {
			if inc.State == Expiring {
				e.finish(id)
			}
			return
		}
		r := inc.find(undo, idx)
		if e.beforeRun != nil && !e.beforeRun(inc, r) {
			return
		}
		e.run(inc, undo, r)
		if e.ctx.Err() != nil && r.State != StateDone {
			r.State = StateInterrupted
			r.Error = "stopped by the daemon's shutdown: " + r.Error
		}
		now := e.now()
		r.Ended = &now
		res := *r
		if _, err := e.update(id, func(inc *Incident) error {
			*inc.find(undo, idx) = res
			return nil
		}); err != nil {
			e.log.Error("alerts: record action result", "incident", id, "err", err)
			return
		}
		lvl := slog.LevelInfo
		if res.State != StateDone {
			lvl = slog.LevelError
		}
		e.log.Log(context.Background(), lvl, "alerts: action "+res.State, "incident", id, "rule", inc.Rule, "key", inc.Key,
			"kind", res.Kind, "argv", res.Argv, "exit", exitValue(res.Exit), "http_status", res.Status, "attempts", res.Attempts, "err", res.Error)
	}
}

// run runs one action, filling in r.
func (e *Engine) run(inc *Incident, undo bool, r *Result) {
	step := inc.Plan[r.Step]
	event, env := "fired", "fire"
	if undo {
		event, env = "expired", "expire"
	}
	envv := []string{"DSTWATCH_INCIDENT=" + strconv.FormatUint(inc.ID, 10), "DSTWATCH_EVENT=" + env, "DSTWATCH_RULE=" + inc.Rule}
	switch r.Kind {
	case KindExec, KindUndo:
		runExec(e.ctx, r.Argv, time.Duration(step.Timeout), envv, r)
	case KindWebhook:
		u, err := e.webhookURL(step)
		if err != nil {
			r.State, r.Error = StateFailed, err.Error()
			return
		}
		postWebhook(e.ctx, e.hc, u, webhookBody(event, inc), time.Duration(step.Timeout), step.Retries, time.Duration(step.Backoff), r)
	case KindLog:
		now := e.now()
		line := fmt.Sprintf("!!! alert %s rule=%s id=%d key=%s %s %s > %s", event, inc.Rule, inc.ID, inc.Key,
			inc.Metric, FormatValue(inc.Metric, inc.Peak), FormatValue(inc.Metric, inc.Threshold))
		if undo {
			line += " reason=" + strconv.Quote(inc.Reason)
		} else {
			line += " expires=" + inc.Expires.UTC().Format(time.RFC3339)
		}
		if e.record != nil {
			e.record(now, line)
		}
		e.log.Warn("alert "+event, "rule", inc.Rule, "id", inc.ID, "key", inc.Key, "metric", inc.Metric, "value", inc.Peak, "threshold", inc.Threshold)
		r.State = StateDone
	default:
		r.State, r.Error = StateFailed, "unknown action kind "+r.Kind
	}
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

// RunDue starts the expiry of every active incident whose expiry passed.
func (e *Engine) RunDue() error {
	now := e.now()
	var due []uint64
	err := e.db.View(func(tx *bolt.Tx) error {
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
			if inc.State == Active && !inc.Expires.After(now) {
				due = append(due, inc.ID)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, id := range due {
		if _, err := e.beginExpire(id, "expired"); err != nil {
			e.log.Error("alerts: expire", "incident", id, "err", err)
			continue
		}
		e.schedule(id)
	}
	return nil
}

// nextExpiry is the earliest expiry of an active incident; zero when none.
func (e *Engine) nextExpiry() time.Time {
	var next time.Time
	e.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIncidents)
		return tx.Bucket(bucketActive).ForEach(func(_, v []byte) error {
			raw := b.Get(v)
			if raw == nil {
				return nil
			}
			inc, err := decode(raw)
			if err == nil && inc.State == Active && (next.IsZero() || inc.Expires.Before(next)) {
				next = inc.Expires
			}
			return nil
		})
	})
	return next
}

func (e *Engine) expiryLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		if err := e.RunDue(); err != nil {
			e.log.Error("alerts: expiries", "err", err)
		}
		wait := time.Minute // also catches clock steps
		if next := e.nextExpiry(); !next.IsZero() {
			wait = min(wait, max(next.Sub(e.now()), 0)+time.Millisecond)
		}
		t.Reset(wait)
		select {
		case <-e.quit:
			return
		case <-e.wake:
		case <-t.C:
		}
	}
}

// Expire ends an incident early: its expiry is now, its undo actions run.
// It waits for them until ctx is done and returns the incident as it then is.
func (e *Engine) Expire(ctx context.Context, id uint64, reason string) (*Incident, error) {
	if _, err := e.beginExpire(id, reason); err != nil {
		return nil, err
	}
	done := e.schedule(id)
	select {
	case <-done:
	case <-ctx.Done():
	}
	return e.Get(id)
}

// --- evaluation ---

// ruleState is what evaluation remembers of a rule between windows.
type ruleState struct {
	rule   *Rule
	last   time.Time // start of the last window seen
	length time.Duration
	streak map[string]int // key -> consecutive windows over the threshold
	hist   []histWindow   // bytes metrics: the previous windows of the period, oldest first
}

// histWindow is a previous window's traffic per key, for period sums.
type histWindow struct {
	start time.Time
	aggs  map[string]*keyAgg
}

// keyAgg is a key's traffic in one window.
type keyAgg struct {
	counts  rotate.Counts
	prefix  string
	country string
	asn     uint32
}

type candidate struct {
	rule   *Rule
	key    string
	agg    *keyAgg
	value  float64
	window time.Time
}

// seed reads the stored windows of r's period before the window at end:
// those of the same length from from on. Windows missing from the database
// (the daemon was down) are missing from the sum, as they would be had it
// run on; what the database no longer holds as raw windows (--retention)
// is not seen either.
func (e *Engine) seed(r *Rule, from, end time.Time, length time.Duration) []histWindow {
	if e.hist == nil {
		return nil
	}
	var out []histWindow
	err := e.hist(from, end, func(w *storage.Window) error {
		if w.Length == length && !w.Start.Before(from) && w.Start.Before(end) {
			out = append(out, histWindow{w.Start, aggregate(r, w)})
		}
		return nil
	})
	if err != nil {
		e.log.Error("alerts: read stored windows for a period sum; summing from now on", "rule", r.Name, "err", err)
		return nil
	}
	if len(out) > 0 {
		e.log.Info("alerts: period sum seeded from storage", "rule", r.Name, "windows", len(out), "from", out[0].start)
	}
	return out
}

func sameRule(a, b *Rule) bool {
	return fmt.Sprintf("%+v", *a) == fmt.Sprintf("%+v", *b)
}

// aggregate sums w's traffic in r's scope per key.
func aggregate(r *Rule, w *storage.Window) map[string]*keyAgg {
	out := map[string]*keyAgg{}
	filtered := len(r.Remotes)+len(r.Countries)+len(r.ASNs) > 0
	remotes := w.Remotes
	if len(r.Services) > 0 {
		// A service scope: the whole host's share is the services' exact
		// totals; per remote (or prefix), only the remotes each service
		// kept rows for (its heaviest, --service-top per window) are seen.
		remotes = nil
		for i := range w.Services {
			sv := &w.Services[i]
			if !slices.ContainsFunc(r.Services, func(m ServiceMatch) bool { return m.matches(sv.Key) }) {
				continue
			}
			if r.Per == PerHost && !filtered {
				a := out["host"]
				if a == nil {
					a = &keyAgg{}
					out["host"] = a
				}
				a.counts.Add(sv.Counts)
				continue
			}
			remotes = append(remotes, sv.Top...)
		}
		if r.Per == PerHost && !filtered {
			return out
		}
		filtered = true // folded remotes are not the service's
	}
	for i := range remotes {
		rm := &remotes[i]
		if filtered && !r.matches(rm) {
			continue
		}
		var key, prefix string
		switch r.Per {
		case PerHost:
			key = "host"
		case PerRemote:
			key = rm.Addr.String()
			prefix = netip.PrefixFrom(rm.Addr, rm.Addr.BitLen()).String()
		case PerPrefix:
			bits := r.PrefixV6
			if rm.Addr.Is4() {
				bits = r.PrefixV4
			}
			p, _ := rm.Addr.Prefix(bits)
			key, prefix = p.String(), p.String()
		}
		a := out[key]
		if a == nil {
			// The heaviest remote comes first and names the key's country.
			a = &keyAgg{prefix: prefix, country: rm.Country, asn: rm.ASN}
			out[key] = a
		}
		a.counts.Add(rm.Counts)
	}
	if r.Per == PerHost && !filtered {
		a := out["host"]
		if a == nil {
			a = &keyAgg{}
			out["host"] = a
		}
		a.counts.Add(w.Other) // folded remotes count for the host as a whole
	}
	return out
}

func (r *Rule) matches(rm *storage.Remote) bool {
	if len(r.Remotes) > 0 && !slices.ContainsFunc(r.Remotes, func(p netip.Prefix) bool { return p.Contains(rm.Addr) }) {
		return false
	}
	if len(r.Countries) > 0 {
		cc := rm.Country
		if cc == "" {
			cc = "--"
		}
		if !slices.Contains(r.Countries, cc) {
			return false
		}
	}
	if len(r.ASNs) > 0 && !slices.Contains(r.ASNs, rm.ASN) {
		return false
	}
	return true
}

func (m Metric) of(c rotate.Counts, seconds float64) float64 {
	switch m {
	case TxBps:
		return float64(c.TxBytes) * 8 / seconds
	case RxBps:
		return float64(c.RxBytes) * 8 / seconds
	case Bps:
		return float64(c.TxBytes+c.RxBytes) * 8 / seconds
	case TxPps:
		return float64(c.TxPackets) / seconds
	case RxPps:
		return float64(c.RxPackets) / seconds
	case Pps:
		return float64(c.TxPackets+c.RxPackets) / seconds
	case TxBytes:
		return float64(c.TxBytes)
	case RxBytes:
		return float64(c.RxBytes)
	case BothBytes:
		return float64(c.TxBytes + c.RxBytes)
	}
	return 0
}

// Evaluate runs the rules on one stored window: it counts each key's
// consecutive windows over its threshold, fires new incidents, and
// records refires of active ones. Windows must come in order.
func (e *Engine) Evaluate(w *storage.Window) error {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	rs := e.rules.Load()
	var cands []candidate
	names := map[string]bool{}
	for _, r := range rs.Rules {
		names[r.Name] = true
		st := e.state[r.Name]
		if st == nil || !sameRule(st.rule, r) {
			st = &ruleState{rule: r}
			e.state[r.Name] = st
		}
		k := max(int(math.Ceil(float64(r.Period)/float64(w.Length))), 1)
		// The period is the k windows ending with w.
		cutoff := w.Start.Add(-time.Duration(k-1) * w.Length)
		if st.last.IsZero() || !w.Start.Equal(st.last.Add(st.length)) || w.Length != st.length {
			st.streak, st.hist = map[string]int{}, nil // a gap: nothing is consecutive
			if r.Metric.isBytes() && k > 1 {
				// The bytes of the period are in the database: a restart,
				// a gap or a reload must not forget them.
				st.hist = e.seed(r, cutoff, w.Start, w.Length)
			}
		}
		st.last, st.length = w.Start, w.Length
		aggs := aggregate(r, w)
		values := map[string]*keyAgg{}
		if r.Metric.isBytes() {
			i := 0
			for i < len(st.hist) && st.hist[i].start.Before(cutoff) {
				i++
			}
			st.hist = st.hist[i:]
			for _, h := range append(slices.Clip(st.hist), histWindow{w.Start, aggs}) {
				for key, a := range h.aggs {
					s := values[key]
					if s == nil {
						s = &keyAgg{prefix: a.prefix, country: a.country, asn: a.asn}
						values[key] = s
					}
					s.counts.Add(a.counts)
				}
			}
			if k > 1 {
				st.hist = append(st.hist, histWindow{w.Start, aggs})
			}
		} else {
			values = aggs
		}
		streak := map[string]int{}
		secs := w.Length.Seconds()
		for key, a := range values {
			v := r.Metric.of(a.counts, secs)
			if v <= r.Threshold {
				continue
			}
			streak[key] = st.streak[key] + 1
			if streak[key] >= r.Windows {
				cands = append(cands, candidate{rule: r, key: key, agg: a, value: v, window: w.Start})
			}
		}
		st.streak = streak
	}
	for name := range e.state {
		if !names[name] {
			delete(e.state, name)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	// Within a rule the heaviest keys come first: when a limit suppresses
	// some, it suppresses the lightest.
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].rule.Name != cands[j].rule.Name {
			return cands[i].rule.Name < cands[j].rule.Name
		}
		if cands[i].value != cands[j].value {
			return cands[i].value > cands[j].value
		}
		return cands[i].key < cands[j].key
	})
	return e.apply(cands)
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

// exitValue is an action's exit status for the log: the number, or nothing
// when the action was not a command or never exited.
func exitValue(code *int) any {
	if code == nil {
		return nil
	}
	return *code
}

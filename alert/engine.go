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
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dstwatch/dstwatch/internal/safefile"
	"github.com/dstwatch/dstwatch/window"
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
	History func(ctx context.Context, from, to time.Time, fn func(*window.Window) error) error
}

// Engine evaluates rules on windows and keeps incidents.
type Engine struct {
	db     *bolt.DB
	log    *slog.Logger
	record func(time.Time, string)
	now    func() time.Time
	hc     *http.Client
	rules  atomic.Pointer[RuleSet]

	evalMu sync.Mutex // Evaluate runs one window at a time, in order
	eval   evaluator

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

	windows chan *window.Window

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
		db: db, log: o.Logger, record: o.Record, now: o.Now, eval: newEvaluator(o.Logger, o.History),
		hc:   &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		jobs: map[uint64]chan struct{}{}, ctx: ctx, cancel: cancel,
		quit: make(chan struct{}), stop: make(chan struct{}), wake: make(chan struct{}, 1),
		windows: make(chan *window.Window, 64),
	}
	e.rules.Store(&RuleSet{})
	return e, nil
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
func (e *Engine) Observe(w *window.Window) { e.windows <- w }

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

// Recover marks actions left started by a previous run as interrupted and
// resumes each open incident: pending actions run, expiring incidents
// finish their undo. Then RunDue runs the expiries that passed.
func (e *Engine) Recover() error {
	var open []uint64
	err := e.db.Update(func(tx *bolt.Tx) error {
		return forActive(tx, func(inc *Incident) error {
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

// RunDue starts the expiry of every active incident whose expiry passed.
func (e *Engine) RunDue() error {
	_, err := e.runDue()
	return err
}

// runDue is RunDue that also says when the next expiry is due (zero when
// no incident is active), from the same scan of the active incidents.
func (e *Engine) runDue() (next time.Time, err error) {
	now := e.now()
	var due []*Incident
	err = e.db.View(func(tx *bolt.Tx) error {
		return forActive(tx, func(inc *Incident) error {
			if inc.State != Active {
				return nil
			}
			if !inc.Expires.After(now) {
				due = append(due, inc)
			} else if next.IsZero() || inc.Expires.Before(next) {
				next = inc.Expires
			}
			return nil
		})
	})
	if err != nil {
		return time.Time{}, err
	}
	for _, inc := range due {
		if _, err := e.beginExpire(inc.ID, "expired"); err != nil {
			e.log.Error("alerts: expire", "incident", inc.ID, "err", err)
			// Still active and due: try again soon.
			if next.IsZero() || inc.Expires.Before(next) {
				next = inc.Expires
			}
			continue
		}
		e.schedule(inc.ID)
	}
	return next, nil
}

func (e *Engine) expiryLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next, err := e.runDue()
		if err != nil {
			e.log.Error("alerts: expiries", "err", err)
		}
		wait := time.Minute // also catches clock steps
		if !next.IsZero() {
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

// Evaluate runs the rules on one stored window: it counts each key's
// consecutive windows over its threshold, fires new incidents, and
// records refires of active ones. Windows must come in order.
func (e *Engine) Evaluate(w *window.Window) error {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	cands := e.eval.evaluate(e.rules.Load(), w)
	if len(cands) == 0 {
		return nil
	}
	return e.apply(cands)
}

package alert

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketSuppressed = []byte("suppressed") // rule -> Suppressed JSON: incidents not opened, over a limit

// Reasons a new incident was suppressed.
const (
	OverPerWindow = "per_window" // the rule opened limits.incidents_per_window in this window
	OverActive    = "active"     // limits.active incidents were open
	OverQueue     = "queue"      // limits.running ran and limits.queued waited
)

// Suppressed counts the incidents a rule did not open because a limit was
// reached, one for each key and window it stayed over the threshold. The
// counts are kept in alerts.db, so they survive restarts.
type Suppressed struct {
	PerWindow uint64     `json:"per_window"`
	Active    uint64     `json:"active"`
	Queue     uint64     `json:"queue"`
	Last      *time.Time `json:"last,omitempty"` // start of the last window that had one
}

// Total is all of them.
func (s Suppressed) Total() uint64 { return s.PerWindow + s.Active + s.Queue }

func (s *Suppressed) add(o Suppressed) {
	s.PerWindow += o.PerWindow
	s.Active += o.Active
	s.Queue += o.Queue
	if o.Last != nil && (s.Last == nil || o.Last.After(*s.Last)) {
		t := *o.Last
		s.Last = &t
	}
}

func (s *Suppressed) count(reason string) {
	switch reason {
	case OverPerWindow:
		s.PerWindow++
	case OverActive:
		s.Active++
	case OverQueue:
		s.Queue++
	}
}

// Stats is what the limits do now: for status, metrics and 'incidents'.
type Stats struct {
	Limits     Limits                `json:"limits"`
	Active     int                   `json:"active"`          // open incidents
	Running    int                   `json:"actions_running"` // incidents running actions now
	Queued     int                   `json:"actions_queued"`  // incidents waiting for a slot
	Suppressed Suppressed            `json:"suppressed"`      // all rules, since alerts.db was made
	ByRule     map[string]Suppressed `json:"suppressed_by_rule,omitempty"`
}

// limits are the rules' limits, with defaults for what is unset.
func (e *Engine) limits() Limits {
	l := e.rules.Load().Limits
	d := DefaultLimits
	if l.PerWindow <= 0 {
		l.PerWindow = d.PerWindow
	}
	if l.Active <= 0 {
		l.Active = d.Active
	}
	if l.Running <= 0 {
		l.Running = d.Running
	}
	if l.Queued < 0 {
		l.Queued = 0
	}
	return l
}

// Stats reports the limits, what runs and waits, and what was suppressed.
func (e *Engine) Stats() (Stats, error) {
	st := Stats{Limits: e.limits(), ByRule: map[string]Suppressed{}}
	st.Running, st.Queued = e.slots.counts()
	err := e.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketActive); b != nil {
			st.Active = b.Stats().KeyN
		}
		b := tx.Bucket(bucketSuppressed)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var s Suppressed
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("alerts: damaged suppressed count of rule %q: %w", k, err)
			}
			st.ByRule[string(k)] = s
			st.Suppressed.add(s)
			return nil
		})
	})
	return st, err
}

// addSuppressed adds this window's suppressed counts to the file's.
func addSuppressed(tx *bolt.Tx, by map[string]*Suppressed) error {
	b := tx.Bucket(bucketSuppressed)
	for rule, s := range by {
		var old Suppressed
		if v := b.Get([]byte(rule)); v != nil {
			json.Unmarshal(v, &old) // a damaged count starts again
		}
		old.add(*s)
		v, err := json.Marshal(old)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(rule), v); err != nil {
			return err
		}
	}
	return nil
}

// slots bound the incidents that run actions at once. Jobs wait in turn
// (first come, first served) for a slot; how many wait is bounded where
// incidents open (apply), not here, so that an undo or a resumed action
// is never dropped.
type slots struct {
	mu      sync.Mutex
	limit   int
	running int
	waiters []chan struct{} // closed when granted a slot
}

// acquire waits for a slot; false when stop closed first.
func (s *slots) acquire(limit int, stop <-chan struct{}) bool {
	s.mu.Lock()
	s.limit = limit
	s.grant()
	if s.running < s.limit && len(s.waiters) == 0 {
		s.running++
		s.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-stop:
		s.mu.Lock()
		if i := slices.Index(s.waiters, ch); i >= 0 {
			s.waiters = slices.Delete(s.waiters, i, i+1)
			s.mu.Unlock()
			return false
		}
		s.mu.Unlock()
		s.release() // granted meanwhile: give it back
		return false
	}
}

func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	s.grant()
}

func (s *slots) setLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
	s.grant()
}

// grant starts waiting jobs while there is room; s.mu is held.
func (s *slots) grant() {
	for s.running < s.limit && len(s.waiters) > 0 {
		close(s.waiters[0])
		s.waiters = s.waiters[1:]
		s.running++
	}
}

func (s *slots) counts() (running, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, len(s.waiters)
}

// reportSuppressed says, in the record log and the daemon's log, what one
// window's evaluation suppressed: one line per rule and reason.
func (e *Engine) reportSuppressed(by map[string]*Suppressed, lim Limits, now time.Time) {
	rules := make([]string, 0, len(by))
	for r := range by {
		rules = append(rules, r)
	}
	slices.Sort(rules)
	for _, rule := range rules {
		s := by[rule]
		for _, x := range []struct {
			reason string
			n      uint64
			limit  string
		}{
			{OverPerWindow, s.PerWindow, fmt.Sprintf("%d new incidents per rule and window", lim.PerWindow)},
			{OverActive, s.Active, fmt.Sprintf("%d open incidents", lim.Active)},
			{OverQueue, s.Queue, fmt.Sprintf("%d running and %d queued", lim.Running, lim.Queued)},
		} {
			if x.n == 0 {
				continue
			}
			if e.record != nil {
				e.record(now, fmt.Sprintf("!!! alert suppressed rule=%s window=%s incidents=%d reason=%s limit=%q",
					rule, s.Last.UTC().Format(time.RFC3339), x.n, x.reason, x.limit))
			}
			e.log.Warn("alerts: incidents suppressed over a limit; no action runs for them", "rule", rule, "window", *s.Last,
				"incidents", x.n, "reason", x.reason, "limit", x.limit)
		}
	}
}

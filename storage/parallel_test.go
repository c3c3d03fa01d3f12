package storage

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"
	bolt "go.etcd.io/bbolt"
)

// spanUnit is one window a span delivered: each window's start, length and
// value as stored again, in the order a worker (or fn) got them.
type spanUnit struct {
	start  time.Time
	length time.Duration
	value  string
}

func unitOf(w *window.Window) spanUnit {
	return spanUnit{w.Start, w.Length, string(MarshalWindow(w))}
}

// TestSpanParallelIsSpan: the workers of a parallel span together get
// exactly the windows a serial span gets (each once, each worker's oldest
// first, with reused windows not leaking from one to the next), and the
// damage is told in the same order, for ranges over rollups, raw windows
// resumed across transactions, and damaged values.
func TestSpanParallelIsSpan(t *testing.T) {
	db := openTemp(t)
	rng := rand.New(rand.NewPCG(11, 12))
	const days = 3
	fillRandom(t, db, rng, days)
	defer func(n int) { spanBatch = n }(spanBatch)
	spanBatch = 40 // many transactions, resumed inside raw chunks
	// Two hourly rollups and the newest raw window (of the hour not yet
	// sealed) are damaged.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, at := range []time.Time{day0.Add(5 * time.Hour), day0.Add(7 * time.Hour)} {
			if err := tx.Bucket(bucketHours).Put(windowKey(at), []byte{valueVersion, 99}); err != nil {
				return err
			}
		}
		k, _ := tx.Bucket(bucketWindows).Cursor().Last()
		return tx.Bucket(bucketWindows).Put(k, []byte{valueVersion, 99})
	})
	if err != nil {
		t.Fatal(err)
	}
	var damaged int
	for i := range 60 {
		from, to := randomTime(rng, days), randomTime(rng, days)
		switch i {
		case 0:
			from, to = day0, day0.Add(days*24*time.Hour+time.Hour)
		case 1:
			from, to = day0.Add(4*time.Hour+10*time.Minute), day0.Add(9*time.Hour)
		case 2:
			from, to = day0.Add(days*24*time.Hour-90*time.Minute), day0.Add(days*24*time.Hour+time.Hour)
		}
		if to.Before(from) {
			from, to = to, from
		}
		for _, reuse := range []bool{false, true} {
			var want []spanUnit
			var wantDamage []Damage
			wantRes, err := db.SpanWith(context.Background(), from, to, SpanOptions{Reuse: reuse, Damaged: func(d Damage) { wantDamage = append(wantDamage, d) }},
				func(w *window.Window) error { want = append(want, unitOf(w)); return nil })
			if err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{2, 3} {
				var mu sync.Mutex
				per := make([][]spanUnit, workers)
				var gotDamage []Damage
				opt := SpanOptions{Reuse: reuse, Workers: workers,
					Damaged: func(d Damage) { gotDamage = append(gotDamage, d) },
					Parallel: func(i int, w *window.Window) error {
						mu.Lock()
						defer mu.Unlock()
						per[i] = append(per[i], unitOf(w))
						return nil
					}}
				res, err := db.SpanWith(context.Background(), from, to, opt, func(*window.Window) error { t.Fatal("fn called in a parallel span"); return nil })
				if err != nil || res != wantRes {
					t.Fatalf("[%s, %s) %d workers: %v, resolution %v, want %v", from, to, workers, err, res, wantRes)
				}
				var got []spanUnit
				for i, us := range per {
					if !slices.IsSortedFunc(us, func(a, b spanUnit) int { return a.start.Compare(b.start) }) {
						t.Fatalf("[%s, %s): worker %d got windows out of order", from, to, i)
					}
					got = append(got, us...)
				}
				slices.SortFunc(got, func(a, b spanUnit) int { return a.start.Compare(b.start) })
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("[%s, %s) %d workers, reuse %v: %d windows, want %d (or different ones)", from, to, workers, reuse, len(got), len(want))
				}
				if !reflect.DeepEqual(gotDamage, wantDamage) {
					t.Fatalf("[%s, %s) %d workers: damage %v, want %v", from, to, workers, gotDamage, wantDamage)
				}
			}
			damaged += len(wantDamage)
		}
	}
	if damaged < 3 {
		t.Errorf("the ranges met %d damaged values", damaged)
	}
	// NoOrgs leaves organisations out, serial or parallel; without it
	// they are there.
	for _, no := range []bool{false, true} {
		var mu sync.Mutex
		orgs := 0
		count := func(w *window.Window) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range w.Remotes {
				if r.ASOrg != "" {
					orgs++
				}
			}
			return nil
		}
		for _, workers := range []int{1, 2} {
			orgs = 0
			opt := SpanOptions{NoOrgs: no, Workers: workers, Parallel: func(_ int, w *window.Window) error { return count(w) }}
			if _, err := db.SpanWith(context.Background(), day0, day0.Add(days*24*time.Hour), opt, count); err != nil {
				t.Fatal(err)
			}
			if (orgs == 0) != no {
				t.Errorf("NoOrgs %v, %d workers: %d remotes with an organisation", no, workers, orgs)
			}
		}
	}
	// An error from Parallel stops the span and comes back as it is.
	stop := errors.New("stop")
	var calls int
	var mu sync.Mutex
	_, err = db.SpanWith(context.Background(), day0, day0.Add(days*24*time.Hour), SpanOptions{Workers: 2, Parallel: func(int, *window.Window) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return stop
	}}, nil)
	if err != stop || calls > 2 {
		t.Errorf("Parallel's error: %v after %d calls, want %v after at most one per worker", err, calls, stop)
	}
}

package storage

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"

	bolt "go.etcd.io/bbolt"
)

// A read whose context ends stops: no window reaches fn after the
// cancellation, and the error is the context's. The API hands each
// request's context down here, so a client that goes away stops the read.
func TestCancelStopsReads(t *testing.T) {
	db := openTemp(t)
	fillRandom(t, db, rand.New(rand.NewPCG(7, 7)), 3)
	// Raw edges and the rollups of whole hours and days in between.
	from, to := day0.Add(7*time.Minute), day0.Add(3*24*time.Hour-5*time.Minute)
	all := 0
	if _, err := db.SpanWith(context.Background(), from, to, SpanOptions{Reuse: true}, func(*window.Window) error { all++; return nil }); err != nil {
		t.Fatal(err)
	}
	if all < 100 {
		t.Fatalf("the span has only %d units; the test needs a long one", all)
	}

	const stopAt = 3
	for name, read := range map[string]func(ctx context.Context, fn func(*window.Window) error) error{
		"Span": func(ctx context.Context, fn func(*window.Window) error) error {
			_, err := db.SpanWith(ctx, from, to, SpanOptions{Reuse: true}, fn)
			return err
		},
		"Windows": func(ctx context.Context, fn func(*window.Window) error) error { return db.Windows(ctx, from, to, fn) },
		"Last":    func(ctx context.Context, fn func(*window.Window) error) error { return db.Last(ctx, 1000, fn) },
	} {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := read(ctx, func(*window.Window) error {
			if calls++; calls == stopAt {
				cancel() // as the server's request context is when its client goes
			}
			return nil
		})
		cancel()
		if !errors.Is(err, context.Canceled) || calls != stopAt {
			t.Errorf("%s: %d calls of fn, error %v; want %d and %v", name, calls, err, stopAt, context.Canceled)
		}
		calls = 0
		if err := read(ctx, func(*window.Window) error { calls++; return nil }); !errors.Is(err, context.Canceled) || calls != 0 {
			t.Errorf("%s with a context done before: %d calls, error %v", name, calls, err)
		}
	}

	// The goroutine that decodes a span ahead of fn heeds the context
	// itself: blocked on a consumer that no longer reads, it returns
	// once the context ends, rather than waiting for a stop that the
	// consumer would only send after its next unit.
	var segs []segment
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		tt := readTiers(tx)
		segs, _ = tt.plan(from, to)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan *window.Window) // unbuffered: every send waits for a reader
	done := make(chan error, 1)
	var skipped []Damage
	go func() { done <- db.readSegments(ctx, segs, SpanOptions{}, nil, out, make(chan struct{}), &skipped) }()
	select {
	case <-out: // it is reading
	case err := <-done:
		t.Fatalf("readSegments returned before sending: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("readSegments after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("readSegments still blocked 10 s after its context ended")
	}
}

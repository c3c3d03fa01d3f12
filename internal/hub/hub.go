// Package hub owns the fan-out of stored windows to live streams (the API's
// /v1/stream and the dashboard's events): a bounded set of subscribers,
// each with a bounded buffer. Publish never waits: a subscriber whose
// buffer is full is dropped (its channel closed), so that a slow reader
// cannot stall the daemon's writer; the reader sees its stream end and
// may reconnect.
package hub

import (
	"errors"
	"sync"
)

// Errors of Subscribe; callers answer them in their own words.
var (
	ErrClosed = errors.New("hub closed")
	ErrFull   = errors.New("too many subscribers")
)

// Hub fans messages out to its subscribers. Its methods are safe from any
// goroutine.
type Hub struct {
	max, buf int

	mu     sync.Mutex
	subs   map[*Sub]struct{} // guarded by mu
	closed bool              // guarded by mu; set by Close, never reset
}

// Sub is one subscriber.
type Sub struct {
	ch chan []byte // closed by the hub when dropped, unsubscribed or at Close
}

// C is where the subscriber's messages come, in order; it is closed when
// the subscriber is dropped, unsubscribed, or the hub closes.
func (s *Sub) C() <-chan []byte { return s.ch }

// New returns a hub for at most max subscribers, each buffering buf
// messages.
func New(max, buf int) *Hub {
	return &Hub{max: max, buf: buf, subs: map[*Sub]struct{}{}}
}

// Subscribe adds a subscriber: ErrClosed after Close, ErrFull when max
// subscribe already.
func (h *Hub) Subscribe() (*Sub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if len(h.subs) >= h.max {
		return nil, ErrFull
	}
	s := &Sub{ch: make(chan []byte, h.buf)}
	h.subs[s] = struct{}{}
	return s, nil
}

// Unsubscribe removes s if the hub has not dropped it already.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Active reports whether anyone listens, so that a publisher can skip
// encoding a message nobody reads.
func (h *Hub) Active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// Publish hands msg to every subscriber without waiting; one whose buffer
// is full is dropped. Subscribers share msg: nobody may change it.
func (h *Hub) Publish(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- msg:
		default:
			delete(h.subs, s)
			close(s.ch)
		}
	}
}

// Close ends every subscription and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}

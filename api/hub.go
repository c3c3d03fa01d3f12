package api

import (
	"errors"
	"sync"
)

// hub fans stored windows out to stream subscribers. Each subscriber has a
// bounded buffer; publish never waits: a subscriber that is full is
// dropped (its channel closed), so a slow reader cannot stall the writer.
type hub struct {
	max, buf int

	mu     sync.Mutex
	subs   map[*sub]struct{} // guarded by mu
	closed bool              // guarded by mu; set by close, never reset
}

type sub struct {
	ch chan []byte // closed by the hub when dropped or at close
}

func newHub(max, buf int) *hub {
	return &hub{max: max, buf: buf, subs: map[*sub]struct{}{}}
}

var (
	errClosed          = errors.New("the daemon is stopping")
	errTooManyStreamed = errors.New("too many streams open")
)

func (h *hub) subscribe() (*sub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	if len(h.subs) >= h.max {
		return nil, errTooManyStreamed
	}
	s := &sub{ch: make(chan []byte, h.buf)}
	h.subs[s] = struct{}{}
	return s, nil
}

// unsubscribe removes s if the hub has not dropped it already.
func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// active reports whether anyone listens, so that Publish can skip encoding.
func (h *hub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

func (h *hub) publish(line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- line:
		default:
			delete(h.subs, s)
			close(s.ch)
		}
	}
}

// close ends every stream and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}

package hub

import (
	"errors"
	"strconv"
	"testing"
)

// A subscriber that does not read is dropped; Publish never blocks.
func TestDropsSlowSubscriber(t *testing.T) {
	h := New(2, 3)
	if h.Active() {
		t.Error("active without subscribers")
	}
	slow, _ := h.Subscribe()
	fast, _ := h.Subscribe()
	if _, err := h.Subscribe(); !errors.Is(err, ErrFull) {
		t.Errorf("third subscriber: %v", err)
	}
	if !h.Active() {
		t.Error("not active with subscribers")
	}
	got := 0
	for i := range 10 {
		h.Publish([]byte(strconv.Itoa(i)))
		for len(fast.C()) > 0 {
			if m := <-fast.C(); string(m) != strconv.Itoa(got) {
				t.Fatalf("fast subscriber got %q, want %d", m, got)
			}
			got++
		}
	}
	if got != 10 {
		t.Errorf("fast subscriber got %d of 10", got)
	}
	n := 0
	for range slow.C() { // closed once dropped
		n++
	}
	if n != 3 {
		t.Errorf("slow subscriber got %d before being dropped, want its buffer of 3", n)
	}
	h.Unsubscribe(slow) // after a drop: no double close
	// The dropped one's place is free again.
	again, err := h.Subscribe()
	if err != nil {
		t.Fatalf("subscribe after a drop: %v", err)
	}
	h.Unsubscribe(again)
	if _, ok := <-again.C(); ok {
		t.Error("unsubscribe left the channel open")
	}
	h.Close()
	if _, ok := <-fast.C(); ok {
		t.Error("close left a stream open")
	}
	if _, err := h.Subscribe(); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe after close: %v", err)
	}
	if h.Active() {
		t.Error("active after close")
	}
	h.Publish([]byte("x")) // after close: nobody, no panic
}

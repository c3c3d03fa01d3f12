package rotate

import (
	"net/netip"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

// Remote is one remote address with its counts.
type Remote struct {
	Addr netip.Addr // IPv4 unmapped
	window.Counts
}

// Window is one closed, epoch-aligned time window.
type Window struct {
	Start   time.Time     // UTC, a multiple of Length since the Unix epoch
	Length  time.Duration // whole seconds
	Remotes []Remote      // heaviest first (bytes both ways, then address); at most the cap
	Other   window.Counts // sum of the remotes folded by the cap
	Stats   window.Stats
	// Services are the window's traffic per service, heaviest first
	// (service.go); not capped by the remotes' cap.
	Services []Service
}

// End is the first instant after the window.
func (w *Window) End() time.Time { return w.Start.Add(w.Length) }

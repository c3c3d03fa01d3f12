package rotate

import (
	"time"

	"github.com/dstwatch/dstwatch/capture"
)

// tickEvery is how often a live tally looks at the clock. It bounds how late
// past its deadline a window closes on a quiet link.
const tickEvery = 100 * time.Millisecond

// Run tallies batches from p until p.Full is closed, then closes the partial
// window and returns. Closing p.Full (after every source has stopped) is how
// the caller stops it, so nothing a source emitted is left uncounted. Each
// batch is given back to p for reuse once tallied.
func (t *Tally) Run(p *capture.Pipe) {
	origin := time.Now()
	var tick <-chan time.Time
	if t.cfg.Live {
		tk := time.NewTicker(tickEvery)
		defer tk.Stop()
		tick = tk.C
		t.tick(now(origin))
	}
	for {
		select {
		case b, ok := <-p.Full:
			if !ok {
				t.flush()
				return
			}
			var c clock
			if t.cfg.Live {
				c = now(origin)
			}
			t.add(b, c)
			p.Put(b)
		case <-tick:
			t.tick(now(origin))
		}
	}
}

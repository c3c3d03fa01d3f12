package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/dstwatch/dstwatch/capture"
)

const (
	// reopenEvery is how often a lost interface is looked for again.
	reopenEvery = time.Second
	// addrsEvery is how often the host's addresses are compared with the
	// ones capture classifies by (DHCP renewals, SLAAC, a VPN coming up).
	addrsEvery = 5 * time.Second
)

// runLive keeps capturing on live source i until ctx is done. When the
// interface goes down or away, the socket fails; runLive logs the outage,
// waits for the interface to be back and up, opens a new socket and goes
// on. Windows keep closing meanwhile, so the gap shows as windows without
// traffic, and the outage is counted in status.
func (a *App) runLive(ctx context.Context, i int, pipe *capture.Pipe) error {
	name := a.names[i]
	for {
		a.livesMu.Lock()
		l := a.lives[i]
		a.livesMu.Unlock()
		err := l.Run(ctx, a.cls.Load(), pipe)
		if ctx.Err() != nil {
			return nil
		}
		since := time.Now()
		a.tally.CaptureDown(true) // the windows until it is back are partial
		a.gaps.Add(1)
		a.down.Store(name, since)
		a.log.Error("capture stopped; waiting for the interface to come back", "interface", name, "err", err)
		nl, err := a.reopen(ctx, name)
		a.down.Delete(name)
		a.tally.CaptureDown(false)
		if err != nil {
			return nil // ctx done
		}
		rx, drops := l.Stats()
		// Under the lock status reads with, so no reader sees the old
		// socket's counters both in the past totals and in its slot.
		a.livesMu.Lock()
		a.pastReceived.Add(rx)
		a.pastDrops.Add(drops)
		a.lives[i] = nl
		// The addresses may have changed while nl was being opened.
		c := a.cls.Load()
		nl.SetLocal(c.Local(), c)
		a.livesMu.Unlock()
		a.log.Warn("capture resumed", "interface", name, "gap", time.Since(since).Round(time.Millisecond))
	}
}

// reopen waits until name exists and is up, then opens a new capture on it.
func (a *App) reopen(ctx context.Context, name string) (*capture.Live, error) {
	t := time.NewTicker(reopenEvery)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		ifi, err := net.InterfaceByName(name)
		if err != nil || ifi.Flags&net.FlagUp == 0 {
			continue
		}
		l, err := capture.OpenLive(capture.LiveConfig{Interface: name, Local: a.cls.Load().Local(), NumBlocks: a.cfg.RingBlocks})
		if err != nil {
			// Without CAP_NET_RAW (dropped by --user) no retry can succeed;
			// say so once, where it is seen, instead of at debug each second.
			if errors.Is(err, os.ErrPermission) && !warned {
				warned = true
				a.log.Warn("cannot reopen the capture: the daemon no longer holds CAP_NET_RAW (dropped with --user); restart dstwatch, or run it as a user granted CAP_NET_RAW so that it can reopen (see docs/operations.md)", "interface", name, "err", err)
			} else {
				a.log.Debug("reopen capture", "interface", name, "err", err)
			}
			continue
		}
		return l, nil
	}
}

func (a *App) downList() []string {
	var out []string
	a.down.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	sort.Strings(out)
	return out
}

// interfaceAddrs are the addresses of all capture interfaces, sorted.
func (a *App) interfaceAddrs() ([]netip.Addr, error) {
	var local []netip.Addr
	for _, name := range a.cfg.Interfaces {
		addrs, err := capture.InterfaceAddrs(name)
		if err != nil {
			return nil, err
		}
		local = append(local, addrs...)
	}
	slices.SortFunc(local, netip.Addr.Compare)
	return slices.Compact(local), nil
}

// followAddrs keeps the local addresses equal to the interfaces' addresses
// when they were not given with --local. A change swaps the classifier and
// each socket's kernel filter in place. An interface that is gone keeps
// its last addresses until it is back.
func (a *App) followAddrs(ctx context.Context) {
	t := time.NewTicker(addrsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := a.interfaceAddrs()
		if err != nil || len(now) == 0 {
			continue
		}
		old := a.cls.Load().Local()
		slices.SortFunc(old, netip.Addr.Compare)
		if slices.Equal(old, now) {
			continue
		}
		c := a.newClassifier(now)
		a.cls.Store(c)
		a.livesMu.Lock()
		for _, l := range a.lives {
			if err := l.SetLocal(now, c); err != nil {
				a.log.Warn("update capture filter", "interface", l.Interface(), "err", err)
			}
		}
		a.livesMu.Unlock()
		a.log.Info("local addresses changed", "local", now, "before", old)
	}
}

// Package rdns owns the reverse-DNS names shown beside remotes: PTR lookups
// made off the counting path, each under a timeout, at most a bound of them
// in flight, remembered in a bounded cache for a while. Names are for
// people to read and are never stored: a PTR record says what the
// address's owner chose to publish, not what the traffic was, and it
// changes without notice.
package rdns

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Config says where and how names are looked up.
type Config struct {
	// Server is a DNS server's host:port; "" uses the system's resolver.
	Server string
	// Timeout bounds one lookup; 0: DefaultTimeout.
	Timeout time.Duration
	// InFlight bounds the lookups made at once; 0: DefaultInFlight.
	InFlight int
	// MaxCache bounds the names (and absences) remembered; 0: DefaultMaxCache.
	MaxCache int
	// TTL is how long an answer is remembered; 0: DefaultTTL.
	TTL time.Duration
}

const (
	DefaultTimeout  = 2 * time.Second
	DefaultInFlight = 16
	DefaultMaxCache = 10000
	DefaultTTL      = 10 * time.Minute
)

// Resolver looks names up and remembers them. Its methods are safe for
// concurrent use.
type Resolver struct {
	cfg  Config
	res  *net.Resolver
	sem  chan struct{} // a slot per lookup in flight
	now  func() time.Time
	mu   sync.Mutex
	seen map[netip.Addr]entry // guarded by mu
}

type entry struct {
	name    string
	at      time.Time
	pending bool // a background lookup is running
}

// New returns a Resolver for cfg.
func New(cfg Config) *Resolver {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.MaxCache <= 0 {
		cfg.MaxCache = DefaultMaxCache
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	r := &Resolver{cfg: cfg, res: net.DefaultResolver, sem: make(chan struct{}, cfg.InFlight), now: time.Now, seen: map[netip.Addr]entry{}}
	if cfg.Server != "" {
		server := cfg.Server
		r.res = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	return r
}

// cached returns addr's remembered answer, if it is fresh.
func (r *Resolver) cached(addr netip.Addr) (e entry, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok = r.seen[addr]
	if ok && !e.pending && r.now().Sub(e.at) > r.cfg.TTL {
		delete(r.seen, addr)
		return entry{}, false
	}
	return e, ok
}

func (r *Resolver) remember(addr netip.Addr, e entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[addr]; !ok && len(r.seen) >= r.cfg.MaxCache {
		// Full: forget one answer (never a pending lookup) to make room.
		for a, old := range r.seen {
			if !old.pending {
				delete(r.seen, a)
				break
			}
		}
	}
	r.seen[addr] = e
}

// lookup asks for addr's name, under the timeout; "" when there is none,
// it does not come in time, or it is not a host name.
func (r *Resolver) lookup(ctx context.Context, addr netip.Addr) string {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	names, err := r.res.LookupAddr(ctx, addr.Unmap().String())
	if err != nil || len(names) == 0 {
		return ""
	}
	return clean(names[0])
}

// Names looks addrs up, at most InFlight at once, and waits for them (or
// for ctx); an address without a name has none in the map.
func (r *Resolver) Names(ctx context.Context, addrs []netip.Addr) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range addrs {
		if e, ok := r.cached(a); ok && !e.pending {
			if e.name != "" {
				out[a] = e.name
			}
			continue
		}
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return out
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-r.sem }()
			name := r.lookup(ctx, a)
			r.remember(a, entry{name: name, at: r.now()})
			if name != "" {
				mu.Lock()
				out[a] = name
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// Name returns addr's remembered name without waiting. When it has no
// answer yet it starts a lookup in the background, if a slot is free
// (otherwise a later call tries again), and calls done when the answer
// is in. ok reports whether the answer is known (name may be "").
func (r *Resolver) Name(addr netip.Addr, done func()) (name string, ok bool) {
	if e, ok := r.cached(addr); ok {
		return e.name, !e.pending
	}
	select {
	case r.sem <- struct{}{}:
	default:
		return "", false
	}
	r.remember(addr, entry{pending: true})
	go func() {
		defer func() { <-r.sem }()
		name := r.lookup(context.Background(), addr)
		r.remember(addr, entry{name: name, at: r.now()})
		if done != nil {
			done()
		}
	}()
	return "", false
}

// clean keeps a PTR answer only if it is a plausible host name: ASCII
// letters, digits, '-', '_' and dots, at most 253 characters, without the
// final dot. Anything else (control characters, escapes, spaces) is data
// an address's owner controls and could mislead a terminal with.
func clean(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return ""
		}
	}
	return s
}

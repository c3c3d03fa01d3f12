package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/sys/unix"
)

// Ring defaults. The ring is DefaultNumBlocks blocks of 1 MiB (16 MiB of
// kernel memory per interface, all of it in the daemon's RSS: the kernel
// maps every page of the ring into the process at mmap). With the default
// 128-byte snap a frame takes about 208 bytes of ring (tpacket3 header +
// sockaddr_ll + data, aligned), so the ring holds ~80k frames: 80 ms at
// 1 M frames/s, 0.2 s at the 0.4 M frames/s scripts/loadtest reaches here,
// enough to ride out a GC pause or a slow batch send. 'run --ring-mb' sets
// the number of blocks for busier hosts. The default was 64 blocks until
// the idle RSS (~94 MB, two thirds of it the ring) showed it was sized for
// rates few hosts see; measured with the real binary idle in a namespace
// with 40 remotes (TestLiveRingSize): 64 MiB ring 80 MB RSS, 16 MiB 31 MB,
// 4 MiB 18 MB.
// Blocks of 1 MiB rather than larger ones keep the unit the kernel hands
// over small, so a retired block is processed quickly and the kernel always
// has free blocks to fill.
//
// The block timeout is how long the kernel keeps a partly filled block before
// handing it to us: it bounds the delay for low-rate traffic. 50 ms keeps the
// tally fresh (the rotate grace must be longer than this plus the poll
// timeout) at the cost of retiring mostly empty blocks when idle, which is
// cheap. The poll timeout (100 ms) is how often an idle reader wakes to flush
// its partial batch, read drop counters and notice cancellation.
//
// Measured with scripts/loadtest (trafgen sending 3M 60-byte frames into a
// veth on the 2-core development machine, ~0.4 M frames/s, all trafgen
// could offer): a 64-block ring dropped nothing, as tcpdump -B 65536 did
// not, while pmacctd dropped 2%.
const (
	DefaultSnap         = 128
	DefaultBlockSize    = 1 << 20
	DefaultNumBlocks    = 16
	DefaultBlockTimeout = 50 * time.Millisecond
	DefaultPollTimeout  = 100 * time.Millisecond

	// MinNumBlocks and MaxNumBlocks are the ring sizes worth asking for
	// (run --ring-mb takes no others): with one block the kernel has
	// nowhere to write while the reader holds it (tests use that to force
	// drops), and past 1 GiB per interface a typo is likelier than a need.
	MinNumBlocks = 2
	MaxNumBlocks = 1024
)

// LiveConfig configures a live capture on one interface.
type LiveConfig struct {
	Interface string
	Local     []netip.Addr // for the in-kernel BPF filter
	Snap      int          // bytes copied per frame (the filter's return value); 0 = DefaultSnap

	// Ring tuning; 0 = the Default* constants above. BlockSize must be a
	// multiple of the page size.
	BlockSize, NumBlocks      int
	BlockTimeout, PollTimeout time.Duration
}

// Live is an AF_PACKET TPACKET_V3 capture on one interface.
//
// Capturing on a loopback interface sees every packet twice (once leaving,
// once arriving), so each is counted twice; that is what the kernel shows and
// it is not corrected here.
type Live struct {
	iface string
	link  LinkType
	// loopback: every packet shows up twice on lo, leaving and arriving,
	// so the arriving copy of the host's own packet has a local source;
	// direction is not used there (addresses decide).
	loopback    bool
	snap        uint32
	pollTimeout time.Duration
	cls         atomic.Pointer[Classifier] // set by SetLocal; Run loads it for every frame

	// mu guards state and h's lifetime before Run: once Run has started,
	// only the Run goroutine touches h and it closes h itself, because
	// closing the ring under a reader unmaps memory it is reading
	// (segfault).
	mu    sync.Mutex
	state int // liveOpen, liveRunning, liveClosed
	h     *afpacket.TPacket

	// Written by Run, read by Stats from any goroutine.
	received atomic.Uint64
	dropped  atomic.Uint64
}

const (
	liveOpen = iota
	liveRunning
	liveClosed
)

// OpenLive opens a packet socket on cfg.Interface, sizes its ring and
// attaches the kernel filter. The socket stays in the network namespace of
// the calling thread.
func OpenLive(cfg LiveConfig) (*Live, error) {
	name := cfg.Interface
	if name == "" {
		return nil, errors.New("open capture: no interface given")
	}
	if exists, err := interfaceExists(name); err != nil {
		return nil, fmt.Errorf("open capture on %s: %w", name, err)
	} else if !exists {
		return nil, fmt.Errorf("unknown interface %q", name)
	}
	hw, err := interfaceType(name)
	if err != nil {
		return nil, fmt.Errorf("open capture on %s: %w", name, err)
	}
	link, err := linkForARPHRD(hw)
	if err != nil {
		return nil, fmt.Errorf("open capture on %s: %w", name, err)
	}
	snap := cfg.Snap
	if snap <= 0 {
		snap = DefaultSnap
	}
	l := &Live{iface: name, link: link, loopback: hw == arphrdLoopback, pollTimeout: orDuration(cfg.PollTimeout, DefaultPollTimeout)}
	h, err := afpacket.NewTPacket(
		afpacket.OptInterface(name),
		afpacket.TPacketVersion3,
		afpacket.OptBlockSize(orInt(cfg.BlockSize, DefaultBlockSize)),
		afpacket.OptNumBlocks(orInt(cfg.NumBlocks, DefaultNumBlocks)),
		afpacket.OptBlockTimeout(orDuration(cfg.BlockTimeout, DefaultBlockTimeout)),
		afpacket.OptPollTimeout(l.pollTimeout),
	)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("open capture on %s: %w: run as root or grant CAP_NET_RAW: setcap cap_net_raw+ep ./dstwatch", name, os.ErrPermission)
		}
		return nil, fmt.Errorf("open capture on %s: %w", name, err)
	}
	// Frames that arrived between bind and SetBPF are unfiltered; Classify
	// sorts them out like any other frame.
	l.snap = uint32(snap)
	if err := l.setFilter(h, cfg.Local); err != nil {
		h.Close()
		return nil, fmt.Errorf("open capture on %s: %w", name, err)
	}
	l.h = h
	return l, nil
}

func (l *Live) setFilter(h *afpacket.TPacket, local []netip.Addr) error {
	prog, err := KernelFilter(l.link, local, l.snap)
	if errors.Is(err, errFilterTooLarge) {
		// Too many addresses to list: keep every IP frame and let
		// userspace decide. Slower on a busy router, same numbers.
		prog, err = kernelFilter(l.link, nil, l.snap, false)
	}
	if err == nil {
		err = h.SetBPF(prog)
	}
	if err != nil {
		return fmt.Errorf("set filter: %w", err)
	}
	return nil
}

// SetLocal follows a change of the host's addresses (DHCP, SLAAC) without
// reopening the socket, which would lose or double-count frames: the kernel
// filter is replaced on the open socket, and Run classifies with c from its
// next flush on (at most a poll timeout later). Frames in between are
// classified by the old rules.
func (l *Live) SetLocal(local []netip.Addr, c *Classifier) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == liveClosed {
		return fmt.Errorf("capture on %s: closed", l.iface)
	}
	// The classifier first: it judges frames the old filter let through as
	// well as the new one, whereas the old classifier would take frames to a
	// new address, which the new filter passes, for transit.
	l.cls.Store(c)
	if err := l.setFilter(l.h, local); err != nil {
		return fmt.Errorf("capture on %s: %w", l.iface, err)
	}
	return nil
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orDuration(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// Interface returns the interface name.
func (l *Live) Interface() string { return l.iface }

// Link returns the link type frames arrive with.
func (l *Live) Link() LinkType { return l.link }

// Stats returns the frames read from the ring so far and the kernel's drop
// total (frames it could not put in the ring). Safe from any goroutine; the
// values are published at every batch flush, so they lag Run by at most
// about the poll timeout.
func (l *Live) Stats() (received, dropped uint64) {
	return l.received.Load(), l.dropped.Load()
}

// Close releases the socket of a capture whose Run was never called. Once Run
// has started it does nothing: Run closes the socket itself when it returns.
func (l *Live) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == liveOpen {
		l.h.Close()
	}
	if l.state != liveRunning {
		l.state = liveClosed
	}
	return nil
}

// Run reads frames until ctx is done, classifies them and sends events in
// batches to p.Full. A partial batch is flushed whenever the poll times out
// and at least every poll timeout under load, so low-rate traffic reaches the
// tally within about BlockTimeout+PollTimeout. Whenever the kernel's drop
// total has grown, a Drops event (wall-clock TS, Len = new drops) is sent.
//
// Run returns nil when ctx is done, after sending its last partial batch;
// that send blocks, so the consumer must keep draining p.Full until every
// source's Run has returned. It does not close p.Full. Run closes the socket
// before returning and may be called only once.
func (l *Live) Run(ctx context.Context, c *Classifier, p *Pipe) error {
	l.mu.Lock()
	if l.state != liveOpen {
		l.mu.Unlock()
		return fmt.Errorf("capture on %s: already run or closed", l.iface)
	}
	l.state = liveRunning
	h := l.h
	l.cls.CompareAndSwap(nil, c)
	l.mu.Unlock()
	defer func() {
		// Under mu, so that SetLocal never sets a filter on a closed handle.
		l.mu.Lock()
		h.Close()
		l.state = liveClosed
		l.mu.Unlock()
	}()

	var (
		link      = l.link
		useDir    = !l.loopback
		batch     = getBatch(p)
		received  uint64
		lastDrops uint64
		// Time-based flushes use packet timestamps, which are already
		// there, rather than a clock read per frame.
		flushEvery = l.pollTimeout.Nanoseconds()
		lastFlush  = time.Now().UnixNano()
	)
	// flush publishes counters, reports new kernel drops and sends the
	// batch if it holds anything.
	flush := func() {
		l.received.Store(received)
		if _, st, err := h.SocketStats(); err == nil {
			if d := uint64(st.Drops()); d > lastDrops {
				if len(batch) == BatchSize {
					p.Full <- batch
					batch = getBatch(p)
				}
				batch = append(batch, Event{TS: time.Now().UnixNano(), Len: uint32(min(d-lastDrops, 1<<32-1)), Kind: Drops})
				lastDrops = d
				l.dropped.Store(d)
			}
		}
		if len(batch) > 0 {
			p.Full <- batch
			batch = getBatch(p)
		}
	}
	for {
		data, ci, err := h.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, afpacket.ErrTimeout) {
				flush()
				lastFlush = time.Now().UnixNano()
				if ctx.Err() != nil {
					p.Put(batch)
					return nil
				}
				continue
			}
			flush()
			p.Put(batch)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("capture on %s: %w", l.iface, err)
		}
		received++
		i := len(batch)
		batch = batch[:i+1]
		ev := &batch[i]
		ev.TS = ci.Timestamp.UnixNano()
		// ci.Length is the whole packet as the kernel had it (tp_len):
		// GRO/TSO super-frames included, so their IP length fits.
		dir := DirUnknown
		if useDir {
			dir = ringDir(data, ci.InterfaceIndex)
		}
		// Loaded per frame (one plain load): a frame read after SetLocal
		// returns is counted by the new addresses, not the ones of the
		// last flush, which may be a whole poll timeout old.
		l.cls.Load().Classify(link, data, ci.Length, dir, ev)
		if len(batch) == BatchSize {
			p.Full <- batch
			batch = getBatch(p)
		}
		// A clock stepped backwards (d < 0) also flushes, so the next
		// interval is measured from the new time.
		if d := ev.TS - lastFlush; d >= flushEvery || d < 0 {
			flush()
			lastFlush = ev.TS
			if ctx.Err() != nil {
				p.Put(batch)
				return nil
			}
		}
	}
}

// interfaceExists tells a missing interface apart from a failure to list
// interfaces.
func interfaceExists(name string) (bool, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return false, err
	}
	for _, i := range ifs {
		if i.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// ARPHRD_* device types, from linux/if_arp.h.
const (
	arphrdEther    = 1
	arphrdPPP      = 512
	arphrdRawIP    = 519
	arphrdTunnel   = 768 // ipip
	arphrdTunnel6  = 769 // ip6ip6
	arphrdLoopback = 772
	arphrdSit      = 776 // IPv6-in-IPv4
	arphrdNone     = 65534
)

// interfaceType reads the interface's ARPHRD type, which linkForARPHRD maps
// to the link type a packet socket delivers. The type comes from SIOCGIFHWADDR rather than
// /sys/class/net/IF/type because sysfs shows the namespace it was mounted in,
// not the calling thread's, and OpenLive must work on a thread switched into
// another network namespace.
func interfaceType(name string) (uint16, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("interface type: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface type: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, fmt.Errorf("interface type: %w", err)
	}
	return ifr.Uint16(), nil
}

func linkForARPHRD(t uint16) (LinkType, error) {
	switch t {
	case arphrdEther, arphrdLoopback:
		return LinkEthernet, nil
	case arphrdNone, arphrdPPP, arphrdRawIP, arphrdTunnel, arphrdTunnel6, arphrdSit:
		// No link header reaches a packet socket on these: tun,
		// WireGuard, PPP and IP tunnels hand over the bare IP packet.
		return LinkRaw, nil
	}
	return 0, fmt.Errorf("unsupported device type %d (ARPHRD; want Ethernet, loopback or raw IP)", t)
}

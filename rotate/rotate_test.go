package rotate

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/window"
)

const L = 20 * time.Second

// base is a window boundary: 2026-11-22T13:20:00Z.
var base = time.Date(2026, 11, 22, 13, 20, 0, 0, time.UTC)

func ev(at time.Duration, kind capture.Kind, remote string, n uint32) capture.Event {
	e := capture.Event{TS: base.Add(at).UnixNano(), Kind: kind, Len: n}
	if remote != "" {
		e.Remote = netip.MustParseAddr(remote).As16()
	}
	return e
}

type recorder struct{ got []*Closed }

func (r *recorder) emit(c *Closed) { r.got = append(r.got, c) }

func newTally(t *testing.T, live bool) (*Tally, *recorder) {
	t.Helper()
	cfg := Config{Length: L, Live: live, Grace: 500 * time.Millisecond}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	return New(cfg, r.emit), r
}

func counts(w *window.Window) map[string]window.Counts {
	m := map[string]window.Counts{}
	for _, r := range w.Remotes {
		m[r.Addr.String()] = r.Counts
	}
	return m
}

func TestBoundaryAndReasons(t *testing.T) {
	tl, rec := newTally(t, false)
	tl.add([]capture.Event{
		ev(0, capture.Egress, "203.0.113.5", 100),
		ev(L-time.Nanosecond, capture.Ingress, "203.0.113.5", 60),
		ev(L-time.Nanosecond, capture.SkipTransit, "", 0),
		ev(L, capture.Egress, "2001:db8::5", 1500), // first instant of the next window
		ev(L+time.Second, capture.SkipNonIP, "", 0),
		ev(L+time.Second, capture.SkipMalformed, "", 0),
		ev(L+time.Second, capture.SkipExcluded, "", 0),
		ev(L+time.Second, capture.SkipLocal, "", 0),
		ev(3*L+time.Second, capture.Ingress, "198.51.100.9", 40), // skips a quiet window
	}, clock{})
	tl.flush()
	if len(rec.got) != 3 {
		t.Fatalf("closed %d windows, want 3 (no filler for the quiet one)", len(rec.got))
	}
	w0, w1, w2 := rec.got[0].Finish(0), rec.got[1].Finish(0), rec.got[2].Finish(0)
	if !w0.Start.Equal(base) || !w1.Start.Equal(base.Add(L)) || !w2.Start.Equal(base.Add(3*L)) {
		t.Fatalf("starts %v %v %v", w0.Start, w1.Start, w2.Start)
	}
	if got, want := counts(w0)["203.0.113.5"], (window.Counts{TxPackets: 1, TxBytes: 100, RxPackets: 1, RxBytes: 60}); got != want {
		t.Errorf("w0 203.0.113.5 = %+v, want %+v", got, want)
	}
	if got, want := w0.Stats, (window.Stats{Frames: 3, Tallied: 2, Transit: 1}); got != want {
		t.Errorf("w0 stats = %+v, want %+v", got, want)
	}
	if got, want := counts(w1)["2001:db8::5"], (window.Counts{TxPackets: 1, TxBytes: 1500}); got != want {
		t.Errorf("w1 2001:db8::5 = %+v, want %+v", got, want)
	}
	if got, want := w1.Stats, (window.Stats{Frames: 5, Tallied: 1, NonIP: 1, Malformed: 1, Excluded: 1, Local: 1}); got != want {
		t.Errorf("w1 stats = %+v, want %+v", got, want)
	}
	if got, want := counts(w2)["198.51.100.9"], (window.Counts{RxPackets: 1, RxBytes: 40}); got != want {
		t.Errorf("w2 = %+v, want %+v", got, want)
	}
}

func TestLateFrameCountsInOpenWindow(t *testing.T) {
	tl, rec := newTally(t, false)
	tl.add([]capture.Event{
		ev(time.Second, capture.Egress, "203.0.113.5", 100),
		ev(L+time.Second, capture.Egress, "203.0.113.5", 100),
		ev(2*time.Second, capture.Egress, "203.0.113.6", 70), // window 0 is closed already
		{Kind: capture.Drops, Len: 7, TS: base.Add(time.Hour).UnixNano()},
	}, clock{})
	tl.flush()
	if len(rec.got) != 2 {
		t.Fatalf("closed %d windows, want 2", len(rec.got))
	}
	w1 := rec.got[1].Finish(0)
	if got, want := counts(w1)["203.0.113.6"], (window.Counts{TxPackets: 1, TxBytes: 70}); got != want {
		t.Errorf("late remote = %+v, want %+v", got, want)
	}
	if w1.Stats.Late != 1 || w1.Stats.Frames != 2 || w1.Stats.Drops != 7 {
		t.Errorf("stats = %+v, want Late 1, Frames 2, Drops 7", w1.Stats)
	}
}

func TestFinishCapKeepsHeaviestAndFoldsTheRest(t *testing.T) {
	tl, rec := newTally(t, false)
	tl.add([]capture.Event{
		ev(0, capture.Egress, "203.0.113.1", 10),
		ev(0, capture.Egress, "203.0.113.2", 500),
		ev(0, capture.Ingress, "203.0.113.3", 300),
		ev(0, capture.Egress, "203.0.113.4", 300), // ties with .3: lower address first
		ev(0, capture.Ingress, "203.0.113.1", 5),
	}, clock{})
	tl.flush()
	w := rec.got[0].Finish(3)
	var order []string
	for _, r := range w.Remotes {
		order = append(order, r.Addr.String())
	}
	if want := "[203.0.113.2 203.0.113.3 203.0.113.4]"; fmtSlice(order) != want {
		t.Errorf("kept %v, want %v", order, want)
	}
	if want := (window.Counts{TxPackets: 1, TxBytes: 10, RxPackets: 1, RxBytes: 5}); w.Other != want {
		t.Errorf("other = %+v, want %+v", w.Other, want)
	}
	if w.Stats.Folded != 1 {
		t.Errorf("folded = %d, want 1", w.Stats.Folded)
	}
	var total window.Counts
	for _, r := range w.Remotes {
		total.Add(r.Counts)
	}
	total.Add(w.Other)
	if total.Bytes() != 1115 || total.Packets() != 5 {
		t.Errorf("totals %d bytes %d packets, want 1115 and 5", total.Bytes(), total.Packets())
	}
}

func fmtSlice(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

func TestLiveClosesQuietWindowsOnTime(t *testing.T) {
	tl, rec := newTally(t, true)
	at := func(wall, mono time.Duration) clock { return clock{wall: base.Add(wall).UnixNano(), mono: mono} }
	tl.tick(at(5*time.Second, 0))
	tl.tick(at(L, 15*time.Second)) // at the end but within grace
	if len(rec.got) != 0 {
		t.Fatalf("closed before the grace passed")
	}
	tl.tick(at(L+600*time.Millisecond, 15600*time.Millisecond))
	if len(rec.got) != 1 || !rec.got[0].Start.Equal(base) || rec.got[0].Stats.Frames != 0 {
		t.Fatalf("want one empty window at %v, got %d", base, len(rec.got))
	}
	tl.tick(at(2*L+600*time.Millisecond, 35600*time.Millisecond))
	if len(rec.got) != 2 || !rec.got[1].Start.Equal(base.Add(L)) {
		t.Fatalf("second quiet window not closed in line: %d", len(rec.got))
	}
}

func TestLiveClockSteps(t *testing.T) {
	tl, rec := newTally(t, true)
	at := func(wall, mono time.Duration) clock { return clock{wall: base.Add(wall).UnixNano(), mono: mono} }
	tl.tick(at(time.Second, 0))
	tl.add([]capture.Event{ev(2*time.Second, capture.Egress, "203.0.113.5", 100)}, at(2*time.Second, time.Second))

	// The wall clock leaps a day ahead: one window is closed, the new one is
	// the one holding the new time, and no window in between is made.
	day := 24 * time.Hour
	tl.tick(at(day, 20*time.Second))
	tl.tick(at(day+L+time.Second, 40*time.Second))
	if len(rec.got) != 2 {
		t.Fatalf("after a forward step closed %d windows, want 2", len(rec.got))
	}
	if want := base.Add(day - L); !rec.got[1].Start.Equal(want) {
		t.Fatalf("window after the step starts %v, want %v", rec.got[1].Start, want)
	}

	// The wall clock steps back an hour. The open window still closes on the
	// monotonic clock, and the next one follows it instead of reopening the
	// past; frames stamped in the past are counted there and flagged late.
	openStart := base.Add(day + L)
	tl.add([]capture.Event{ev(day-time.Hour, capture.Egress, "203.0.113.7", 50)}, at(day-time.Hour, 45*time.Second))
	tl.tick(at(day-time.Hour+30*time.Second, 70*time.Second))
	if len(rec.got) != 3 {
		t.Fatalf("window did not close on the monotonic clock after a backward step")
	}
	w := rec.got[2].Finish(0)
	if !w.Start.Equal(openStart) || w.Stats.Late != 1 || counts(w)["203.0.113.7"].TxBytes != 50 {
		t.Fatalf("got start %v late %d, want %v with one late frame", w.Start, w.Stats.Late, openStart)
	}
	tl.tick(at(day-time.Hour+time.Minute, 200*time.Second))
	if next := rec.got[3].Start; !next.Equal(openStart.Add(L)) {
		t.Fatalf("next window %v, want %v (never before one already closed)", next, openStart.Add(L))
	}
}

func TestWindowStartBeforeEpoch(t *testing.T) {
	tl, _ := newTally(t, false)
	if got := tl.windowStart(-1); got != -int64(L) {
		t.Fatalf("windowStart(-1ns) = %d, want %d", got, -int64(L))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Length: 0}, {Length: 1500 * time.Millisecond}, {Length: L, Grace: L}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestRunDrainsAndFlushes(t *testing.T) {
	p := capture.NewPipe(4)
	var got []*Closed
	tl := New(Config{Length: L}, func(c *Closed) { got = append(got, c) })
	done := make(chan struct{})
	go func() { tl.Run(p); close(done) }()
	b := p.Get()
	b = append(b, ev(0, capture.Egress, "203.0.113.5", 100), ev(L, capture.Egress, "203.0.113.5", 100))
	p.Full <- b
	close(p.Full)
	<-done
	if len(got) != 2 || got[1].Remotes() != 1 {
		t.Fatalf("got %d windows, want 2 with the partial one flushed", len(got))
	}
}

func BenchmarkAdd(b *testing.B) {
	tl := New(Config{Length: time.Hour}, func(*Closed) {})
	evs := make([]capture.Event, capture.BatchSize)
	for i := range evs {
		evs[i] = capture.Event{TS: base.UnixNano(), Kind: capture.Egress, Len: 100}
		evs[i].Remote = netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 200)}).As16()
	}
	tl.add(evs, clock{})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tl.add(evs, clock{})
	}
	b.SetBytes(int64(len(evs))) // "bytes" here are events: MB/s reads as M events/s
}

func TestSelectHeaviestMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 10, 100, 5000} {
		for _, k := range []int{1, n / 3, n - 1, n} {
			if k < 1 {
				continue
			}
			rows := make([]row, n)
			for i := range rows {
				rows[i].addr[15] = byte(i)
				rows[i].addr[14] = byte(i >> 8)
				rows[i].TxBytes = uint64(rng.IntN(50)) // many ties: the address decides
			}
			sorted := slices.Clone(rows)
			slices.SortFunc(sorted, heavier)
			selectHeaviest(rows, k)
			top := slices.Clone(rows[:k])
			slices.SortFunc(top, heavier)
			if !slices.Equal(top, sorted[:k]) {
				t.Fatalf("n=%d k=%d: selected set differs from the sorted top k", n, k)
			}
		}
	}
}

func BenchmarkFinish(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([]row, 130000)
	for i := range rows {
		rows[i].addr = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
		rows[i].TxBytes = uint64(rng.IntN(1 << 20))
	}
	b.ReportAllocs()
	for range b.N {
		c := &Closed{rows: slices.Clone(rows)}
		c.Finish(10000)
	}
}

// BenchmarkAddMany tallies a window of 100k remotes (half IPv4, half IPv6)
// in random order, as a busy server's window looks: far more remotes than
// the CPU caches hold, so the cost is the cache misses per packet. ns/op is
// per event.
func BenchmarkAddMany(b *testing.B) {
	const remotes = 100_000
	rng := rand.New(rand.NewPCG(3, 4))
	addrs := make([][16]byte, remotes)
	for i := range addrs {
		if i%2 == 0 {
			addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
		} else {
			a := [16]byte{0x20, 0x01, 0x0d, 0xb8}
			a[4], a[5], a[6], a[7] = byte(rng.Uint32()), byte(i>>16), byte(i>>8), byte(i)
			a[15] = 1
			addrs[i] = a
		}
	}
	evs := make([]capture.Event, 1<<20)
	for i := range evs {
		evs[i] = capture.Event{TS: base.UnixNano(), Kind: capture.Kind(i & 1), Len: 100, Remote: addrs[rng.IntN(remotes)]}
	}
	benchAddEvents(b, evs)
}

// benchAddEvents tallies evs (a multiple of the batch size) once to size
// the tables, then in batches, b.N events in all.
func benchAddEvents(b *testing.B, evs []capture.Event) {
	tl := New(Config{Length: time.Hour}, func(*Closed) {})
	for i := 0; i < len(evs); i += capture.BatchSize {
		tl.add(evs[i:i+capture.BatchSize], clock{})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += capture.BatchSize {
		j := i % len(evs)
		tl.add(evs[j:j+capture.BatchSize], clock{})
	}
}

// BenchmarkAddManyServices is BenchmarkAddMany with every remote using
// one of five services at random, packet by packet (browsers and scanners:
// the scan mix), so that nearly every packet is also tallied in the
// (service, remote) pair table. ns/op is per event.
func BenchmarkAddManyServices(b *testing.B) {
	const remotes = 100_000
	rng := rand.New(rand.NewPCG(5, 6))
	ports := []uint16{80, 443, 22, 25, 853}
	evs := make([]capture.Event, 1<<20)
	for i := range evs {
		r := rng.IntN(remotes)
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8}
		a[4], a[5], a[6], a[7] = byte(r*7919), byte(r>>16), byte(r>>8), byte(r)
		a[15] = 1
		evs[i] = capture.Event{TS: base.UnixNano(), Kind: capture.Kind(i & 1), Len: 100, Remote: a,
			Port: ports[rng.IntN(len(ports))], Svc: uint8(window.ProtoTCP) | uint8(window.SideOut)<<2}
	}
	benchAddEvents(b, evs)
}

// Past the pair cap, remotes that switch services hand their first
// service's counts to the service's shared fold row: added, never
// overwritten, so the services still add up to every packet.
func TestServicesPastThePairCapStayExact(t *testing.T) {
	rec := &recorder{}
	tl := New(Config{Length: L, MaxOpenRemotes: 4}, rec.emit)
	var evs []capture.Event
	svc := uint8(window.ProtoTCP) | uint8(window.SideOut)<<2
	for i := range 10 {
		addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}).As16()
		for _, port := range []uint16{443, 80} {
			for range 3 {
				evs = append(evs, capture.Event{TS: base.UnixNano(), Remote: addr, Len: 100, Kind: capture.Egress, Port: port, Svc: svc})
			}
		}
	}
	tl.add(evs, clock{})
	tl.flush()
	w := rec.got[0].Finish(0)
	per := map[uint16]uint64{}
	var sum window.Counts
	for _, s := range w.Services {
		sum.Add(s.Counts)
		per[s.Key.Port()] += s.TxPackets
	}
	if sum != (window.Counts{TxPackets: 60, TxBytes: 6000}) || per[443] != 30 || per[80] != 30 {
		t.Fatalf("services add up to %+v (443: %d, 80: %d); want 60 packets, 6000 bytes, 30 each", sum, per[443], per[80])
	}
}

// A service's top remotes carry their own address and counts, whatever
// order the window's rows are sorted and capped in: the pair table names
// remotes by row position, which Finish reorders.
func TestServiceTopsNameTheirRemotes(t *testing.T) {
	rec := &recorder{}
	tl := New(Config{Length: L}, rec.emit)
	var evs []capture.Event
	svc := uint8(window.ProtoTCP) | uint8(window.SideOut)<<2
	// Remote i sends i+1 packets of 100 bytes to :80 and one to :443:
	// they arrive lightest first, so sorting reverses them.
	for i := range 20 {
		addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}).As16()
		for range i + 1 {
			evs = append(evs, capture.Event{TS: base.UnixNano(), Remote: addr, Len: 100, Kind: capture.Egress, Port: 80, Svc: svc})
		}
		evs = append(evs, capture.Event{TS: base.UnixNano(), Remote: addr, Len: 40, Kind: capture.Egress, Port: 443, Svc: svc})
	}
	tl.add(evs, clock{})
	tl.flush()
	w := rec.got[0].Finish(5)
	if len(w.Remotes) != 5 || w.Remotes[0].Addr != netip.MustParseAddr("203.0.113.20") {
		t.Fatalf("remotes %v, want the 5 heaviest, 203.0.113.20 first", w.Remotes)
	}
	for _, s := range w.Services {
		if len(s.Top) != 20 {
			t.Fatalf("service %v: %d top remotes, want all 20", s.Key, len(s.Top))
		}
		for _, r := range s.Top {
			n := uint64(r.Addr.As4()[3]) // remote i+1 is 203.0.113.(i+1)
			want := window.Counts{TxPackets: n, TxBytes: 100 * n}
			if s.Key.Port() == 443 {
				want = window.Counts{TxPackets: 1, TxBytes: 40}
			}
			if r.Counts != want {
				t.Errorf("service %v: remote %v has %+v, want %+v", s.Key, r.Addr, r.Counts, want)
			}
		}
	}
}

// Impossible timestamps (before 1970, days ahead of the clock) cut no
// window; they are counted as malformed in the window that is open.
func TestImpossibleTimestampsCutNoWindow(t *testing.T) {
	tl, rec := newTally(t, false)
	tl.add([]capture.Event{
		{TS: -5, Kind: capture.Egress, Len: 100},
		ev(0, capture.Egress, "203.0.113.5", 100),
		{TS: time.Now().Add(MaxFuture + time.Hour).UnixNano(), Kind: capture.Ingress, Len: 100},
		ev(time.Second, capture.Ingress, "203.0.113.5", 60),
		{TS: 1 << 62, Kind: capture.Egress, Len: 100},
	}, clock{})
	tl.flush()
	if len(rec.got) != 1 || !rec.got[0].Start.Equal(base) {
		t.Fatalf("%d windows (first at %v), want the one at %v", len(rec.got), rec.got[0].Start, base)
	}
	w := rec.got[0].Finish(0)
	if w.Stats.Frames != 5 || w.Stats.Malformed != 3 || w.Stats.Tallied != 2 || w.Stats.Late != 0 {
		t.Fatalf("stats %+v, want 5 frames: 2 tallied, 3 malformed", w.Stats)
	}
}

// A frame stamped far ahead inside a replay (a clock stepped and stepped
// back, a damaged record) is judged by the frames after it: when they go on
// in the old timeline it is a bad stamp, counted as malformed and not
// tallied, and it cuts no window; when enough of them confirm the jump, or
// the file ends, it was a real quiet gap and every window is as it would be
// without the check.
func TestReplayStampsJudgedByTheirTimeline(t *testing.T) {
	type want struct {
		start           time.Duration
		frames, tallied uint64
		malformed, late uint64
		tx              uint64 // bytes to 203.0.113.5
	}
	e := func(at time.Duration, n uint32) capture.Event { return ev(at, capture.Egress, "203.0.113.5", n) }
	for _, tc := range []struct {
		name string
		evs  []capture.Event
		want []want
	}{
		{"one frame an hour ahead", []capture.Event{
			e(time.Second, 100), e(2*time.Second, 100), e(time.Hour, 9000),
			e(3*time.Second, 100), e(L+time.Second, 100),
		}, []want{{0, 4, 3, 1, 0, 300}, {L, 1, 1, 0, 0, 100}}},
		{"three frames ahead, then the old timeline", []capture.Event{
			e(time.Second, 100), e(time.Hour, 9000), e(time.Hour+time.Second, 9000), e(2*time.Hour, 9000),
			e(time.Second, 100),
		}, []want{{0, 5, 2, 3, 0, 200}}},
		{"a late frame after the outlier still counts", []capture.Event{
			e(L+time.Second, 100), e(time.Hour, 9000), e(time.Second, 50),
		}, []want{{L, 3, 2, 1, 1, 150}}},
		{"a real gap confirmed by the frames after it", append([]capture.Event{e(time.Second, 100)},
			func() (evs []capture.Event) {
				for i := range suspectMax + 2 {
					evs = append(evs, e(time.Hour+time.Duration(i)*time.Second, 10))
				}
				return evs
			}()...), []want{{0, 1, 1, 0, 0, 100}, {time.Hour, suspectMax + 2, suspectMax + 2, 0, 0, 10 * (suspectMax + 2)}}},
		{"a real gap at the end of the file", []capture.Event{
			e(time.Second, 100), e(time.Hour, 10), e(time.Hour+L, 20),
		}, []want{{0, 1, 1, 0, 0, 100}, {time.Hour, 1, 1, 0, 0, 10}, {time.Hour + L, 1, 1, 0, 0, 20}}},
		{"the next window is not a jump", []capture.Event{
			e(time.Second, 100), e(L+time.Second, 10), e(2*time.Second, 20),
		}, []want{{0, 1, 1, 0, 0, 100}, {L, 2, 2, 0, 1, 30}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl, rec := newTally(t, false)
			// Split over batches: held frames must survive the batch they came in.
			for i := range tc.evs {
				tl.add(tc.evs[i:i+1], clock{})
			}
			tl.flush()
			if len(rec.got) != len(tc.want) {
				t.Fatalf("%d windows, want %d", len(rec.got), len(tc.want))
			}
			for i, w := range tc.want {
				got := rec.got[i].Finish(0)
				s := got.Stats
				if !got.Start.Equal(base.Add(w.start)) || s.Frames != w.frames || s.Tallied != w.tallied ||
					s.Malformed != w.malformed || s.Late != w.late || counts(got)["203.0.113.5"].TxBytes != w.tx {
					t.Errorf("window %d: start %v stats %+v tx %d, want %+v", i, got.Start.Sub(base), s, counts(got)["203.0.113.5"].TxBytes, w)
				}
			}
		})
	}
}

// Live capture keeps its wall-clock rules: a jump ahead cuts the window at
// once.
func TestLiveDoesNotHoldStamps(t *testing.T) {
	tl, rec := newTally(t, true)
	c := clock{wall: base.UnixNano(), mono: time.Hour}
	tl.add([]capture.Event{ev(time.Second, capture.Egress, "203.0.113.5", 1), ev(time.Hour, capture.Egress, "203.0.113.5", 2)}, c)
	if len(rec.got) != 1 || tl.nSuspect != 0 {
		t.Fatalf("%d windows closed, %d held; want the first closed by the jump, none held", len(rec.got), tl.nSuspect)
	}
}

// Past the open window's bound, remotes have no rows and their traffic
// goes to their services' fold rows; past maxFoldRows services, to 0/other.
// The tables never grow past their bounds and every total stays exact.
func TestOpenBoundFoldsRemotesAndServices(t *testing.T) {
	rec := &recorder{}
	tl := New(Config{Length: L, MaxOpenRemotes: 3}, rec.emit)
	const n = maxFoldRows + 5000
	var evs []capture.Event
	for i := range n {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8), 13: byte(i >> 16)}).As16()
		proto := window.ProtoTCP
		if i%2 == 1 {
			proto = window.ProtoUDP
		}
		evs = append(evs, capture.Event{TS: base.UnixNano(), Remote: a, Len: 100, Kind: capture.Ingress,
			Port: uint16(i / 2), Svc: uint8(proto) | uint8(window.SideOut)<<2})
	}
	for i := 0; i < len(evs); i += capture.BatchSize {
		tl.add(evs[i:min(i+capture.BatchSize, len(evs))], clock{})
	}
	if r, p := len(tl.tab.rows), len(tl.pairs.rows); r != 3 || p > tl.pairs.bound() || cap(tl.pairs.rows) > tl.pairs.bound() {
		t.Fatalf("open window holds %d rows and %d pairs (room for %d), want 3 and at most %d", r, p, cap(tl.pairs.rows), tl.pairs.bound())
	}
	tl.flush()
	w := rec.got[0].Finish(0)
	var sum window.Counts
	for _, s := range w.Services {
		sum.Add(s.Counts)
	}
	all := w.Other
	for _, r := range w.Remotes {
		all.Add(r.Counts)
	}
	want := window.Counts{RxPackets: n, RxBytes: 100 * n}
	if sum != want || all != want || w.Stats.Overflow != n-3 || len(w.Remotes) != 3 {
		t.Fatalf("services %+v, remotes+other %+v, overflow %d, %d remotes; want %+v, %d, 3", sum, all, w.Stats.Overflow, len(w.Remotes), want, n-3)
	}
	if max := 3 + 3 + maxFoldRows + 1; len(w.Services) > max { // the rows' own, the fold rows, 0/other
		t.Fatalf("%d services, want at most %d", len(w.Services), max)
	}
	last := w.Services[0]
	if last.Key != 0 || last.RxPackets != n-3-3-maxFoldRows { // past 3 rows, 3 fold rows under the bound and maxFoldRows past it
		t.Fatalf("heaviest service %v with %d packets, want 0/other with the services past the fold rows", last.Key, last.RxPackets)
	}
}

// A live tally marks the windows it did not watch whole: the first (it
// started inside it), any during which a capture source was down, and the
// last when it stops inside it. A replay marks none.
func TestLivePartialWindows(t *testing.T) {
	tl, rec := newTally(t, true)
	at := func(wall, mono time.Duration) clock { return clock{wall: base.Add(wall).UnixNano(), mono: mono} }
	tl.tick(at(5*time.Second, 0))                                 // starts 5 s into the first window
	tl.tick(at(L+600*time.Millisecond, 15600*time.Millisecond))   // closes it
	tl.tick(at(2*L+600*time.Millisecond, 35600*time.Millisecond)) // a whole one
	tl.CaptureDown(true)                                          // down and back inside the third
	tl.CaptureDown(false)
	tl.tick(at(3*L+600*time.Millisecond, 55600*time.Millisecond))
	tl.CaptureDown(true) // down across the fourth
	tl.tick(at(4*L+600*time.Millisecond, 75600*time.Millisecond))
	tl.CaptureDown(false)
	tl.tick(at(5*L+600*time.Millisecond, 95600*time.Millisecond)) // the fifth opened while a source was down
	tl.tick(at(6*L+600*time.Millisecond, 115600*time.Millisecond))
	tl.flushAt(base.Add(6*L + 3*time.Second).UnixNano()) // stops 3 s into the seventh
	want := []window.Partial{window.PartialStart, 0, window.PartialOutage, window.PartialOutage, window.PartialOutage, 0, window.PartialStop}
	if len(rec.got) != len(want) {
		t.Fatalf("%d windows, want %d", len(rec.got), len(want))
	}
	for i, c := range rec.got {
		if c.Stats.Partial != want[i] {
			t.Errorf("window %d: partial %q, want %q", i, c.Stats.Partial, want[i])
		}
	}
	// Adding windows joins their reasons.
	s := window.Stats{Partial: window.PartialStart}
	s.Add(window.Stats{Partial: window.PartialStop})
	if s.Partial.String() != "start,stop" {
		t.Errorf("joined: %q", s.Partial)
	}
	if p, err := window.ParsePartial(s.Partial.Names()); err != nil || p != s.Partial {
		t.Errorf("ParsePartial: %v %v", p, err)
	}

	tl, rec = newTally(t, false)
	tl.add([]capture.Event{ev(5*time.Second, capture.Ingress, "192.0.2.1", 100)}, clock{})
	tl.flushAt(base.Add(6 * time.Second).UnixNano())
	if len(rec.got) != 1 || rec.got[0].Stats.Partial != 0 {
		t.Errorf("a replay marked its window partial: %+v", rec.got[0].Stats)
	}
}

// BenchmarkFinishFlood closes a window of a spoofed flood of random ports:
// 160k single-packet remotes, nearly each its own service (a replay makes
// a local port below the ephemeral range a service). ns/op is per window.
func BenchmarkFinishFlood(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	rows := make([]row, 160000)
	for i := range rows {
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff}
		binary.BigEndian.PutUint64(a[8:], uint64(i+1)*0x9e3779b97f4a7c15)
		rows[i].addr = a
		rows[i].RxPackets, rows[i].RxBytes = 1, uint64(40+rng.IntN(20))
		rows[i].svc = uint32(window.MakeServiceKey(window.ProtoTCP, window.Side(1+rng.IntN(2)), uint16(1+rng.IntN(65535))))
	}
	b.ReportAllocs()
	for range b.N {
		c := &Closed{rows: slices.Clone(rows)}
		c.Finish(10000)
	}
}

func TestRadixSortMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, radixMin, 150_000} {
		for _, mask := range []uint64{^uint64(0), 0xffffffff000fffff, 0xff, 0} {
			s := make([]uint64, n)
			for i := range s {
				s[i] = rng.Uint64() & mask
			}
			want := slices.Clone(s)
			slices.Sort(want)
			radixSort(s, make([]uint64, n))
			if !slices.Equal(s, want) {
				t.Fatalf("n=%d mask=%x: radix order differs from slices.Sort", n, mask)
			}
		}
	}
}

// A window's rows and pairs start in a small array and move into the
// arrays of the window the writer finished (Finish hands them back), so
// that two full windows' arrays are not held at the switch; counts are the
// same either way.
func TestNextWindowAdoptsFinishedArrays(t *testing.T) {
	rec := &recorder{}
	tl := New(Config{Length: L}, rec.emit)
	svc := uint8(window.ProtoTCP) | uint8(window.SideOut)<<2
	fill := func(w int) []capture.Event {
		var evs []capture.Event
		for i := range 20000 {
			a := netip.AddrFrom4([4]byte{203, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
			for _, port := range []uint16{80, 443} { // two services: pairs too
				evs = append(evs, capture.Event{TS: base.Add(time.Duration(w) * L).UnixNano(), Remote: a, Len: 100, Kind: capture.Egress, Port: port, Svc: svc})
			}
		}
		return evs
	}
	tl.add(fill(0), clock{})
	tl.add(fill(1)[:1], clock{}) // closes window 0, opens window 1
	first := rec.got[0]
	rows, pairs := &first.rows[0], &first.pairs[0]
	if c := cap(tl.tab.rows); c >= 20000 {
		t.Fatalf("window 1 starts with room for %d rows, want a part of the last window's 20000", c)
	}
	w0 := first.Finish(0) // hands its arrays back
	tl.add(fill(1)[1:], clock{})
	if &tl.tab.rows[0] != rows || &tl.pairs.rows[0] != pairs {
		t.Fatal("window 1 did not move into window 0's finished arrays")
	}
	tl.flush()
	w1 := rec.got[1].Finish(0)
	if len(w0.Remotes) != 20000 || len(w1.Remotes) != 20000 || w1.Remotes[0].TxPackets != 2 || len(w1.Services) != 2 || w1.Services[0].TxPackets != 20000 {
		t.Fatalf("window 1: %d remotes, %d services; want 20000 remotes of 2 packets on 2 services of 20000", len(w1.Remotes), len(w1.Services))
	}
}

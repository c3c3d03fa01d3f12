package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

var t0 = time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)

// fakeSource serves windows from a slice; fields inject failures.
type fakeSource struct {
	ws        []*window.Window
	windowErr error
	status    Status
}

func (f *fakeSource) Windows(ctx context.Context, r query.Range, fn func(*window.Window) error) error {
	if f.windowErr != nil {
		return f.windowErr
	}
	ws := f.ws
	if r.Last > 0 {
		ws = ws[max(0, len(ws)-r.Last):]
	}
	for _, w := range ws {
		if r.Last == 0 && (w.Start.Before(r.From) || !w.Start.Before(r.To)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(w); err != nil {
			return err
		}
	}
	return nil
}

// Aggregate and Services add the windows up one by one: the slice has no
// rollups.
func (f *fakeSource) Aggregate(ctx context.Context, r query.Range, q query.Question) ([]query.Row, query.Summary, error) {
	a, err := query.NewAggregatorFor(q)
	if err != nil {
		return nil, query.Summary{}, err
	}
	if err := f.Windows(ctx, r, func(w *window.Window) error { a.Add(q.Filter.Apply(w)); return nil }); err != nil {
		return nil, query.Summary{}, err
	}
	return query.Top(a.Rows(q.Sort), q.Top), a.Summary(), nil
}

func (f *fakeSource) Services(ctx context.Context, r query.Range, q query.ServiceQuestion) ([]query.ServiceRow, query.Summary, error) {
	a := query.NewServiceAggregator(q.Filter)
	if err := f.Windows(ctx, r, func(w *window.Window) error { a.Add(w); return nil }); err != nil {
		return nil, query.Summary{}, err
	}
	return query.TopServices(a.Rows(q.Sort), q.Top), a.Summary(), nil
}

func (f *fakeSource) Usage(context.Context) ([3]query.Tier, error) {
	var u [3]query.Tier
	if n := len(f.ws); n > 0 {
		u[window.Raw] = query.Tier{Units: n, First: f.ws[0].Start, Last: f.ws[n-1].Start}
	}
	return u, nil
}

func (f *fakeSource) Status() (Status, error) { return f.status, nil }

func sampleWindows() []*window.Window {
	var ws []*window.Window
	for i := range 5 {
		ws = append(ws, &window.Window{
			Start: t0.Add(time.Duration(i) * 20 * time.Second), Length: 20 * time.Second,
			Remotes: []window.Remote{
				{Addr: netip.MustParseAddr("2001:db8::1"), Country: "DE", ASN: 64500, ASOrg: "Example Org",
					Counts: window.Counts{TxPackets: uint64(i) + 1, TxBytes: 1 << 40, RxPackets: 3, RxBytes: 1<<53 + 1}},
				{Addr: netip.MustParseAddr("198.51.100.7"), Country: "NL",
					Counts: window.Counts{TxPackets: 2, TxBytes: 100, RxPackets: 0, RxBytes: 0}},
			},
			Other:    window.Counts{TxPackets: 1, TxBytes: 2, RxPackets: 3, RxBytes: 4},
			Stats:    window.Stats{Frames: 9, Tallied: 8, NonIP: 1, Drops: uint64(i), Folded: 1},
			GeoBuild: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
		})
	}
	return ws
}

// serve runs a Server on a fresh socket and returns a client for it.
func serve(t *testing.T, src Source, inc IncidentSource) (*Server, *Client) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	s := New(src, inc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file left behind: %v", err)
		}
	})
	return s, NewClient(path)
}

// Windows come back through the API exactly as stored: uint64 counts past
// 2^53 included.
func TestWindowsRoundTrip(t *testing.T) {
	src := &fakeSource{ws: sampleWindows()}
	_, c := serve(t, src, nil)
	for _, r := range []query.Range{{From: t0, To: t0.Add(time.Hour)}, {Last: 3}, {From: t0.Add(20 * time.Second), To: t0.Add(40 * time.Second)}} {
		var got []*window.Window
		if err := c.Windows(context.Background(), r, func(w *window.Window) error {
			got = append(got, w)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var want []*window.Window
		src.Windows(context.Background(), r, func(w *window.Window) error { want = append(want, w); return nil })
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%+v: got\n%+v\nwant\n%+v", r, got, want)
		}
	}
	// An empty range is an empty array, not an error.
	n := 0
	if err := c.Windows(context.Background(), query.Range{From: t0.Add(-time.Hour), To: t0}, func(*window.Window) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("empty range: %d windows, %v", n, err)
	}
}

func TestWindowsReadErrorIs500(t *testing.T) {
	_, c := serve(t, &fakeSource{windowErr: errors.New("disk on fire")}, nil)
	err := c.Windows(context.Background(), query.Range{Last: 1}, func(*window.Window) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("got %v", err)
	}
}

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Body.String()
}

func TestBadRequests(t *testing.T) {
	s := New(&fakeSource{ws: sampleWindows()}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h := s.Handler()
	many := strings.Repeat("remote=192.0.2.1&", maxFilterItems+1)
	for _, tc := range []struct{ target, want string }{
		{"/v1/windows", "give from and to"},
		{"/v1/windows?from=2026-10-25T00:00:00Z", "give from and to"},
		{"/v1/windows?from=yesterday&to=2026-10-25T00:00:00Z", `from "yesterday"`},
		{"/v1/windows?from=2026-10-25T01:00:00Z&to=2026-10-25T00:00:00Z", "to must be after from"},
		{"/v1/windows?from=1970-01-01T00:00:00Z&to=2026-10-25T00:00:00Z", "range longer than"},
		{"/v1/windows?last=0", "at least 1"},
		{"/v1/windows?last=-1", "last"},
		{"/v1/windows?last=99999999999", "last"},
		{"/v1/windows?last=1&from=2026-10-25T00:00:00Z", "either last"},
		{"/v1/windows?last=1&last=2", "given 2 times"},
		{"/v1/windows?last=1&colour=red", `unknown parameter "colour"`},
		{"/v1/windows?last=1&remote=nonsense", `remote "nonsense"`},
		{"/v1/windows?last=1&country=Netherlands", `country "Netherlands"`},
		{"/v1/windows?last=1&asn=ASX", `asn "ASX"`},
		{"/v1/windows?last=1&direction=up", "direction"},
		{"/v1/windows?last=1&" + many, "filter values"},
		{"/v1/windows?last=1&%zz", "query string"},
		{"/v1/aggregate?last=1&by=window", "use /v1/windows"},
		{"/v1/aggregate?last=1&by=planet", `by "planet"`},
		{"/v1/aggregate?last=1&sort=weight", `sort "weight"`},
		{"/v1/aggregate?last=1&top=x", "top"},
		{"/v1/status?x=1", "unknown parameter"},
	} {
		code, body := get(t, h, tc.target)
		var e errorJSON
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.target, code, body, tc.want)
		}
	}
	if code, body := get(t, h, "/v2/nothing"); code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown path: %d %s", code, body)
	}
}

func TestAggregateMatchesQueryPackage(t *testing.T) {
	ws := sampleWindows()
	s := New(&fakeSource{ws: ws}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	code, body := get(t, s.Handler(), "/v1/aggregate?from=2026-10-25T00:00:00Z&to=2026-10-25T01:00:00Z&by=country&direction=tx&top=1")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	rows, err := query.Aggregate(ws, query.ByCountry, query.Filter{Direction: query.Tx}, query.SortBytes)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.MarshalIndent(query.RowsJSON(query.Top(rows, 1), query.ByCountry), "", "  ")
	if strings.TrimSpace(body) != string(want) {
		t.Errorf("got\n%s\nwant\n%s", body, want)
	}
}

func TestStatus(t *testing.T) {
	want := Status{Version: "v9", Interfaces: []string{"eth0"}, Local: []string{"192.0.2.1"}, Kernel: KernelStats{Drops: 7},
		Writer: WriterStats{Backlog: 2, WindowsStored: 5}, GeoIP: []GeoFile{{Path: "/x.mmdb", Type: "T", Build: "2026-10-01T00:00:00Z"}},
		DB: DBStats{Path: "/db", SizeBytes: 32768, Windows: 5}}
	_, c := serve(t, &fakeSource{status: want}, nil)
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestClientNotRunning(t *testing.T) {
	dir := t.TempDir()
	// No file, and a socket file nobody listens on: both are "not running".
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	for _, p := range []string{filepath.Join(dir, "none.sock"), stale} {
		if _, err := NewClient(p).Status(context.Background()); !errors.Is(err, ErrNotRunning) {
			t.Errorf("%s: %v, want ErrNotRunning", p, err)
		}
	}
}

func TestStreamPublishes(t *testing.T) {
	s, c := serve(t, &fakeSource{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ws := sampleWindows()
	got := make(chan *window.Window, len(ws))
	done := make(chan error, 1)
	go func() {
		done <- c.Stream(ctx, func() error {
			for _, w := range ws {
				s.Publish(w)
			}
			return nil
		}, func(w *window.Window) error { got <- w; return nil })
	}()
	for i, want := range ws {
		select {
		case w := <-got:
			if !reflect.DeepEqual(w, want) {
				t.Errorf("window %d: got %+v, want %+v", i, w, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("window %d never arrived", i)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("stream: %v", err)
	}
}

// Shutdown ends open streams instead of waiting for them.
func TestShutdownEndsStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	s := New(&fakeSource{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go s.Serve(l)
	subscribed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- NewClient(path).Stream(context.Background(), func() error { close(subscribed); return nil },
			func(*window.Window) error { return nil })
	}()
	<-subscribed
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if err := <-done; err != nil {
		t.Errorf("stream after shutdown: %v", err)
	}
}

func mode(t *testing.T, path string) (os.FileMode, uint32) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode(), st.Sys().(*syscall.Stat_t).Gid
}

func TestListenPermissions(t *testing.T) {
	dir := t.TempDir()

	t.Run("default 0600", func(t *testing.T) {
		p := filepath.Join(dir, "a.sock")
		l, err := Listen(p, "")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if m, _ := mode(t, p); m&os.ModeSocket == 0 || m.Perm() != 0o600 {
			t.Errorf("mode %v, want socket 0600", m)
		}
	})

	t.Run("group 0660", func(t *testing.T) {
		g, err := user.LookupGroupId("1") // "daemon" on most systems; any group but ours does
		if err != nil {
			t.Skipf("no group 1: %v", err)
		}
		// Above the socket's directory, the group must be let through
		// (t.TempDir's are 0700); the directory itself, 0700 root:root
		// like one the daemon made, is the daemon's to open to the group.
		top := filepath.Dir(dir)
		if _, err := Listen(filepath.Join(dir, "g.sock"), g.Name); err == nil || !strings.Contains(err.Error(), "cannot pass "+top) {
			t.Errorf("socket below a directory the group cannot pass: %v", err)
		}
		os.Chmod(top, 0o755)
		sub := filepath.Join(dir, "state")
		os.Mkdir(sub, 0o700)
		os.Chmod(dir, 0o755)
		p := filepath.Join(sub, "g.sock")
		l, err := Listen(p, g.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		m, gid := mode(t, p)
		if m.Perm() != 0o660 || strconv.Itoa(int(gid)) != g.Gid {
			t.Errorf("mode %v gid %d, want 0660 and %s", m, gid, g.Gid)
		}
		if m, gid := mode(t, sub); m.Perm() != 0o710 || strconv.Itoa(int(gid)) != g.Gid {
			t.Errorf("socket directory mode %v gid %d, want 0710 and %s", m, gid, g.Gid)
		}
		// A directory with a group of its own is not the daemon's to change.
		other := filepath.Join(dir, "other")
		os.Mkdir(other, 0o750)
		os.Chown(other, 0, 2)
		if _, err := Listen(filepath.Join(other, "o.sock"), g.Name); err == nil || !strings.Contains(err.Error(), "chgrp "+g.Name+" "+other) {
			t.Errorf("socket in a directory of another group: %v", err)
		}
		if _, err := Listen(filepath.Join(dir, "x.sock"), "no-such-group-here"); err == nil || !strings.Contains(err.Error(), "no such group") {
			t.Errorf("unknown group: %v", err)
		}
	})

	t.Run("stale socket replaced", func(t *testing.T) {
		p := filepath.Join(dir, "stale.sock")
		old, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		old.(*net.UnixListener).SetUnlinkOnClose(false)
		old.Close() // a daemon that died: the file stays
		l, err := Listen(p, "")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := net.Dial("unix", p)
		if err != nil {
			t.Fatalf("new socket does not answer: %v", err)
		}
		c.Close()
	})

	t.Run("live socket refused", func(t *testing.T) {
		p := filepath.Join(dir, "live.sock")
		l, err := Listen(p, "")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := Listen(p, ""); err == nil || !strings.Contains(err.Error(), "another process is listening") {
			t.Errorf("second listen: %v", err)
		}
	})

	t.Run("non-socket refused and untouched", func(t *testing.T) {
		p := filepath.Join(dir, "precious")
		content := []byte("not a socket, keep me\n")
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(p, "")
		if err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("got %v", err)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, content) {
			t.Error("the file was changed")
		}
		d := filepath.Join(dir, "adir")
		os.Mkdir(d, 0o755)
		if _, err := Listen(d, ""); err == nil {
			t.Error("a directory was accepted")
		}
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			t.Error("the directory was removed")
		}
	})

	t.Run("closing removes the file", func(t *testing.T) {
		p := filepath.Join(dir, "gone.sock")
		l, err := Listen(p, "")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file after close: %v", err)
		}
	})

	t.Run("path too long", func(t *testing.T) {
		if _, err := Listen("/tmp/"+strings.Repeat("x", 120), ""); err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("got %v", err)
		}
	})
}

// Clients that ask for much and never read: beyond maxInFlight of them
// the daemon answers 503 with Retry-After at once, and each is cut off
// after writeTimeout without progress, after which others are served.
func TestStalledClientsAreBoundedAndCutOff(t *testing.T) {
	var ws []*window.Window
	for i := range 3000 {
		w := &window.Window{Start: t0.Add(time.Duration(i) * time.Minute), Length: time.Minute}
		for j := range 40 {
			w.Remotes = append(w.Remotes, window.Remote{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(j)}), Country: "NL",
				Counts: window.Counts{TxPackets: uint64(i), TxBytes: uint64(i * j)}})
		}
		ws = append(ws, w)
	}
	srv, c := serve(t, &fakeSource{ws: ws}, nil)
	var conns []net.Conn
	for range maxInFlight {
		conn, err := net.Dial("unix", c.Socket())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("GET /v1/windows?last=100000 HTTP/1.1\r\nHost: dstwatch\r\n\r\n"))
		conns = append(conns, conn)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	_, err := c.Status(context.Background())
	// The client asks once more after Retry-After's second, then gives up.
	if err == nil || !strings.Contains(err.Error(), "busy") || time.Since(start) > 2*time.Second {
		t.Fatalf("status with %d stalled requests: %v after %v, want busy within 2 s", maxInFlight, err, time.Since(start))
	}
	raw, err := net.Dial("unix", c.Socket())
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: dstwatch\r\n\r\n"))
	raw.SetReadDeadline(time.Now().Add(time.Second))
	head, _ := io.ReadAll(io.LimitReader(raw, 200))
	raw.Close()
	if !strings.HasPrefix(string(head), "HTTP/1.1 503") || !strings.Contains(string(head), "Retry-After: 1") {
		t.Errorf("over the limit: %q, want 503 with Retry-After", head)
	}
	if !waitUntil(writeTimeout+3*time.Second, func() bool { _, err := c.Status(context.Background()); return err == nil }) {
		t.Fatalf("status still refused %v after the stalled clients stopped reading", writeTimeout+3*time.Second)
	}
	// The stalled answers were cut short, not held open. Status answers as
	// soon as one of them was; wait for all, or reading conns[0] would let
	// an answer not cut yet flow again (seen on a loaded machine).
	if !waitUntil(writeTimeout+10*time.Second, func() bool { return len(srv.flight) == 0 }) {
		t.Fatalf("%d stalled requests still in flight", len(srv.flight))
	}
	conns[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conns[0])
	if err != nil || len(b) == 0 || strings.Contains(string(b), "\n]\n") {
		t.Errorf("a stalled client read %d bytes (%v), want a truncated answer ending in EOF", len(b), err)
	}
}

func waitUntil(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// The connection limits bound each write, not a stream's life: a stream
// idle for longer than writeTimeout and readTimeout still gets the next
// window.
func TestStreamOutlivesTheTimeouts(t *testing.T) {
	s, c := serve(t, &fakeSource{}, nil)
	got := make(chan time.Time, 1)
	subscribed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Stream(ctx, func() error { close(subscribed); return nil }, func(w *window.Window) error {
		got <- w.Start
		return nil
	})
	<-subscribed
	time.Sleep(max(writeTimeout, readTimeout) + time.Second)
	s.Publish(sampleWindows()[0])
	select {
	case st := <-got:
		if !st.Equal(t0) {
			t.Errorf("window %v, want %v", st, t0)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a stream idle past the timeouts got no window")
	}
}

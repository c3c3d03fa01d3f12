package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/anon"
	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/fleet"
	"github.com/dstwatch/dstwatch/geo"
	"github.com/dstwatch/dstwatch/internal/sdnotify"
	"github.com/dstwatch/dstwatch/metrics"
	"github.com/dstwatch/dstwatch/reclog"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/web"
)

// Config is everything the daemon needs to run; flags fill it in.
type Config struct {
	Interfaces []string       // live capture; empty with Read set
	RingBlocks int            // 1 MiB blocks per interface's ring: capture.MinNumBlocks to MaxNumBlocks
	Read       string         // capture file to replay instead
	Local      []netip.Addr   // nil: the capture interfaces' addresses
	Exclude    []netip.Prefix // remotes never tallied
	Window     time.Duration
	MaxRemotes int
	Retention  storage.Retention // per tier; 0 keeps a tier forever
	HourCap    int               // remotes with rows of their own per hourly rollup; 0: no cap
	DayCap     int               // per daily rollup; 0: no cap
	DBPath     string
	LogPath    string
	LogTop     int
	GeoIP      []string        // explicit files; an unreadable one is an error
	GeoAuto    bool            // look in the usual geoipupdate places when GeoIP is empty
	Anonymize  anon.Anonymizer // nil: store addresses as they are
	FileMode   os.FileMode
	Location   *time.Location // for the record log
	Logger     *slog.Logger

	// MaxOpenRemotes bounds the open window's remotes (rotate.Config);
	// 0: no bound.
	MaxOpenRemotes int

	Socket      string // the API's unix socket; "" serves no API
	SocketGroup string // group that may use the socket (mode 0660); "" keeps it 0600

	Metrics       string // --metrics: host:port of the Prometheus listener; "" serves none
	MetricsASNTop int    // AS numbers with series of their own (metrics.asnSet)

	Rules    string // --rules: the alert rules file; "" for none (alerts.go)
	AlertsDB string // the incidents file (alerts.db beside the DB)
	// RuleSet is Rules as the flags validated it, read only once: the
	// file may be a pipe (--rules <(make-rules)).
	RuleSet *alert.RuleSet

	// Services (services.go): ports that count as local services besides
	// the listening ones, where the ephemeral range starts (0: the
	// kernel's, or Linux's default with Read), remotes kept per service
	// and window (0: none), services with metric series of their own.
	ServicePorts      []uint16
	EphemeralStart    uint16
	ServiceTop        int
	MetricsServiceTop int

	Web web.Config // --web: the dashboard (web.go); Addr "" serves none

	// --clickhouse (fleet.go): where to export windows, the cluster for
	// Distributed tables, and the host name the rows carry.
	Export        *fleet.Target
	ExportCluster string
	HostName      string
	// WebConfig (--web-config): the exporter-toolkit web configuration
	// file both --metrics and --web serve by; "" plain HTTP.
	WebConfig string
}

// source is one running packet source: a live interface or a file.
type source interface {
	Run(ctx context.Context, c *capture.Classifier, p *capture.Pipe) error
}

// App is the wired pipeline: sources -> tally -> writer (geo, storage, log).
type App struct {
	cfg      Config
	log      *slog.Logger
	geo      *geo.Reloader // Current() is nil while countries are off
	db       *storage.DB
	rec      *reclog.Log
	cls      atomic.Pointer[capture.Classifier] // replaced when the host's addresses change
	services *capture.Services                  // listening ports, shared by every classifier
	sources  []source
	names    []string // what each source reads, for messages
	file     *capture.File
	livesMu  sync.Mutex
	lives    []*capture.Live // the live sources, for kernel counters; a reopened one replaces its slot
	// Counters of live sources that failed and were replaced.
	pastReceived, pastDrops atomic.Uint64
	gaps                    atomic.Uint64 // capture outages so far
	down                    sync.Map      // interface name -> time it went down

	created []string // paths this start created, removed if it fails (New)

	api     *api.Server
	ln      net.Listener // the API's socket; nil once the server owns it
	started time.Time
	closed  chan *rotate.Closed // the writer's queue; set by Run before the API serves

	metrics    *metrics.Metrics // nil without --metrics (see metrics.go)
	metricsSrv *metrics.Server
	web        *web.Server // nil without --web (web.go)

	export *fleet.Exporter // nil without --clickhouse (fleet.go)

	alerts   *alert.Engine // nil without --rules and alerts.db (see alerts.go)
	alertsMu sync.RWMutex  // API requests read alerts; closeAlerts clears it

	// Written by the writer goroutine, read by API status requests.
	stored     atomic.Uint64
	storeErrs  atomic.Uint64
	dropped    atomic.Uint64
	queued     atomic.Int64           // resolved windows waiting for storage
	failing    atomic.Pointer[string] // the last store error while stores fail
	lastStored atomic.Int64           // Unix seconds of the newest stored window start; 0: none
	lastClosed atomic.Int64           // Unix ns when the tally last closed a window
	tally      *rotate.Tally          // set by Run before the sources start; marks capture outages
}

// notifySystemd says READY=1 once capture runs, then pets the watchdog as
// long as windows keep closing: a tally or ticker that is stuck stops the
// pings, and systemd restarts the daemon.
func (a *App) notifySystemd(ctx context.Context) {
	if _, err := sdnotify.Notify("READY=1"); err != nil {
		a.log.Warn("systemd notify", "err", err)
	}
	every := sdnotify.WatchdogInterval()
	if every <= 0 {
		return
	}
	a.lastClosed.Store(time.Now().UnixNano())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if time.Since(time.Unix(0, a.lastClosed.Load())) < 2*a.cfg.Window+every {
				sdnotify.Notify("WATCHDOG=1")
			} else {
				a.log.Error("no window closed lately; not petting the systemd watchdog", "last", time.Unix(0, a.lastClosed.Load()))
			}
		}
	}
}

// grace keeps a live window open past its end for frames still sitting in a
// ring block; it must exceed the block timeout that capture uses.
const grace = 500 * time.Millisecond

// New opens everything the daemon needs, in the order that lets it fail
// before touching anything: GeoIP, capture, the socket's path and group,
// the TCP listeners, and only then the state directory, the DB, the record
// log and the alerts file. What a start that fails created is removed, so
// it leaves the directory as it was.
func New(cfg Config) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			a.closeAll()
			a.removeCreated()
		}
	}()
	if err := a.openGeo(); err != nil {
		return nil, err
	}
	if err := a.openServices(); err != nil {
		return nil, err
	}
	if err := a.openSources(); err != nil {
		return nil, err
	}
	if cfg.Socket != "" {
		if err := api.CheckListen(cfg.Socket, cfg.SocketGroup); err != nil {
			return nil, err
		}
	}
	if err := a.openMetrics(); err != nil {
		return nil, err
	}
	if err := a.openWeb(); err != nil {
		return nil, err
	}
	if err := reclog.CheckText(cfg.LogPath); err != nil {
		return nil, fmt.Errorf("record log: %w", err)
	}
	if err := a.mkdirAll(filepath.Dir(cfg.DBPath)); err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	a.track(cfg.DBPath)
	a.db, err = storage.Open(cfg.DBPath, storage.Options{Timeout: time.Second, Mode: cfg.FileMode, HourCap: noneAsNegative(cfg.HourCap), DayCap: noneAsNegative(cfg.DayCap),
		OnDamage: func(d storage.Damage) {
			a.log.Error("damaged value in the database: skipped, its counts are lost; stop the daemon and run dstwatch compact to drop it",
				"value", d.String(), "err", d.Err)
		}})
	if err != nil {
		return nil, err
	}
	a.track(cfg.LogPath)
	a.rec, err = reclog.Open(cfg.LogPath, cfg.FileMode)
	if err != nil {
		return nil, err
	}
	if err := a.openExport(); err != nil { // fleet.go
		return nil, err
	}
	a.track(cfg.AlertsDB)
	if err := a.openAlerts(); err != nil {
		return nil, err
	}
	// The socket comes last: its presence says the daemon owns the DB.
	if cfg.Socket != "" {
		if a.ln, err = api.Listen(cfg.Socket, cfg.SocketGroup); err != nil {
			return nil, err
		}
		a.api = api.New(a, a, cfg.Logger)
	}
	return a, nil
}

// track notes path as created by this start if it does not exist yet.
func (a *App) track(path string) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		a.created = append(a.created, path)
	}
}

// mkdirAll is os.MkdirAll that tracks the directories it creates.
func (a *App) mkdirAll(dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		a.track(missing[i])
	}
	return os.MkdirAll(dir, 0o750)
}

// removeCreated removes what a failed start created, newest first; a
// directory only when empty.
func (a *App) removeCreated() {
	for i := len(a.created) - 1; i >= 0; i-- {
		os.Remove(a.created[i])
	}
	a.created = nil
}

// openGeo opens the GeoIP files behind a Reloader. Explicit files are
// reopened by the same paths; without them, every reload looks in the
// usual places again, so installing geoipupdate later needs no restart.
func (a *App) openGeo() error {
	resolve := func() []string { return a.cfg.GeoIP }
	if len(a.cfg.GeoIP) == 0 {
		resolve = func() []string { return nil }
		if a.cfg.GeoAuto {
			resolve = geo.DefaultPaths
		}
	}
	r, err := geo.NewReloader(resolve)
	if err != nil {
		return err
	}
	r.OnReload = func(db *geo.DB, err error) {
		if err != nil {
			a.log.Error("geoip reload failed; keeping the databases in use", "err", err)
			return
		}
		for _, f := range db.Files() {
			a.log.Info("geoip database reloaded", "path", f.Path, "type", f.Type, "build", f.Build.Format(time.DateOnly))
			a.warnStale(f)
		}
	}
	a.geo = r
	return nil
}

// geoDirs are the directories to watch for replaced GeoIP files.
func (a *App) geoDirs() []string {
	if len(a.cfg.GeoIP) > 0 {
		return geo.Dirs(a.cfg.GeoIP)
	}
	if !a.cfg.GeoAuto {
		return nil
	}
	var dirs []string
	for _, d := range geo.DefaultDirs() {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// reload is SIGHUP: reopen the record log (logrotate) and the GeoIP files.
func (a *App) reload() {
	if err := a.rec.Reopen(); err != nil {
		a.log.Error("reopen record log", "err", err)
	}
	a.geo.Reload()
	a.reloadRules()
}

func (a *App) openSources() error {
	local := a.cfg.Local
	if a.cfg.Read != "" {
		f, err := capture.OpenFile(a.cfg.Read)
		if err != nil {
			return err
		}
		a.file = f
		a.sources = append(a.sources, f)
		a.names = append(a.names, a.cfg.Read)
		a.cls.Store(a.newClassifier(local))
		return nil
	}
	if len(local) == 0 {
		var err error
		if local, err = a.interfaceAddrs(); err != nil {
			return err
		}
		if len(local) == 0 {
			return &NoAddressesError{Interfaces: a.cfg.Interfaces}
		}
	}
	for _, name := range a.cfg.Interfaces {
		l, err := capture.OpenLive(capture.LiveConfig{Interface: name, Local: local, NumBlocks: a.cfg.RingBlocks})
		if err != nil {
			return err
		}
		a.sources = append(a.sources, l)
		a.lives = append(a.lives, l)
		a.names = append(a.names, name)
	}
	a.cls.Store(a.newClassifier(local))
	return nil
}

// noneAsNegative turns Config's "0: none" into the "< 0: none" of rotate
// and storage, whose 0 is their default: a Config spells out every bound.
func noneAsNegative(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// Close releases what New opened, for a start that ends before Run (Run
// closes everything itself), and removes what New created.
func (a *App) Close() {
	a.closeAll()
	a.removeCreated()
}

func (a *App) closeAll() {
	// Frees the rings of sockets whose Run never started (a start that
	// failed later on); a running capture closes its own.
	a.livesMu.Lock()
	for _, l := range a.lives {
		l.Close()
	}
	a.livesMu.Unlock()
	if a.metricsSrv != nil {
		a.metricsSrv.Close()
	}
	if a.web != nil {
		a.web.Close()
	}
	if a.ln != nil {
		a.ln.Close()
	}
	if a.file != nil {
		a.file.Close()
	}
	a.closeAlerts() // before the record log it writes to
	if a.rec != nil {
		a.rec.Close()
	}
	if a.db != nil {
		a.db.Close()
	}
}

// Run captures until ctx is done (live) or the file ends, then stores the
// partial window, drains the writer and closes everything. Shutdown runs in
// pipeline order, so every frame a source emitted is stored.
func (a *App) Run(ctx context.Context) error {
	defer a.closeAll()
	live := a.cfg.Read == ""
	// Said only once everything is open, so that a failed start is one line.
	if a.geo.Current() == nil {
		a.log.Warn("no GeoIP database given or found in the usual places; countries are off (see --geoip)")
	}
	for _, f := range a.geo.Current().Files() {
		a.log.Info("geoip database", "path", f.Path, "type", f.Type, "build", f.Build.Format(time.DateOnly))
		a.warnStale(f)
	}
	a.log.Info("capturing", "from", a.names, "local", a.cls.Load().Local(), "window", a.cfg.Window, "db", a.cfg.DBPath)
	pipe := capture.NewPipe(64)
	// Closed windows wait here for Finish and GeoIP, untrimmed (up to
	// --max-open-remotes rows each). Live they come every --window and
	// the writer takes each at once; a replay closes them as fast as it
	// reads, so a few are enough and the tally waits for the writer
	// rather than hold dozens of a flood's windows (45 of them: 790 MB).
	closedQueue := 256
	if !live {
		closedQueue = 2
	}
	closed := make(chan *rotate.Closed, closedQueue)
	a.closed, a.started = closed, time.Now()
	tally := rotate.New(rotate.Config{Length: a.cfg.Window, Live: live, Grace: grace,
		ServiceTop: noneAsNegative(a.cfg.ServiceTop), MaxOpenRemotes: noneAsNegative(a.cfg.MaxOpenRemotes)},
		func(c *rotate.Closed) {
			a.lastClosed.Store(time.Now().UnixNano())
			closed <- c
		})
	a.tally = tally
	hup := make(chan os.Signal, 1)

	// Started in this order, stopped in reverse once the sources end: the
	// writer drains first, then the API closes (the last windows reached
	// the streams, running reads finish before the DB closes), then the
	// export drains what the writer stored, then the rest. What New opened
	// closes last (closeAll).
	stop, err := startAll(a.log, []component{
		{"alerts", func() (func() error, error) { return nil, a.startAlerts() }},
		{"metrics", serving(a.serveMetrics)},
		{"web", serving(a.serveWeb)},
		{"memory limit", func() (func() error, error) { return quiet(setMemoryLimit(a.cfg.MaxOpenRemotes)), nil }},
		{"background", func() (func() error, error) { return quiet(a.startBackground(ctx, live)), nil }},
		{"sighup", func() (func() error, error) {
			signal.Notify(hup, syscall.SIGHUP)
			return quiet(func() { signal.Stop(hup) }), nil
		}},
		{"export", func() (func() error, error) { return quiet(a.startExport()), nil }}, // fleet.go: drains after the writer stored the last window
		{"api", a.startAPI},
		{"writer", func() (func() error, error) {
			var writerErr error
			writerDone := make(chan struct{})
			go func() {
				defer close(writerDone)
				writerErr = a.write(closed, hup, live)
			}()
			go func() {
				tally.Run(pipe)
				close(closed)
			}()
			return func() error {
				sdnotify.Notify("STOPPING=1")
				close(pipe.Full)
				<-writerDone
				return writerErr
			}, nil
		}},
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make([]error, len(a.sources))
	for i, s := range a.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if live {
				errs[i] = a.runLive(ctx, i, pipe)
			} else {
				errs[i] = s.Run(ctx, a.cls.Load(), pipe)
			}
		}()
	}
	wg.Wait()
	stopErr := stop()

	for i, e := range errs { // err is nil: the start succeeded
		switch {
		case e == nil || errors.Is(e, context.Canceled):
		case errors.Is(e, capture.ErrTruncated):
			a.log.Warn("capture file is cut off; every complete packet was counted", "file", a.names[i], "err", e)
		default:
			err = errors.Join(err, e)
		}
	}
	return errors.Join(err, stopErr)
}

// startAPI serves the API on the socket New bound. Its stop waits until
// running requests finish, for a while, and returns what Serve returned.
func (a *App) startAPI() (stop func() error, err error) {
	if a.api == nil {
		return nil, nil
	}
	ln := a.ln
	a.ln = nil
	done := make(chan error, 1)
	go func() { done <- a.api.Serve(ln) }()
	a.log.Info("api listening", "socket", a.cfg.Socket)
	return func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := a.api.Shutdown(sctx); err != nil {
			a.log.Warn("api shutdown", "err", err)
		}
		cancel()
		return <-done
	}, nil
}

// startBackground runs what follows the host while capture runs live:
// replaced GeoIP files, the systemd watchdog, the listening sockets, and
// the host's addresses unless --local fixed them. The returned stop ends
// them and waits.
func (a *App) startBackground(ctx context.Context, live bool) (stop func()) {
	bgCtx, stopBg := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	if dirs := a.geoDirs(); live && len(dirs) > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := a.geo.Watch(bgCtx, dirs); err != nil {
				a.log.Warn("not watching GeoIP files for updates; send SIGHUP after replacing them", "err", err)
			}
		}()
	}
	if live {
		bg.Add(1)
		go func() { defer bg.Done(); a.notifySystemd(bgCtx) }()
		bg.Add(1)
		go func() { defer bg.Done(); a.followServices(bgCtx) }()
	}
	// Until ctx ends, as capture does.
	if live && len(a.cfg.Local) == 0 {
		bg.Add(1)
		go func() { defer bg.Done(); a.followAddrs(ctx) }()
	}
	return func() { stopBg(); bg.Wait() }
}

// prune applies the retention of each tier, measured back from the newest
// window rather than from now, so that replaying an old capture keeps it.
// Raw windows are rolled up before they go.
func (a *App) prune(newest time.Time) {
	if newest.IsZero() {
		return
	}
	// Never count retention back from beyond the present: a window stamped
	// in the future by a wrong clock must not prune the real history.
	if limit := time.Now().Add(a.cfg.Window); newest.After(limit) {
		newest = limit
	}
	p, err := a.db.PruneTiers(newest, a.cfg.Retention)
	if err != nil {
		a.log.Error("prune old history", "err", err)
	} else if p != (storage.Pruned{}) {
		a.exportPruned(p) // fleet.go
		a.log.Info("pruned old history", "windows", p.Windows, "hourly_rollups", p.Hours, "daily_rollups", p.Days,
			"retention", a.cfg.Retention.Windows, "retention_hours", a.cfg.Retention.Hours, "retention_days", a.cfg.Retention.Days)
	}
}

// Status (with the query.Reader of history.go) makes App the API's source.
func (a *App) Status() (api.Status, error) {
	st := api.Status{
		Version:       buildVersion(),
		Started:       a.started.UTC().Format(time.RFC3339),
		UptimeSeconds: int64(time.Since(a.started).Seconds()),
		Interfaces:    append([]string{}, a.cfg.Interfaces...),
		Read:          a.cfg.Read,
		Local:         []string{},
		WindowSeconds: int64(a.cfg.Window / time.Second),
		GeoIP:         []api.GeoFile{},
		Writer: api.WriterStats{
			Backlog:       len(a.closed) + int(a.queued.Load()),
			WindowsStored: a.stored.Load(),
			Errors:        a.storeErrs.Load(),
			Dropped:       a.dropped.Load(),
		},
	}
	if f := a.failing.Load(); f != nil {
		st.Writer.Failing = *f
	}
	st.Export = a.exportStatus() // fleet.go
	if t := a.lastStored.Load(); t > 0 {
		st.Writer.LastStored = time.Unix(t, 0).UTC().Format(time.RFC3339)
	}
	for _, addr := range a.cls.Load().Local() {
		st.Local = append(st.Local, addr.String())
	}
	a.livesMu.Lock()
	for _, l := range a.lives {
		rx, drops := l.Stats()
		st.Kernel.Received += rx
		st.Kernel.Drops += drops
	}
	st.Kernel.Received += a.pastReceived.Load()
	st.Kernel.Drops += a.pastDrops.Load()
	a.livesMu.Unlock()
	st.Capture.Gaps = a.gaps.Load()
	st.Capture.Down = a.downList()
	st.Alerts = a.alertStats() // alerts.go
	for _, f := range a.geo.Current().Files() {
		st.GeoIP = append(st.GeoIP, api.GeoFile{Path: f.Path, Type: f.Type, Build: f.Build.UTC().Format(time.RFC3339)})
	}
	db, err := DBStatus(a.db)
	st.DB = db
	return st, err
}

// DBStatus is the database part of status, read from db itself: what the
// daemon reports and what `dstwatch status` says when no daemon runs.
func DBStatus(db *storage.DB) (api.DBStats, error) {
	var s api.DBStats
	s.Path = db.Path()
	if abs, err := filepath.Abs(s.Path); err == nil {
		s.Path = abs
	}
	size, err := db.Size()
	if err != nil {
		return s, err
	}
	s.SizeBytes = size
	first, last, n, err := db.Bounds()
	if err != nil {
		return s, err
	}
	s.Windows = n
	if n > 0 {
		s.First, s.Last = first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339)
	}
	for _, d := range db.Damaged() {
		s.Damaged = append(s.Damaged, d.String())
	}
	s.Tiers, err = TierStats(db)
	return s, err
}

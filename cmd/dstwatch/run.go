package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/anon"
	"github.com/dstwatch/dstwatch/capture"
	dstwatchd "github.com/dstwatch/dstwatch/daemon"
	"github.com/dstwatch/dstwatch/internal/safefile"
	"github.com/dstwatch/dstwatch/metrics"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/storage"
)

const runHelp = `Usage: dstwatch run [flags]

Captures the host's traffic (AF_PACKET, or a pcap/pcapng file with --read),
tallies packets and IP bytes per remote address and direction in epoch-aligned
windows, gives each remote a country (and ASN) from MaxMind .mmdb files, stores
every window in a bbolt file and appends it to a plain-text record log.
Stops on SIGINT/SIGTERM (or at the end of --read), storing the partial window.
SIGHUP reopens the record log (for logrotate) and reloads --rules.

While it runs, the daemon answers 'dstwatch query', 'tail' and 'status' over
HTTP on a unix socket (--socket, mode 0600; 0660 with --socket-group), since
the database is locked while it is open. There is no TCP listener, except
the opt-in Prometheus endpoint: --metrics 127.0.0.1:9750 serves /metrics,
and the opt-in read-only dashboard: --web 127.0.0.1:9751 (beyond loopback
only with --web-token-file or --web-user and --web-password-file).

Examples:
  dstwatch run                                  # default-route interface, default DB and log
  dstwatch run -i eth0 -i eth1 --window 1m --exclude 203.0.113.7,198.51.100.0/24
  dstwatch run --read traffic.pcap --local 198.51.100.1 --db replay.db
  dstwatch run --clickhouse clickhouse://ch1:9000/dstwatch --clickhouse-password-file /etc/dstwatch/ch.pass
`

func defaultDB() string {
	// systemd's StateDirectory= sets this for the unit.
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return filepath.Join(strings.Split(d, ":")[0], "dstwatch.db")
	}
	if os.Geteuid() == 0 {
		return "/var/lib/dstwatch/dstwatch.db"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "dstwatch", "dstwatch.db")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "dstwatch", "dstwatch.db")
	}
	return "dstwatch.db"
}

// socketName is the API socket's name beside the database.
const socketName = "dstwatch.sock"

func defaultSocket(db string) string { return filepath.Join(filepath.Dir(db), socketName) }

// runSocket is where the systemd unit's daemon listens: its
// RuntimeDirectory, which the --socket-group can pass (the unit's state
// directory, under /var/lib/private, it cannot).
const runSocket = "/run/dstwatch/" + socketName

// daemonSocket is run's default socket: in systemd's RuntimeDirectory=
// when the unit sets one, else beside the database.
func daemonSocket(db string) string {
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" {
		return filepath.Join(strings.Split(d, ":")[0], socketName)
	}
	return defaultSocket(db)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q: want text or json", errUsage, format)
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", runHelp, stdout)
	var ifaces, local, exclude, geoip listFlag
	fs.Var(&ifaces, "interface", "capture on this `interface`; repeatable (default: the default route's interface)")
	fs.Var(&ifaces, "i", "short for --`interface`")
	ringMB := fs.Int("ring-mb", capture.DefaultNumBlocks, "kernel capture ring per interface, in `MiB` (2 to 1024; all of it resident): each MiB holds ~5000 frames, 5 ms at 1 M frames/s, before the kernel drops")
	read := fs.String("read", "", "replay this pcap or pcapng `file` instead of capturing live, then exit")
	fs.Var(&local, "local", "the host's own `addresses`, comma-separated or repeated (default: the capture interfaces' addresses)")
	fs.Var(&exclude, "exclude", "never tally these remote `addresses or CIDR prefixes`; repeatable")
	excludeFile := fs.String("exclude-file", "", "read exclusions from `file`, one address or prefix per line, # comments")
	window := fs.String("window", "20s", "window `length`, whole seconds")
	maxRemotes := fs.Int("max-remotes", 10000, "store at most `N` remotes per window, the heaviest by bytes; the rest are summed into an 'other' row (0: no cap)")
	maxOpen := fs.Int("max-open-remotes", rotate.DefaultMaxOpenRemotes, "count at most `N` distinct remotes (and service-remote pairs) in the open window; later new remotes are summed exactly into 'other' and counted as overflow frames (0: no bound, memory grows with the remotes)")
	retention := fs.String("retention", "2d", "keep raw windows this `duration`, counted back from the newest; older ones live on in the hourly and daily rollups (0: keep all)")
	retentionHours := fs.String("retention-hours", "90d", "keep hourly rollups this `duration` (0: keep all)")
	retentionDays := fs.String("retention-days", "730d", "keep daily rollups this `duration` (0: keep all)")
	hourCap := fs.Int("hour-cap", storage.DefaultHourCap, "remotes with a row of their own in one hourly rollup; the rest are summed into its 'other' (0: no cap)")
	dayCap := fs.Int("day-cap", storage.DefaultDayCap, "remotes with a row of their own in one daily rollup (0: no cap)")
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	recLog := fs.String("record-log", "", "plain-text record log `file` (default: records.log beside the DB)")
	logTop := fs.Int("log-top", 50, "remotes per window in the record log; the rest go on an 'others' line")
	fs.Var(&geoip, "geoip", "MaxMind-format .mmdb `file` (country, city or ASN); repeatable (default: the usual geoipupdate locations)")
	socket := fs.String("socket", "", "API unix socket `path`; none: serve no API (default: dstwatch.sock beside the DB)")
	socketGroup := fs.String("socket-group", "", "let this `group` use the API socket (mode 0660 instead of 0600)")
	utc := fs.Bool("utc", false, "write record log times in UTC instead of local time")
	anonymize := fs.String("anonymize", "", "store remotes anonymised: `mode` truncate (to /24 and /48), truncate:/V4,/V6, or hash (keyed HMAC pseudonyms)")
	anonKey := fs.String("anonymize-key", "", "secret key `file` for --anonymize hash (at least 16 bytes, e.g. head -c 32 /dev/urandom)")
	runAs := fs.String("user", "", "after opening the capture sockets and files as root, continue as this `user`")
	fileMode := fs.String("file-mode", "0640", "permission `mode` for a new database and record log")
	logLevel := fs.String("log-level", "info", "daemon log `level`: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "daemon log `format` on stderr: text or json")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on http://`host:port`/metrics, e.g. 127.0.0.1:9750 (default: off)")
	rules := fs.String("rules", "", "alert rules `file` (YAML; see docs/alerts.md); SIGHUP reloads it")
	alertsDB := fs.String("alerts-db", "", "the incidents `file` (default: alerts.db beside the DB)")
	metricsASNTop := fs.Int("metrics-asn-top", metrics.DefaultASNTop, "AS numbers with metric series of their own: the first `N` to rank in a window's top N; the rest are asn=\"other\"")
	svc := serviceFlags(fs)
	wf := addWebFlags(fs) // web.go
	ff := addFleetFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	cfg := dstwatchd.Config{
		Read: *read, DBPath: *db, LogPath: *recLog, LogTop: *logTop, MaxRemotes: *maxRemotes,
		MaxOpenRemotes: *maxOpen, HourCap: *hourCap, DayCap: *dayCap,
		RingBlocks: *ringMB, // blocks are 1 MiB
		GeoIP:      geoip, GeoAuto: true, Logger: logger, Location: time.Local,
	}
	if *utc {
		cfg.Location = time.UTC
	}
	// Too long for any span leaves the window 0, which Validate refuses.
	if cfg.Window, err = parseSpan("--window", *window); err != nil && !errors.Is(err, errTooLong) {
		return err
	}
	for _, r := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"--retention", *retention, &cfg.Retention.Windows}, {"--retention-hours", *retentionHours, &cfg.Retention.Hours}, {"--retention-days", *retentionDays, &cfg.Retention.Days}} {
		if *r.out, err = parseSpan(r.name, r.in); err != nil {
			return err
		}
	}
	if cfg.Local, err = parseAddrs("--local", local); err != nil {
		return err
	}
	if cfg.Exclude, err = parsePrefixes("--exclude", exclude); err != nil {
		return err
	}
	if *excludeFile != "" {
		more, err := readPrefixFile(*excludeFile)
		if err != nil {
			return err
		}
		cfg.Exclude = append(cfg.Exclude, more...)
	}
	if *read == "" {
		if len(ifaces) == 0 {
			name, err := capture.DefaultInterface()
			if err != nil {
				return fmt.Errorf("%w (name one with --interface)", err)
			}
			ifaces = append(ifaces, name)
		}
	}
	cfg.Interfaces = ifaces // with --read too, for Validate
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(filepath.Dir(cfg.DBPath), "records.log")
	}
	switch *socket {
	case "none": // no API
	case "":
		cfg.Socket = daemonSocket(cfg.DBPath)
	default:
		cfg.Socket = *socket
	}
	cfg.SocketGroup = *socketGroup
	cfg.Metrics, cfg.MetricsASNTop = *metricsAddr, *metricsASNTop
	if err := svc.apply(&cfg); err != nil {
		return err
	}
	if err := wf.apply(&cfg); err != nil {
		return err
	}
	if err := ff.apply(&cfg); err != nil {
		return err
	}
	if err := parseRulesFlags(&cfg, *rules, *alertsDB); err != nil {
		return err
	}
	if *anonymize != "" || *anonKey != "" {
		if cfg.Anonymize, err = anon.Parse(*anonymize, *anonKey); err != nil {
			var pe *os.PathError
			if !errors.As(err, &pe) {
				err = fmt.Errorf("%w: %v", errUsage, anonFlagError(err)) // the flags, not the key file
			}
			return err
		}
	}
	mode, err := strconv.ParseUint(*fileMode, 8, 32)
	if err != nil {
		return fileModeUsage(*fileMode)
	}
	cfg.FileMode = os.FileMode(mode)
	if err := cfg.Validate(); err != nil {
		return configUsage(err, &cfg, *window, *fileMode)
	}
	var drop *credential
	if *runAs != "" {
		if drop, err = lookupUser(*runAs); err != nil {
			return err
		}
		safefile.Trust(drop.uid) // its files are the daemon's own
	}
	dstwatchd.Version = buildVersion()
	app, err := dstwatchd.New(cfg)
	if err != nil {
		return err
	}
	if drop != nil {
		if err := drop.apply(); err != nil {
			app.Close()
			return err
		}
		// The toolkit reads the web config and its keys on every
		// connection, from now on as this user.
		if err := recheckWebConfig(cfg.WebConfig, *runAs); err != nil {
			app.Close()
			return err
		}
		logger.Info("dropped privileges", "user", *runAs, "uid", drop.uid, "gid", drop.gid)
	}
	err = app.Run(ctx)
	if na := (*dstwatchd.NoAddressesError)(nil); errors.As(err, &na) {
		return fmt.Errorf("interface %v has no addresses: give the host's addresses with --local", na.Interfaces)
	}
	return err
}

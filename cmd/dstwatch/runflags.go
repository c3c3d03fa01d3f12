package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/capture"
	dstwatchd "github.com/dstwatch/dstwatch/daemon"
	"github.com/dstwatch/dstwatch/metrics"
	"github.com/dstwatch/dstwatch/rotate"
	"github.com/dstwatch/dstwatch/web"
)

// run's per-service and alert flags, which fill in the daemon's Config
// (the daemon's side of both is in package daemon).

// parsePorts reads --service-ports: port numbers, comma-separated or
// repeated.
func parsePorts(flagName string, list []string) ([]uint16, error) {
	var out []uint16
	for _, s := range list {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%w: %s %q: want a port number from 1 to 65535", errUsage, flagName, s)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// runServiceFlags are run's per-service flags.
type runServiceFlags struct {
	ports      listFlag
	ephemeral  *uint
	top        *int
	metricsTop *int
}

func serviceFlags(fs *flag.FlagSet) *runServiceFlags {
	f := &runServiceFlags{}
	fs.Var(&f.ports, "service-ports", "local `ports` that count as services (tcp and udp) besides those the host listens on; comma-separated or repeated. With --read the only ones known")
	f.ephemeral = fs.Uint("ephemeral-start", 0, "the kernel's client ports start at `N`: with --read, local ports below it are services; live, a bound UDP port below it is a server's (default: the kernel's ip_local_port_range; 32768 with --read)")
	f.top = fs.Int("service-top", rotate.DefaultServiceTop, "remotes kept per service and window with rows of their own; the rest are summed in the service's 'other'")
	f.metricsTop = fs.Int("metrics-service-top", metrics.DefaultServiceTop, "services with metric series of their own: the first `N` to rank in a window's top N; the rest are service=\"other\"")
	return f
}

func (f *runServiceFlags) apply(cfg *dstwatchd.Config) error {
	var err error
	if cfg.ServicePorts, err = parsePorts("--service-ports", f.ports); err != nil {
		return err
	}
	if *f.ephemeral > 65535 {
		return fmt.Errorf("%w: --ephemeral-start %d: want a port number", errUsage, *f.ephemeral)
	}
	cfg.EphemeralStart = uint16(*f.ephemeral)
	cfg.ServiceTop, cfg.MetricsServiceTop = *f.top, *f.metricsTop
	return nil
}

// alertsName is the incidents file's name beside the database.
const alertsName = "alerts.db"

func defaultAlertsDB(db string) string { return filepath.Join(filepath.Dir(db), alertsName) }

func parseRulesFlags(cfg *dstwatchd.Config, rules, alertsDB string) error {
	cfg.Rules, cfg.AlertsDB = rules, alertsDB
	if cfg.AlertsDB == "" {
		cfg.AlertsDB = defaultAlertsDB(cfg.DBPath)
	}
	if filepath.Clean(cfg.AlertsDB) == filepath.Clean(cfg.DBPath) || sameFile(cfg.AlertsDB, cfg.DBPath) {
		return fmt.Errorf("%w: --alerts-db %s is the window database (--db): give the incidents a file of their own", errUsage, cfg.AlertsDB)
	}
	if rules != "" {
		// Validate before anything opens, so a bad file is one line and exit 2.
		var err error
		if cfg.RuleSet, err = alert.LoadRules(rules); err != nil {
			return err
		}
	}
	return nil
}

// configUsage turns the daemon's verdict on the Config that run's flags
// filled in into the usage line those flags get (exit 2), in the flags'
// words; window and fileMode are the flags' text.
func configUsage(err error, cfg *dstwatchd.Config, window, fileMode string) error {
	var ce *dstwatchd.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	const negative = "--max-remotes, --max-open-remotes and --log-top must not be negative"
	switch ce.Field {
	case "Window":
		return fmt.Errorf("%w: --window %s: must be whole seconds, from 1s to 1h", errUsage, window)
	case "MaxRemotes", "MaxOpenRemotes", "LogTop":
		return fmt.Errorf("%w: %s", errUsage, negative)
	case "MetricsASNTop":
		return fmt.Errorf("%w: --metrics-asn-top must not be negative", errUsage)
	case "Local":
		return fmt.Errorf("%w: --read needs --local: a capture file does not say which addresses were the host's", errUsage)
	case "Read":
		return fmt.Errorf("%w: --read and --interface exclude each other", errUsage)
	case "SocketGroup":
		return fmt.Errorf("%w: --socket-group needs a socket (not --socket none)", errUsage)
	case "Metrics":
		return fmt.Errorf("%w: --metrics %q: want host:port with a port from 1 to 65535, e.g. 127.0.0.1:9750", errUsage, cfg.Metrics)
	case "FileMode":
		return fileModeUsage(fileMode)
	case "HourCap", "DayCap":
		return fmt.Errorf("%w: --hour-cap and --day-cap must not be negative", errUsage)
	case "RingBlocks":
		return fmt.Errorf("%w: --ring-mb %d: want whole MiB from %d to %d", errUsage, cfg.RingBlocks, capture.MinNumBlocks, capture.MaxNumBlocks)
	case "ServiceTop", "MetricsServiceTop":
		return fmt.Errorf("%w: --service-top and --metrics-service-top must not be negative", errUsage)
	case "WebConfig":
		if ce.Err != nil { // the file said no
			return fmt.Errorf("%w: --web-config: %v", errUsage, ce.Err)
		}
		return fmt.Errorf("%w: --web-config needs --metrics or --web", errUsage)
	case "Web":
		switch {
		case errors.Is(err, web.ErrNeedsAuth):
			return fmt.Errorf("%w: --web on an address beyond loopback needs --web-token-file or --web-user with --web-password-file, or a --web-config with basic_auth_users or client_auth_type RequireAndVerifyClientCert", errUsage)
		case errors.Is(err, web.ErrTwoBasicAuths):
			return fmt.Errorf("%w: --web-user and the basic_auth_users of --web-config both want the Authorization header: keep one of them", errUsage)
		}
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

func fileModeUsage(text string) error {
	return fmt.Errorf("%w: --file-mode %q: want an octal mode within 0664 that lets the owner read and write (0600, 0640, 0660, 0644 or 0664)", errUsage, text)
}

package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/dstwatch/dstwatch/alert"
	dstwatchd "github.com/dstwatch/dstwatch/daemon"
	"github.com/dstwatch/dstwatch/metrics"
	"github.com/dstwatch/dstwatch/rotate"
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
	if *f.top < 0 || *f.metricsTop < 0 {
		return fmt.Errorf("%w: --service-top and --metrics-service-top must not be negative", errUsage)
	}
	cfg.ServiceTop, cfg.MetricsServiceTop = *f.top, *f.metricsTop
	if cfg.ServiceTop == 0 {
		cfg.ServiceTop = -1 // rotate: none
	}
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
		if _, err := alert.LoadRules(rules); err != nil {
			return err
		}
	}
	return nil
}

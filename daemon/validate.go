package daemon

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/internal/webconfig"
	"github.com/dstwatch/dstwatch/web"
)

// A ConfigError is a Config that cannot run: which field is off, and why.
// Callers that fill a Config from words of their own (the CLI's flags)
// tell their user in those words, by Field.
type ConfigError struct {
	Field string // the Config field: "Window", "Local", ...
	Msg   string
	Err   error // what a file or package said, when it said no; else nil
}

func (e *ConfigError) Error() string { return e.Msg }

func (e *ConfigError) Unwrap() error { return e.Err }

// NoAddressesError is Run's error when the captured interfaces have no
// address and Config.Local gives none: nothing would tell the host's
// traffic from transit.
type NoAddressesError struct{ Interfaces []string }

func (e *NoAddressesError) Error() string {
	return fmt.Sprintf("interface %v has no addresses: give the host's addresses (Config.Local)", e.Interfaces)
}

func invalid(field, msg string) error { return &ConfigError{Field: field, Msg: msg} }

// Validate says whether c can run, before anything is opened. New
// validates too; a caller validates first to tell a Config that is off
// from a start that fails.
func (c *Config) Validate() error {
	for _, n := range []struct {
		field, what string
		v           int
	}{{"HourCap", "remotes per hourly rollup", c.HourCap}, {"DayCap", "remotes per daily rollup", c.DayCap}} {
		if n.v < 0 {
			return invalid(n.field, n.what+": must not be negative")
		}
	}
	if c.RingBlocks < capture.MinNumBlocks || c.RingBlocks > capture.MaxNumBlocks {
		return invalid("RingBlocks", "capture ring of "+strconv.Itoa(c.RingBlocks)+" MiB: want "+
			strconv.Itoa(capture.MinNumBlocks)+" to "+strconv.Itoa(capture.MaxNumBlocks))
	}
	for _, n := range []struct {
		field, what string
		v           int
	}{{"ServiceTop", "remotes per service and window", c.ServiceTop}, {"MetricsServiceTop", "services with metric series", c.MetricsServiceTop}} {
		if n.v < 0 {
			return invalid(n.field, n.what+": must not be negative")
		}
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	switch {
	case c.Read != "" && len(c.Interfaces) > 0:
		return invalid("Read", "a capture file to replay and live interfaces exclude each other")
	case c.Read == "" && len(c.Interfaces) == 0:
		return invalid("Interfaces", "no interface to capture on and no capture file to replay")
	case c.Read != "" && len(c.Local) == 0:
		return invalid("Local", "replaying a capture file needs the host's addresses: the file does not say which were the host's")
	}
	// At most an hour: closed windows roll up into hourly rollups, and the
	// open window is lost on a crash.
	if c.Window < time.Second || c.Window%time.Second != 0 || c.Window > time.Hour {
		return invalid("Window", "window "+c.Window.String()+": must be whole seconds, from 1s to 1h")
	}
	for _, n := range []struct {
		field, what string
		v           int
	}{{"MaxRemotes", "remotes per window", c.MaxRemotes}, {"MaxOpenRemotes", "remotes in the open window", c.MaxOpenRemotes},
		{"LogTop", "remotes per window in the record log", c.LogTop}, {"MetricsASNTop", "AS numbers with metric series", c.MetricsASNTop}} {
		if n.v < 0 {
			return invalid(n.field, n.what+": must not be negative")
		}
	}
	if c.Retention.Windows < 0 || c.Retention.Hours < 0 || c.Retention.Days < 0 {
		return invalid("Retention", "retention must not be negative")
	}
	if c.DBPath == "" {
		return invalid("DBPath", "no database file")
	}
	// The files hold data, not programs, and root writes them: no execute
	// bit and no world write (any local user could forge history).
	if c.FileMode&^0o664 != 0 || c.FileMode&0o600 != 0o600 {
		return invalid("FileMode", "file mode "+strconv.FormatUint(uint64(c.FileMode), 8)+": want a mode within 0664 that lets the owner read and write")
	}
	if c.SocketGroup != "" && c.Socket == "" {
		return invalid("SocketGroup", "a socket group needs an API socket")
	}
	if c.Metrics != "" {
		if _, port, err := net.SplitHostPort(c.Metrics); err != nil || !validPort(port) {
			return invalid("Metrics", "metrics address "+strconv.Quote(c.Metrics)+": want host:port with a port from 1 to 65535")
		}
	}
	return nil
}

// validateListeners checks the web config and the dashboard's auth as
// the listeners will at New, so that a Config they would refuse is
// refused before anything is opened.
func (c *Config) validateListeners() error {
	var info webconfig.Info
	if c.WebConfig != "" {
		if c.Metrics == "" && c.Web.Addr == "" {
			return invalid("WebConfig", "a web config needs a listener to serve: metrics or the dashboard")
		}
		var err error
		if info, err = webconfig.Check(c.WebConfig); err != nil {
			return &ConfigError{Field: "WebConfig", Msg: "web config: " + err.Error(), Err: err}
		}
	}
	if c.Web.Addr != "" {
		if err := web.CheckAuth(c.Web, info); err != nil {
			return &ConfigError{Field: "Web", Msg: err.Error(), Err: err}
		}
	}
	return nil
}

// validPort reports whether s is a TCP port number a listener can be asked
// for by number: 1 to 65535 (or a service name net.Listen looks up).
func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return s != "" && strings.IndexFunc(s, func(r rune) bool { return !('a' <= r && r <= 'z' || r == '-') }) < 0
	}
	return n >= 1
}

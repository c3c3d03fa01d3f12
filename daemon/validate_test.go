package daemon

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/storage"
)

// Each rule of Validate names the field it refuses, so that a caller can
// say it in its own words.
func TestValidate(t *testing.T) {
	replay := func() Config {
		return Config{Read: "x.pcap", Local: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, Window: 20 * time.Second,
			DBPath: "x.db", FileMode: 0o640, MaxRemotes: 10, LogTop: 5}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" valid
	}{
		{"replay", func(*Config) {}, ""},
		{"live", func(c *Config) { c.Read, c.Local, c.Interfaces = "", nil, []string{"eth0"} }, ""},
		{"window 1h", func(c *Config) { c.Window = time.Hour }, ""},
		{"mode 0600", func(c *Config) { c.FileMode = 0o600 }, ""},
		{"metrics", func(c *Config) { c.Metrics = "127.0.0.1:9750" }, ""},
		{"metrics by service name", func(c *Config) { c.Metrics = "localhost:http-alt" }, ""},
		{"socket group", func(c *Config) { c.Socket, c.SocketGroup = "x.sock", "adm" }, ""},
		{"read and live", func(c *Config) { c.Interfaces = []string{"eth0"} }, "Read"},
		{"nothing to capture", func(c *Config) { c.Read = "" }, "Interfaces"},
		{"read without local", func(c *Config) { c.Local = nil }, "Local"},
		{"window 0", func(c *Config) { c.Window = 0 }, "Window"},
		{"window 1500ms", func(c *Config) { c.Window = 1500 * time.Millisecond }, "Window"},
		{"window 2h", func(c *Config) { c.Window = 2 * time.Hour }, "Window"},
		{"max remotes", func(c *Config) { c.MaxRemotes = -1 }, "MaxRemotes"},
		{"max open remotes", func(c *Config) { c.MaxOpenRemotes = -1 }, "MaxOpenRemotes"},
		{"log top", func(c *Config) { c.LogTop = -1 }, "LogTop"},
		{"asn top", func(c *Config) { c.MetricsASNTop = -1 }, "MetricsASNTop"},
		{"retention", func(c *Config) { c.Retention = storage.Retention{Hours: -time.Hour} }, "Retention"},
		{"no db", func(c *Config) { c.DBPath = "" }, "DBPath"},
		{"mode executable", func(c *Config) { c.FileMode = 0o740 }, "FileMode"},
		{"mode world-writable", func(c *Config) { c.FileMode = 0o666 }, "FileMode"},
		{"mode owner cannot write", func(c *Config) { c.FileMode = 0o440 }, "FileMode"},
		{"mode setuid", func(c *Config) { c.FileMode = 0o4640 }, "FileMode"},
		{"group without socket", func(c *Config) { c.SocketGroup = "adm" }, "SocketGroup"},
		{"metrics port 0", func(c *Config) { c.Metrics = "127.0.0.1:0" }, "Metrics"},
		{"metrics port too big", func(c *Config) { c.Metrics = ":99999" }, "Metrics"},
		{"metrics no port", func(c *Config) { c.Metrics = "127.0.0.1" }, "Metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := replay()
			tc.edit(&c)
			err := c.Validate()
			var ce *ConfigError
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.field != "" && !errors.As(err, &ce):
				t.Errorf("error %v, want a ConfigError for %s", err, tc.field)
			case tc.field != "" && ce.Field != tc.field:
				t.Errorf("field %s (%v), want %s", ce.Field, err, tc.field)
			}
		})
	}
}

// New refuses a Config that cannot run before it opens anything.
func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Config{Read: dir + "/x.pcap", Window: time.Second, DBPath: dir + "/x.db", FileMode: 0o640})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "Local" {
		t.Errorf("New: %v, want the ConfigError for Local", err)
	}
}

package daemon

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/dstwatch/dstwatch/capture"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/web"
)

// Each rule of Validate names the field it refuses, so that a caller can
// say it in its own words.
func TestValidate(t *testing.T) {
	replay := func() Config {
		return Config{Read: "x.pcap", Local: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, Window: 20 * time.Second,
			DBPath: "x.db", FileMode: 0o640, MaxRemotes: 10, LogTop: 5, RingBlocks: capture.DefaultNumBlocks}
	}
	// Web configs as the exporter toolkit reads them: plain HTTP with
	// basic_auth_users, and one it refuses.
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, bogus := filepath.Join(dir, "users.yml"), filepath.Join(dir, "bogus.yml")
	if err := os.WriteFile(users, []byte("basic_auth_users:\n  ops: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bogus, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" valid
		cause error  // the ConfigError's Err, when it has one
	}{
		{"replay", func(*Config) {}, "", nil},
		{"live", func(c *Config) { c.Read, c.Local, c.Interfaces = "", nil, []string{"eth0"} }, "", nil},
		{"window 1h", func(c *Config) { c.Window = time.Hour }, "", nil},
		{"mode 0600", func(c *Config) { c.FileMode = 0o600 }, "", nil},
		{"metrics", func(c *Config) { c.Metrics = "127.0.0.1:9750" }, "", nil},
		{"metrics by service name", func(c *Config) { c.Metrics = "localhost:http-alt" }, "", nil},
		{"socket group", func(c *Config) { c.Socket, c.SocketGroup = "x.sock", "adm" }, "", nil},
		{"read and live", func(c *Config) { c.Interfaces = []string{"eth0"} }, "Read", nil},
		{"nothing to capture", func(c *Config) { c.Read = "" }, "Interfaces", nil},
		{"read without local", func(c *Config) { c.Local = nil }, "Local", nil},
		{"window 0", func(c *Config) { c.Window = 0 }, "Window", nil},
		{"window 1500ms", func(c *Config) { c.Window = 1500 * time.Millisecond }, "Window", nil},
		{"window 2h", func(c *Config) { c.Window = 2 * time.Hour }, "Window", nil},
		{"max remotes", func(c *Config) { c.MaxRemotes = -1 }, "MaxRemotes", nil},
		{"max open remotes", func(c *Config) { c.MaxOpenRemotes = -1 }, "MaxOpenRemotes", nil},
		{"log top", func(c *Config) { c.LogTop = -1 }, "LogTop", nil},
		{"asn top", func(c *Config) { c.MetricsASNTop = -1 }, "MetricsASNTop", nil},
		{"retention", func(c *Config) { c.Retention = storage.Retention{Hours: -time.Hour} }, "Retention", nil},
		{"no db", func(c *Config) { c.DBPath = "" }, "DBPath", nil},
		{"mode executable", func(c *Config) { c.FileMode = 0o740 }, "FileMode", nil},
		{"mode world-writable", func(c *Config) { c.FileMode = 0o666 }, "FileMode", nil},
		{"mode owner cannot write", func(c *Config) { c.FileMode = 0o440 }, "FileMode", nil},
		{"mode setuid", func(c *Config) { c.FileMode = 0o4640 }, "FileMode", nil},
		{"group without socket", func(c *Config) { c.SocketGroup = "adm" }, "SocketGroup", nil},
		{"metrics port 0", func(c *Config) { c.Metrics = "127.0.0.1:0" }, "Metrics", nil},
		{"metrics port too big", func(c *Config) { c.Metrics = ":99999" }, "Metrics", nil},
		{"metrics no port", func(c *Config) { c.Metrics = "127.0.0.1" }, "Metrics", nil},
		{"caps 0: none", func(c *Config) { c.HourCap, c.DayCap = 0, 0 }, "", nil},
		{"hour cap", func(c *Config) { c.HourCap = -1 }, "HourCap", nil},
		{"day cap", func(c *Config) { c.DayCap = -1 }, "DayCap", nil},
		{"ring smallest", func(c *Config) { c.RingBlocks = capture.MinNumBlocks }, "", nil},
		{"ring largest", func(c *Config) { c.RingBlocks = capture.MaxNumBlocks }, "", nil},
		{"ring 0", func(c *Config) { c.RingBlocks = 0 }, "RingBlocks", nil},
		{"ring too small", func(c *Config) { c.RingBlocks = capture.MinNumBlocks - 1 }, "RingBlocks", nil},
		{"ring too big", func(c *Config) { c.RingBlocks = capture.MaxNumBlocks + 1 }, "RingBlocks", nil},
		{"service top 0: none", func(c *Config) { c.ServiceTop = 0 }, "", nil},
		{"service top", func(c *Config) { c.ServiceTop = -1 }, "ServiceTop", nil},
		{"metrics service top", func(c *Config) { c.MetricsServiceTop = -1 }, "MetricsServiceTop", nil},
		{"web config for metrics", func(c *Config) { c.Metrics, c.WebConfig = "127.0.0.1:9750", users }, "", nil},
		{"web config without listener", func(c *Config) { c.WebConfig = users }, "WebConfig", nil},
		{"web config missing", func(c *Config) { c.Metrics, c.WebConfig = "127.0.0.1:9750", filepath.Join(dir, "none.yml") }, "WebConfig", os.ErrNotExist},
		{"web config refused", func(c *Config) { c.Web.Addr, c.WebConfig = "127.0.0.1:9751", bogus }, "WebConfig", nil},
		{"web on loopback", func(c *Config) { c.Web.Addr = "127.0.0.1:9751" }, "", nil},
		{"web beyond loopback with token", func(c *Config) { c.Web.Addr, c.Web.Token = "0.0.0.0:9751", "0123456789abcdef" }, "", nil},
		{"web beyond loopback with web config users", func(c *Config) { c.Web.Addr, c.WebConfig = "0.0.0.0:9751", users }, "", nil},
		{"web beyond loopback without auth", func(c *Config) { c.Web.Addr = "0.0.0.0:9751" }, "Web", web.ErrNeedsAuth},
		{"web user and web config users", func(c *Config) {
			c.Web.Addr, c.Web.User, c.Web.Password, c.WebConfig = "127.0.0.1:9751", "ops", "correct horse", users
		}, "Web", web.ErrTwoBasicAuths},
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
			case tc.cause != nil && !errors.Is(err, tc.cause):
				t.Errorf("error %v, want it to wrap %v", err, tc.cause)
			}
		})
	}
}

// New refuses a Config that cannot run before it opens anything.
func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Config{Read: dir + "/x.pcap", Window: time.Second, DBPath: dir + "/x.db", FileMode: 0o640, RingBlocks: capture.DefaultNumBlocks})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "Local" {
		t.Errorf("New: %v, want the ConfigError for Local", err)
	}
}

// Package webconfig serves the daemon's HTTP listeners (the metrics and
// the dashboard) as the Prometheus exporter ecosystem's web configuration
// file says: TLS, client certificates and bcrypt basic auth, done by
// github.com/prometheus/exporter-toolkit, which reads the file (and the
// certificates it names) again on every connection and every request.
// This package owns checking the file at start and what the daemon needs
// to know of it there; the parsing and the TLS are the toolkit's.
package webconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// Info is what a file set when Check read it. The toolkit re-reads the
// file while serving, so an edit can change it later.
type Info struct {
	TLS bool // tls_server_config: the listener speaks HTTPS
	// Users: basic_auth_users is set, every request needs one of them.
	Users bool
	// ClientCerts: client_auth_type RequireAndVerifyClientCert, every
	// connection needs a certificate signed by client_ca_file.
	ClientCerts bool
}

// Auth reports whether the file makes every request authenticate.
func (i Info) Auth() bool { return i.Users || i.ClientCerts }

// Scheme is "https" with TLS, else "http".
func (i Info) Scheme() string {
	if i.TLS {
		return "https"
	}
	return "http"
}

// Check reads the file at path as the toolkit will, with its certificates
// and keys, and says what it sets. Its error is one line.
func Check(path string) (Info, error) {
	if err := web.Validate(path); err != nil {
		return Info{}, oneLine(err)
	}
	// The toolkit validated it; read it again into the toolkit's own type
	// for the few facts the daemon needs at start.
	b, err := os.ReadFile(path)
	if err != nil {
		return Info{}, oneLine(err)
	}
	var c web.Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return Info{}, oneLine(err)
	}
	return Info{
		TLS:         c.TLSConfig.IsEnabled(),
		Users:       len(c.Users) > 0,
		ClientCerts: c.TLSConfig.ClientAuth == "RequireAndVerifyClientCert",
	}, nil
}

// oneLine folds the YAML decoder's multi-line errors onto one line.
func oneLine(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return errors.New(strings.Join(lines, " "))
}

// Serve serves srv on ln until srv is closed: plain HTTP when path is "",
// else as the file at path says. It wraps srv.Handler, so call it once.
func Serve(ln net.Listener, srv *http.Server, path string, log *slog.Logger) error {
	if path == "" {
		return srv.Serve(ln)
	}
	// The toolkit reports handshake failures through the server's own
	// error log; say which listener they come from.
	if srv.ErrorLog == nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &path}, log)
}

package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	dstwatchd "github.com/dstwatch/dstwatch/daemon"
)

// The opt-in web dashboard (--web): bound by New (a busy port fails the
// start, a low one is bound before --user drops root), served by Run, fed
// by the writer after each successful store, as the API's stream is.

type webFlags struct {
	addr, tokenFile, user, passFile *string
	config                          *string // --web-config, for --metrics too
}

func addWebFlags(fs *flag.FlagSet) *webFlags {
	return &webFlags{
		addr:      fs.String("web", "", "serve the read-only dashboard on http://`host:port`/, e.g. 127.0.0.1:9751 (default: off); beyond loopback it needs a token, a user, or a --web-config with auth"),
		tokenFile: fs.String("web-token-file", "", "require the token in this `file` (open /?token=TOKEN once, or send Authorization: Bearer)"),
		user:      fs.String("web-user", "", "require HTTP basic auth as this `user` (with --web-password-file)"),
		passFile:  fs.String("web-password-file", "", "the basic-auth password, read from this `file`"),
		config:    fs.String("web-config", "", "serve --metrics and --web as this Prometheus exporter web configuration `file` says: TLS, client certificates, bcrypt basic_auth_users; re-read on every connection"),
	}
}

func readSecret(flagName, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 8 {
		return "", fmt.Errorf("%w: %s %s: want at least 8 characters", errUsage, flagName, path)
	}
	return s, nil
}

// apply reads the secret files --web asks for; Config.Validate checks
// the web config and whether the dashboard's auth fits its address.
func (f *webFlags) apply(cfg *dstwatchd.Config) error {
	cfg.WebConfig = *f.config
	if *f.addr == "" {
		if *f.tokenFile != "" || *f.user != "" || *f.passFile != "" {
			return fmt.Errorf("%w: --web-token-file, --web-user and --web-password-file need --web", errUsage)
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(*f.addr); err != nil {
		return fmt.Errorf("--web %q: want host:port, e.g. 127.0.0.1:9751", *f.addr) // as web.Listen would refuse it, in the flag's name
	}
	cfg.Web.Addr = *f.addr
	if (*f.user == "") != (*f.passFile == "") {
		return fmt.Errorf("%w: --web-user and --web-password-file go together", errUsage)
	}
	var err error
	if *f.tokenFile != "" {
		if cfg.Web.Token, err = readSecret("--web-token-file", *f.tokenFile); err != nil {
			return err
		}
	}
	if *f.user != "" {
		cfg.Web.User = *f.user
		if cfg.Web.Password, err = readSecret("--web-password-file", *f.passFile); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"fmt"

	"github.com/dstwatch/dstwatch/internal/webconfig"
)

// --web-config is parsed with the --web flags (web.go) and applies to both
// --metrics and --web; the toolkit does the serving (internal/webconfig).

// recheckWebConfig reads the web config again after --user dropped root:
// a key only root may read would fail every connection.
func recheckWebConfig(path, user string) error {
	if path == "" {
		return nil
	}
	if _, err := webconfig.Check(path); err != nil {
		return fmt.Errorf("--web-config as --user %s: %v", user, err)
	}
	return nil
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstwatch/dstwatch/anon"
)

// anon.Parse speaks of modes and key files; the CLI says the same in its
// flags' names, as it did when anon spoke them.
func TestAnonFlagErrors(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, mode, key, want string
	}{
		{"bad truncate", "truncate:/99,/48", "", `--anonymize "truncate:/99,/48": want truncate:/V4BITS,/V6BITS, e.g. truncate:/24,/48`},
		{"key without hash", "truncate", key, "--anonymize-key goes with --anonymize hash"},
		{"hash with an argument", "hash:x", key, `--anonymize "hash:x": hash takes no argument; the key comes from --anonymize-key`},
		{"hash without key", "hash", "", "--anonymize hash needs --anonymize-key FILE (e.g. head -c 32 /dev/urandom > key)"},
		{"unknown mode", "scramble", "", `--anonymize "scramble": want truncate, truncate:/V4BITS,/V6BITS or hash`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := anon.Parse(tc.mode, tc.key)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("anon's own error names a flag: %v", err)
			}
			if got := anonFlagError(err).Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

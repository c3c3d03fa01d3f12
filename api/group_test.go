package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// tz, prefix4 and prefix6 are checked like every other parameter.
func TestGroupParams(t *testing.T) {
	s := New(&fakeSource{ws: sampleWindows()}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h := s.Handler()
	for _, tc := range []struct{ target, want string }{
		{"/v1/aggregate?last=1&by=day&tz=Mars/Olympus", `time zone "Mars/Olympus"`},
		{"/v1/aggregate?last=1&by=day&tz=Local", "IANA name"},
		{"/v1/aggregate?last=1&by=remote&tz=UTC", "tz is for by hour"},
		{"/v1/aggregate?last=1&by=day&tz=UTC&tz=UTC", "given 2 times"},
		{"/v1/aggregate?last=1&by=prefix&prefix4=33", "prefix4"},
		{"/v1/aggregate?last=1&by=prefix&prefix6=0", "prefix6 is for by prefix, from 1 to 128"},
		{"/v1/aggregate?last=1&by=country&prefix4=16", "prefix4 is for by prefix"},
	} {
		code, body := get(t, h, tc.target)
		var e errorJSON
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.target, code, body, tc.want)
		}
	}
	for _, target := range []string{
		"/v1/aggregate?last=2&by=day&tz=Europe/Berlin",
		"/v1/aggregate?last=2&by=prefix&prefix4=16&prefix6=32",
	} {
		if code, body := get(t, h, target); code != http.StatusOK {
			t.Errorf("%s: %d %s", target, code, body)
		}
	}
}

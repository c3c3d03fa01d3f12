package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequest sends arbitrary paths and query strings to the API, as any
// local user allowed on the socket could. Whatever comes in, the server
// answers with a status it documents and a JSON body, and never panics.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		"/v1/windows?from=2026-11-22T13:00:00Z&to=2026-11-22T14:00:00Z",
		"/v1/windows?last=3&remote=198.51.100.0/24&country=DE",
		"/v1/aggregate?by=country&sort=packets&top=2&direction=tx&from=2026-11-22T13:00:00Z&to=2026-11-22T14:00:00Z",
		"/v1/aggregate?by=asn&asn=64500&last=1000000000000",
		"/v1/status",
		"/v1/windows?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
		"/v1/windows?remote=%zz&remote=::/0&remote=1.2.3.4",
		"/v1/aggregate?by=remote&top=-1&top=2",
		"/../v1/status",
	} {
		f.Add(seed)
	}
	s := New(&fakeSource{ws: sampleWindows()}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h := s.Handler()
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") || strings.HasPrefix(target, "/v1/stream") {
			return // not a request line a client can send; the stream never ends by itself
		}
		req, err := http.NewRequest(http.MethodGet, "http://dstwatch"+target, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed,
			http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			t.Fatalf("%s: status %d: %s", target, rec.Code, rec.Body.String())
		}
		if rec.Code == http.StatusOK || rec.Code == http.StatusBadRequest {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s: %d with a body that is not JSON: %q", target, rec.Code, rec.Body.String())
			}
		}
		if rec.Body.Len() > 1<<20 {
			t.Fatalf("%s: a %d-byte answer from five small windows", target, rec.Body.Len())
		}
	})
}

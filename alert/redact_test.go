package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.net/services/T0/B0/S3CRET": "https://hooks.example.net/[redacted]",
		"http://192.0.2.1:8080/hook?token=S3CRET":         "http://192.0.2.1:8080/[redacted]",
		"https://user:S3CRET@hooks.example.net":           "https://hooks.example.net/[redacted]",
		"https://hooks.example.net/":                      "https://hooks.example.net",
		"https://hooks.example.net/[redacted]":            "https://hooks.example.net/[redacted]",
		"https://hooks.example.net/#S3CRET":               "https://hooks.example.net/[redacted]",
		"not a url S3CRET":                                "[redacted URL]",
		"https://[2001:db8::1]:8443/x?S3CRET":             "https://[2001:db8::1]:8443/[redacted]",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A webhook's secret path and query reach the webhook, and nothing else:
// not the log, not alerts.db, not what List and Get answer, not the
// errors of a webhook that fails.
func TestWebhookSecretsRedacted(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/down/S3CRET-C?key=S3CRET-D"
	ln.Close() // nothing listens: the post fails with a connection error naming the URL
	rules := `
rules:
  - name: hook
    metric: rx_pps
    threshold: 1
    expire: 1h
    actions:
      - webhook: ` + srv.URL + `/hook/S3CRET-A?token=S3CRET-B
      - webhook: "` + closed + `"
        retries: 0
`
	rg := newRig(t, rules)
	var logBuf syncBuf
	rg.e.log = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rg.eval(win(0, remote{addr: "192.0.2.1", rxBytes: 1_000_000}))
	if _, err := rg.e.Expire(context.Background(), 1, "test"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 2 || got[0] != "/hook/S3CRET-A?token=S3CRET-B" || got[1] != got[0] {
		t.Errorf("webhook received %q, want the full URL twice (fired, expired)", got)
	}
	mu.Unlock()
	inc, _ := rg.e.Get(1)
	if inc.Actions[1].State != StateFailed || !strings.Contains(inc.Actions[1].Error, "[redacted]") || inc.Plan[0].URL != srv.URL+"/[redacted]" {
		t.Errorf("incident %+v", inc)
	}
	answer, _ := json.Marshal(rg.list())
	rg.crash()
	file, err := os.ReadFile(rg.path)
	if err != nil {
		t.Fatal(err)
	}
	for what, b := range map[string][]byte{"log": []byte(logBuf.String()), "alerts.db": file, "List": answer, "record log": []byte(rg.rec.String())} {
		if bytes.Contains(b, []byte("S3CRET")) {
			t.Errorf("%s holds a webhook secret:\n%s", what, b)
		}
	}
	if !strings.Contains(logBuf.String(), "[redacted]") {
		t.Errorf("the failed webhook's error is not in the log:\n%s", logBuf.String())
	}

	// Once no rule has the URL any more, its expiry is not posted, and the
	// record says why.
	rg.open()
	rg.eval(win(1, remote{addr: "192.0.2.1", rxBytes: 1_000_000}))
	rs, _ := ParseRules([]byte("rules: []\n"))
	rg.e.SetRules(rs)
	inc, err = rg.e.Expire(context.Background(), 2, "test")
	if err != nil || inc.Undo[1].State != StateFailed || !strings.Contains(inc.Undo[1].Error, "no rule in the rules in use has this webhook URL") {
		t.Errorf("%v %+v", err, inc.Undo)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// An incident recorded before URLs were redacted is rewritten when the
// file is opened, and its webhook still finds the full URL in the rules.
func TestOldRecordsRedactedAtOpen(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
	}))
	defer srv.Close()
	full := srv.URL + "/hook/S3CRET-A"
	rg := newRig(t, "rules:\n  - {name: hook, metric: rx_pps, threshold: 1, expire: 1h, actions: [{webhook: \""+full+"\"}]}\n")
	// What an older version wrote: the full URL in the plan and in an error.
	old := &Incident{ID: 1, Rule: "hook", Key: "host", Metric: RxPps, State: Active, Expires: rg.clock.Now().Add(time.Hour),
		Plan:    []Step{{Kind: KindWebhook, URL: full, Timeout: Dur(time.Second)}},
		Actions: []Result{{Step: 0, Kind: KindWebhook, State: StateFailed, Error: `Post "` + full + `": EOF`}}}
	err := rg.e.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx, old); err != nil {
			return err
		}
		return tx.Bucket(bucketActive).Put(activeKey("hook", "host"), idKey(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	rg.crash()
	rg.open()
	var raw []byte
	rg.e.db.View(func(tx *bolt.Tx) error { raw = append(raw, tx.Bucket(bucketIncidents).Get(idKey(1))...); return nil })
	if bytes.Contains(raw, []byte("S3CRET")) || !bytes.Contains(raw, []byte("url_sha256")) {
		t.Errorf("record after open: %s", raw)
	}
	inc, err := rg.e.Expire(context.Background(), 1, "test")
	if err != nil || inc.State != Closed || inc.Undo[0].State != StateDone {
		t.Fatalf("%v %+v", err, inc)
	}
	mu.Lock()
	if len(got) != 1 || got[0] != "/hook/S3CRET-A" {
		t.Errorf("webhook received %q", got)
	}
	mu.Unlock()
}

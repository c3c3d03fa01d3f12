package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// A small client of chromedriver's W3C WebDriver HTTP API: enough to load
// a page in headless Chromium, run a script in it and take a screenshot.

type browser struct {
	t       *testing.T
	base    string // chromedriver's URL
	session string
}

// startBrowser runs chromedriver and opens a headless Chromium session, or
// skips the test when Debian's chromium and chromium-driver are missing.
// Env is added to the environment of chromedriver and so of Chromium.
func startBrowser(t *testing.T, width, height int, env ...string) *browser {
	t.Helper()
	chromium, err1 := exec.LookPath("chromium")
	driver, err2 := exec.LookPath("chromedriver")
	if err1 != nil || err2 != nil {
		netnstest.Unable(t, "needs chromium and chromedriver (apt-get install chromium chromium-driver; scripts/test installs them as root)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(driver, "--port="+strconv.Itoa(port))
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("chromedriver:\n%s", logs.String())
		}
	})
	b := &browser{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if !waitFor(10*time.Second, func() bool {
		r, err := http.Get(b.base + "/status")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == 200
	}) {
		t.Fatal("chromedriver did not start")
	}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	b.call("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
			"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--no-first-run", "--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=%d,%d", width, height),
		}},
	}}}, &sess)
	b.session = sess.SessionID
	t.Cleanup(func() { b.call("DELETE", "", nil, nil) })
	return b
}

// call sends one WebDriver command; path is relative to the session.
func (b *browser) call(method, path string, body, out any) {
	b.t.Helper()
	url := b.base + path
	if b.session != "" {
		url = b.base + "/session/" + b.session + path
	}
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		b.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		b.t.Fatalf("webdriver %s %s: %s: %s", method, path, res.Status, raw)
	}
	if out == nil {
		return
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		b.t.Fatal(err)
	}
	if path == "/session" && b.session == "" {
		if err := json.Unmarshal(env.Value, out); err != nil {
			b.t.Fatal(err)
		}
		return
	}
	if err := json.Unmarshal(env.Value, out); err != nil {
		b.t.Fatalf("webdriver %s: %v in %s", path, err, raw)
	}
}

func (b *browser) navigate(url string) { b.call("POST", "/url", map[string]string{"url": url}, nil) }

// eval runs script (a function body) in the page and decodes its result.
func (b *browser) eval(script string, out any) {
	b.call("POST", "/execute/sync", map[string]any{"script": script, "args": []any{}}, out)
}

// text is the visible text of the element matched by a CSS selector.
func (b *browser) text(selector string) string {
	var el map[string]string
	b.call("POST", "/element", map[string]string{"using": "css selector", "value": selector}, &el)
	var s string
	for _, id := range el {
		b.call("GET", "/element/"+id+"/text", nil, &s)
	}
	return s
}

// waitJS polls a boolean script until it holds.
func (b *browser) waitJS(script string, d time.Duration) bool {
	return waitFor(d, func() bool {
		var ok bool
		b.eval(script, &ok)
		return ok
	})
}

func (b *browser) screenshot() []byte {
	var s string
	b.call("GET", "/screenshot", nil, &s)
	png, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b.t.Fatal(err)
	}
	return png
}

// screenshotsWanted: tests write the README's pictures only when asked.
func screenshotsWanted() bool { return os.Getenv("DSTWATCH_SCREENSHOTS") == "1" }

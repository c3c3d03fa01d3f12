package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/web"
	"github.com/dstwatch/dstwatch/window"
)

// serveWeb serves the dashboard over db on loopback.
func serveWeb(t *testing.T, db *storage.DB, cfg web.Config) *web.Server {
	t.Helper()
	cfg.Addr, cfg.Reader, cfg.Location = "127.0.0.1:0", query.Local(db), time.UTC
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Status = func() (api.Status, error) {
		var st api.Status
		st.Version = "test"
		st.Kernel.Drops = 7
		st.DB.Windows = 288
		return st, nil
	}
	s, err := web.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(s.Close)
	return s
}

// The dashboard in a real headless Chromium shows query's numbers for the
// range it is given, and takes a stored window live from the event stream.
func TestDashboardInBrowser(t *testing.T) {
	path := historyDB(t)
	from := historyStart.Add(7*time.Hour + 45*time.Minute)
	to := historyStart.Add(2*24*time.Hour + 13*time.Hour + 30*time.Minute)
	remotes := queryRows(t, path, "remote", 0, from, to)
	countries := queryRows(t, path, "country", 10, from, to)
	var total window.Counts
	for _, r := range remotes {
		total.Add(r.Counts)
	}
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := serveWeb(t, db, web.Config{})
	b := startBrowser(t, 1280, 2200)
	b.navigate("http://" + srv.Addr().String() + "/?from=" + rfc(from) + "&to=" + rfc(to))
	if !b.waitJS(`return document.body.dataset.loaded === "`+rfc(from)+"/"+rfc(to)+`" && document.getElementById("live").classList.contains("on")`, 20*time.Second) {
		t.Fatalf("the page did not load its view and stream; it shows: %s", b.text("body"))
	}
	var shown struct {
		Tx, Rx    string
		Countries [][3]string
		Map       int
		Drops     string
	}
	b.eval(`const rows = [...document.querySelectorAll("#countries tr")].slice(1).map(tr => [tr.cells[0].textContent, tr.cells[1].dataset.exact, tr.cells[2].dataset.exact]);
		return {Tx: document.getElementById("tx-bytes").dataset.exact, Rx: document.getElementById("rx-bytes").dataset.exact,
			Countries: rows, Map: document.querySelectorAll("#map svg g[data-cc]").length, Drops: document.getElementById("drops").dataset.drops};`, &shown)
	if shown.Tx != strconv.FormatUint(total.TxBytes, 10) || shown.Rx != strconv.FormatUint(total.RxBytes, 10) {
		t.Errorf("page totals tx %s rx %s; query %d %d", shown.Tx, shown.Rx, total.TxBytes, total.RxBytes)
	}
	if len(shown.Countries) != len(countries) {
		t.Fatalf("page shows %d countries, query %d", len(shown.Countries), len(countries))
	}
	for i, c := range countries {
		name := c.Key
		if c.IsOther() {
			name = "other"
		} else if name == "" {
			name = "--"
		}
		want := [3]string{name, strconv.FormatUint(c.TxBytes, 10), strconv.FormatUint(c.RxBytes, 10)}
		if shown.Countries[i] != want {
			t.Errorf("country row %d: page %v, query %v", i, shown.Countries[i], want)
		}
	}
	if shown.Map < 150 || shown.Drops != "7" {
		t.Errorf("map tiles %d, drops %q", shown.Map, shown.Drops)
	}
	if txt := b.text("#tx-bytes"); !strings.Contains(txt, "iB") {
		t.Errorf("human total %q", txt)
	}

	// A window stored now reaches the page over the event stream.
	w := &window.Window{Start: time.Now().Truncate(time.Minute), Length: 20 * time.Second, Remotes: []window.Remote{
		{Addr: netip.MustParseAddr("192.0.2.9"), Country: "US", Counts: window.Counts{TxPackets: 3, TxBytes: 123456, RxPackets: 2, RxBytes: 7890}},
	}}
	srv.Publish(w)
	if !b.waitJS(`return document.getElementById("cur-tx").dataset.exact === "123456" && document.getElementById("cur-rx").dataset.exact === "7890"`, 10*time.Second) {
		t.Errorf("the published window did not show: %s", b.text(".current"))
	}
	// Its time reads like the page's other times and the CLI's: 24-hour,
	// in the daemon's zone, whatever the browser's locale says.
	if got, want := b.text("#cur-window"), w.Start.UTC().Format("2006-01-02 15:04:05 UTC")+" +20s"; got != want {
		t.Errorf("the current window's time shows %q, want %q", got, want)
	}
	pic := b.screenshot()
	if _, err := png.Decode(bytes.NewReader(pic)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if screenshotsWanted() {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), pic, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDashboardAuth(t *testing.T) {
	_, err := web.Listen(web.Config{Addr: "0.0.0.0:0"})
	if err != web.ErrNeedsAuth {
		t.Errorf("non-loopback without auth: %v", err)
	}
	if code, _, stderr := runCmd(t, "run", "--read", "x.pcap", "--local", "198.51.100.1", "--web", "0.0.0.0:9751"); code != 2 || !strings.Contains(stderr, "needs --web-token-file") {
		t.Errorf("run --web 0.0.0.0 without auth: exit %d %s", code, stderr)
	}
	db, err := storage.Open(filepath.Join(t.TempDir(), "a.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	get := func(url string, h map[string]string) int {
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	s := serveWeb(t, db, web.Config{Token: "0123456789abcdef"})
	base := "http://" + s.Addr().String()
	if c := get(base+"/api/view", nil); c != 401 {
		t.Errorf("no token: %d", c)
	}
	if c := get(base+"/api/view", map[string]string{"Authorization": "Bearer 0123456789abcdef"}); c != 200 {
		t.Errorf("bearer: %d", c)
	}
	if c := get(base+"/?token=0123456789abcdef", nil); c != 200 {
		t.Errorf("?token: %d", c)
	}
	s = serveWeb(t, db, web.Config{User: "ops", Password: "correct horse"})
	base = "http://" + s.Addr().String()
	req, _ := http.NewRequest("GET", base+"/api/status", nil)
	req.SetBasicAuth("ops", "correct horse")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Errorf("basic auth: %v %v", err, res)
	}
	if c := get(base+"/api/status", nil); c != 401 {
		t.Errorf("no basic auth: %d", c)
	}
}

// The daemon serves the dashboard with --web: its view equals query's,
// and its event stream carries the windows it stores.
func TestLiveDashboard(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	port := freePort(t, p.A)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--window", "1s", "--web", addr)
	defer d.stop(t)
	hc := nsClient(p.A)
	hc.Timeout = 0
	res, err := hc.Get("http://" + addr + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sink(t, p.A, netnstest.A4)
	send(t, p.B, netnstest.B4, netnstest.A4, 40, 72) // rx, IP length 100
	sc := bufio.NewScanner(res.Body)
	var got uint64
	deadline := time.AfterFunc(10*time.Second, func() { res.Body.Close() })
	defer deadline.Stop()
	for got < 40*100 && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev web.WindowEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			got += ev.RxBytes
		}
	}
	if got != 40*100 {
		t.Fatalf("the event stream carried %d bytes received, want %d", got, 40*100)
	}
	to := time.Now().Truncate(time.Second).Add(time.Second)
	from := to.Add(-time.Minute)
	v := struct {
		Total     query.CountsJSON `json:"total"`
		Countries []web.RowJSON    `json:"countries"`
	}{}
	r2, err := hc.Get("http://" + addr + "/api/view?from=" + rfc(from) + "&to=" + rfc(to))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(r2.Body).Decode(&v)
	r2.Body.Close()
	rows := queryRows(t, db, "remote", 0, from, to)
	var want window.Counts
	for _, r := range rows {
		want.Add(r.Counts)
	}
	if v.Total != query.ToCounts(want) || v.Total.RxBytes != 4000 {
		t.Errorf("dashboard total %+v, query %+v", v.Total, want)
	}
}

// Without auth the dashboard answers only requests that call it by a
// loopback name: a page elsewhere whose host name resolves to 127.0.0.1
// (DNS rebinding) gets 421, not the data. With a token, the cookie it
// sets is not the token, and the token itself is no cookie.
func TestDashboardHostCheckAndCookie(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "a.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	do := func(url, host string, cookie *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		res, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	s := serveWeb(t, db, web.Config{})
	_, port, _ := net.SplitHostPort(s.Addr().String())
	base := "http://" + s.Addr().String()
	for host, want := range map[string]int{
		"": 200, "localhost:" + port: 200, "localhost": 200, "LOCALHOST.:" + port: 200, "127.0.0.1:" + port: 200, "127.0.0.2": 200, "[::1]:" + port: 200,
		"rebind.example:" + port: 421, "rebind.example": 421, "localhost.rebind.example": 421, "198.51.100.7:" + port: 421,
	} {
		for _, path := range []string{"/api/status", "/", "/api/events"} {
			if path == "/api/events" && want == 200 {
				continue // a stream: it answers and stays open
			}
			if c := do(base+path, host, nil).StatusCode; c != want {
				t.Errorf("Host %q %s: %d, want %d", host, path, c, want)
			}
		}
	}

	const token = "0123456789abcdef"
	s = serveWeb(t, db, web.Config{Token: token})
	base = "http://" + s.Addr().String()
	res := do(base+"/?token="+token, "", nil)
	if res.StatusCode != 200 || len(res.Cookies()) != 1 {
		t.Fatalf("?token: %d cookies %v", res.StatusCode, res.Cookies())
	}
	c := res.Cookies()[0]
	if strings.Contains(c.Value, token) || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v holds the token or is not HttpOnly and SameSite=Strict", c)
	}
	if code := do(base+"/api/status", "", c).StatusCode; code != 200 {
		t.Errorf("with the session cookie: %d", code)
	}
	if code := do(base+"/api/status", "", &http.Cookie{Name: c.Name, Value: token}).StatusCode; code != 401 {
		t.Errorf("the raw token as the cookie: %d, want 401", code)
	}
	forged := []byte(c.Value)
	forged[0] ^= 1
	if code := do(base+"/api/status", "", &http.Cookie{Name: c.Name, Value: string(forged)}).StatusCode; code != 401 {
		t.Errorf("a forged cookie: %d, want 401", code)
	}
}

package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
	"github.com/dstwatch/dstwatch/internal/tlstest"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/web"
	"golang.org/x/crypto/bcrypt"
)

// newPKI writes a fresh CA, server and client certificates into a temp dir.
func newPKI(t *testing.T) *tlstest.PKI {
	t.Helper()
	pki, err := tlstest.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return pki
}

// webConfigFile writes an exporter-toolkit web config: TLS with the test
// server certificate, plus more (YAML under the top level).
func webConfigFile(t *testing.T, path string, pki *tlstest.PKI, more string) {
	t.Helper()
	s := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", pki.ServerCert, pki.ServerKey) + more
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// usersYAML is a basic_auth_users block with bcrypt hashes of the passwords.
func usersYAML(t *testing.T, userPw ...string) string {
	t.Helper()
	s := "basic_auth_users:\n"
	for i := 0; i < len(userPw); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(userPw[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		s += fmt.Sprintf("  %s: %s\n", userPw[i], h)
	}
	return s
}

// A bad --web-config is one line and exit 2 before anything is created;
// a good one's users or client certificates count as auth beyond loopback.
func TestWebConfigFlags(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "state", "d.db")
	tlsOnly, users, certs, bad := filepath.Join(dir, "tls.yml"), filepath.Join(dir, "users.yml"), filepath.Join(dir, "certs.yml"), filepath.Join(dir, "bad.yml")
	webConfigFile(t, tlsOnly, pki, "")
	webConfigFile(t, users, pki, usersYAML(t, "ops", "correct horse"))
	webConfigFile(t, certs, pki, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: "+pki.CA+"\n")
	webConfigFile(t, bad, pki, "  bogus: 1\n")
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("correct horse"), 0o600)
	base := []string{"run", "--db", db, "--read", filepath.Join(dir, "none.pcap"), "--local", "198.51.100.1"}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing file", []string{"--metrics", "127.0.0.1:9750", "--web-config", filepath.Join(dir, "nope.yml")}, 2, "--web-config: " + filepath.Join(dir, "nope.yml") + ": no such file or directory"},
		{"invalid file", []string{"--web", "127.0.0.1:9751", "--web-config", bad}, 2, "--web-config: yaml: unmarshal errors: line 4: field bogus not found in type web.TLSConfig"},
		{"no listener", []string{"--web-config", tlsOnly}, 2, "--web-config needs --metrics or --web"},
		{"tls is no auth", []string{"--web", "0.0.0.0:9751", "--web-config", tlsOnly}, 2, "needs --web-token-file"},
		{"two basic auths", []string{"--web", "127.0.0.1:9751", "--web-config", users, "--web-user", "ops", "--web-password-file", pwFile}, 2, "both want the Authorization header"},
		// These pass the checks and fail at the capture file, which New
		// opens before it binds any port.
		{"users are auth", []string{"--web", "0.0.0.0:9751", "--web-config", users}, 1, "none.pcap"},
		{"client certs are auth", []string{"--web", "0.0.0.0:9751", "--metrics", "127.0.0.1:9750", "--web-config", certs}, 1, "none.pcap"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, append(base, c.args...)...)
			if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line with %q", code, stderr, c.code, c.want)
			}
			if _, err := os.Stat(filepath.Dir(db)); !os.IsNotExist(err) {
				t.Errorf("the state directory exists after a refused start: %v", err)
			}
		})
	}
}

// targetHealth is Prometheus's view of each job's target: health and the
// last scrape's error.
func (p *prometheus) targetHealth(t *testing.T) map[string][2]string {
	t.Helper()
	var data struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	p.get(t, "/api/v1/targets", &data)
	out := map[string][2]string{}
	for _, tg := range data.ActiveTargets {
		out[tg.Labels["job"]] = [2]string{tg.Health, tg.LastError}
	}
	return out
}

// A real Prometheus scrapes --metrics over TLS with basic auth from the
// web config; scrapes over plain HTTP, with a wrong password or without
// the CA fail. The password is read again for every request: after the
// file changes, the next scrape needs the new one.
func TestLiveMetricsTLSPrometheus(t *testing.T) {
	t.Parallel() // in namespaces of its own, with a Prometheus of its own
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		netnstest.Unable(t, "needs Prometheus: apt-get install prometheus (scripts/test installs it when run as root)")
	}
	rules, err := filepath.Abs("../../packaging/prometheus/dstwatch-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := netnstest.New(t)
	pki := newPKI(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "web.yml")
	webConfigFile(t, conf, pki, usersYAML(t, "prometheus", "first secret"))
	pw := func(name, s string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	first, second, wrong := pw("first", "first secret"), pw("second", "second secret"), pw("wrong", "not the secret")
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t, p.A))
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", filepath.Join(dir, "live.db"), "--window", "1s",
		"--metrics", target, "--web-config", conf)
	defer d.stop(t)
	job := func(name, tlsConfig, passwordFile string) string {
		return fmt.Sprintf(`  - job_name: %s
    scheme: https
    tls_config: {%s}
    basic_auth: {username: prometheus, password_file: %q}
    static_configs:
      - targets: [%q]
`, name, tlsConfig, passwordFile, target)
	}
	ca := fmt.Sprintf("ca_file: %q", pki.CA)
	// Job "dstwatch" scrapes the same target over plain HTTP.
	prom := startPrometheus(t, promBin, p.A, target, rules,
		job("first", ca, first), job("second", ca, second), job("wrong", ca, wrong), job("noca", "", first))

	expect := func(up, down []string, errs map[string]string) {
		t.Helper()
		var got map[string][2]string
		if !waitFor(20*time.Second, func() bool {
			got = prom.targetHealth(t)
			for _, j := range up {
				if got[j][0] != "up" {
					return false
				}
			}
			for _, j := range down {
				if got[j][0] != "down" || !strings.Contains(got[j][1], errs[j]) {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("targets %v; want %v up and %v down with %v", got, up, down, errs)
		}
	}
	expect([]string{"first"}, []string{"dstwatch", "second", "wrong", "noca"}, map[string]string{
		"dstwatch": "400 Bad Request", "second": "401 Unauthorized", "wrong": "401 Unauthorized", "noca": "certificate signed by unknown authority"})
	series := prom.sums(t, `count by (job) ({__name__=~"dstwatch_.+"})`, "job")
	if len(series) != 1 || series["first"] < 20 {
		t.Errorf("dstwatch series by job %v; want only job first, with its series", series)
	}
	if v := prom.sums(t, `dstwatch_build_info{job="first"}`); v[""] != 1 {
		t.Errorf("dstwatch_build_info over TLS: %v", v)
	}

	// The password changes in the file: the very next request needs the
	// new one, without a restart or a signal.
	ct, _ := pki.Client(false)
	hc := nsClient(p.A)
	hc.Transport.(*http.Transport).TLSClientConfig = ct
	status := func(pw string) int {
		req, _ := http.NewRequest("GET", "https://"+target+"/metrics", nil)
		req.SetBasicAuth("prometheus", pw)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := status("first secret"); c != 200 {
		t.Fatalf("before the change: %d", c)
	}
	webConfigFile(t, conf, pki, usersYAML(t, "prometheus", "second secret"))
	if a, b := status("first secret"), status("second secret"); a != 401 || b != 200 {
		t.Errorf("right after the change: old password %d, new %d; want 401 and 200", a, b)
	}
	expect([]string{"second"}, []string{"first", "wrong"}, map[string]string{"first": "401 Unauthorized", "wrong": "401 Unauthorized"})
}

// The daemon's dashboard over HTTPS with client certificates from the web
// config: they are its auth, so it may listen beyond loopback without a
// token and answers any Host; a connection without a certificate the
// client CA signed gets no answer at all.
func TestLiveDashboardTLSClientCert(t *testing.T) {
	p := netnstest.New(t)
	pki := newPKI(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "web.yml")
	webConfigFile(t, conf, pki, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: "+pki.CA+"\n")
	port := freePort(t, p.A)
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", filepath.Join(dir, "live.db"), "--window", "1s",
		"--web", "0.0.0.0:"+strconv.Itoa(port), "--web-config", conf)
	defer d.stop(t)
	if want := "addr=https://[::]:" + strconv.Itoa(port) + "/"; !strings.Contains(d.stderr.String(), want) {
		t.Errorf("daemon log does not say %s:\n%s", want, d.stderr.String())
	}
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/api/status"
	do := func(cfg *tls.Config, url, host string) (int, error) {
		hc := nsClient(p.A)
		hc.Transport.(*http.Transport).TLSClientConfig = cfg
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		res, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	with, _ := pki.Client(true)
	without, _ := pki.Client(false)
	other, _ := pki.Client(false)
	cert, err := tls.LoadX509KeyPair(pki.OtherCert, pki.OtherKey)
	if err != nil {
		t.Fatal(err)
	}
	other.Certificates = []tls.Certificate{cert}
	if c, err := do(with, url, ""); c != 200 {
		t.Errorf("with the client certificate: %d %v", c, err)
	}
	if c, err := do(with, url, "dashboard.example:443"); c != 200 {
		t.Errorf("with the client certificate, called by another name: %d %v, want 200 (no 421: it has auth)", c, err)
	}
	if c, err := do(without, url, ""); err == nil {
		t.Errorf("without a client certificate: %d, want no answer", c)
	}
	if c, err := do(other, url, ""); err == nil {
		t.Errorf("with a certificate from another CA: %d, want no answer", c)
	}
	if c, err := do(nil, "http://127.0.0.1:"+strconv.Itoa(port)+"/api/status", ""); c != 400 {
		t.Errorf("plain HTTP: %d %v, want 400", c, err)
	}
}

// trustCA makes an NSS database under a HOME of its own that trusts the
// CA, as Chromium on Linux reads it ($HOME/.pki/nssdb), and returns the
// environment that points Chromium at it.
func trustCA(t *testing.T, ca string) []string {
	t.Helper()
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		netnstest.Unable(t, "needs certutil to trust the test CA in Chromium: apt-get install libnss3-tools (scripts/test installs it as root)")
	}
	home := t.TempDir()
	nss := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nss, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + nss, "--empty-password"},
		{"-A", "-d", "sql:" + nss, "-t", "C,,", "-n", "dstwatch test CA", "-i", ca},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v: %s", args, err, out)
		}
	}
	return []string{"HOME=" + home}
}

// The dashboard over HTTPS in a real Chromium that trusts the test CA (no
// certificate errors ignored): the page loads its view and its event
// stream. A Chromium that does not trust the CA does not get the page.
func TestDashboardInBrowserTLS(t *testing.T) {
	path := historyDB(t)
	from := historyStart.Add(7 * time.Hour)
	to := historyStart.Add(31 * time.Hour)
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pki := newPKI(t)
	conf := filepath.Join(t.TempDir(), "web.yml")
	webConfigFile(t, conf, pki, "")
	srv := serveWeb(t, db, web.Config{WebConfig: conf})
	page := "https://localhost:" + strings.TrimPrefix(srv.Addr().String(), "127.0.0.1:") + "/?from=" + rfc(from) + "&to=" + rfc(to)
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Errorf("URL %s", srv.URL())
	}
	loaded := `return document.body.dataset.loaded === "` + rfc(from) + "/" + rfc(to) + `" && document.getElementById("live").classList.contains("on")`

	b := startBrowser(t, 1280, 1200, trustCA(t, pki.CA)...)
	b.navigate(page)
	if !b.waitJS(loaded, 20*time.Second) {
		t.Fatalf("the page did not load its view and stream over HTTPS; it shows: %s", b.text("body"))
	}
	var sec struct {
		Protocol string
		Secure   bool
	}
	b.eval(`return {Protocol: location.protocol, Secure: window.isSecureContext}`, &sec)
	if sec.Protocol != "https:" || !sec.Secure {
		t.Errorf("page protocol %q, secure context %v", sec.Protocol, sec.Secure)
	}

	untrusting := startBrowser(t, 800, 600)
	untrusting.navigate(page)
	var got string
	untrusting.eval(`return document.body.dataset.loaded || ""`, &got)
	if txt := untrusting.text("body"); got != "" || !strings.Contains(txt, "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("a browser without the CA: loaded %q, shows %q; want Chromium's certificate error", got, txt)
	}
}

// The toolkit reads the web config and its keys on every connection, as
// the --user the daemon dropped to: a key only root may read is refused at
// start, not left to fail every handshake.
func TestWebConfigReadableAfterUser(t *testing.T) {
	p := netnstest.New(t)
	dir := stateDir(t)
	tlsDir := filepath.Join(filepath.Dir(dir), "tls")
	if err := os.Mkdir(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pki, err := tlstest.New(tlsDir) // files 0600 root
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(tlsDir, "web.yml")
	webConfigFile(t, conf, pki, "")
	os.Chmod(conf, 0o644)
	db := filepath.Join(dir, "d.db")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, p.A))
	args := []string{"run", "-i", p.IfA, "--db", db, "--window", "1s", "--metrics", addr, "--web-config", conf, "--user", "nobody"}
	cmd := netnstest.Command(p.A, binary(t), args...)
	// A daemon that does not refuse would run on: give it ten seconds.
	timer := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
	out, err := cmd.CombinedOutput()
	timer.Stop()
	want := "dstwatch run: --web-config as --user nobody: failed to read cert_file (" + pki.ServerCert + "): open " + pki.ServerCert + ": permission denied\n"
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.HasSuffix(string(out), want) {
		t.Fatalf("exit %d (%v), output:\n%s\nwant exit 1 ending in %q", code, err, out, want)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("the database is left after the refused start: %v", err)
	}
	for _, f := range []string{pki.ServerCert, pki.ServerKey} {
		if err := os.Chown(f, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, p.A, args[1:]...)
	defer d.stop(t)
	ct, _ := pki.Client(false)
	hc := nsClient(p.A)
	hc.Transport.(*http.Transport).TLSClientConfig = ct
	res, err := hc.Get("https://" + addr + "/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metrics over TLS as nobody: %v %v", err, res)
	}
	res.Body.Close()
}

// A dashboard token beside a web config's users: the toolkit takes the
// Authorization header for basic auth, so the token comes as ?token= once
// and then as the cookie; Bearer alone is refused.
func TestDashboardTokenWithWebConfigUsers(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "a.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pki := newPKI(t)
	conf := filepath.Join(t.TempDir(), "web.yml")
	webConfigFile(t, conf, pki, usersYAML(t, "ops", "correct horse"))
	const token = "0123456789abcdef"
	srv := serveWeb(t, db, web.Config{WebConfig: conf, Token: token})
	ct, _ := pki.Client(false)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ct}}
	base := "https://" + srv.Addr().String()
	do := func(path string, basic bool, h map[string]string, c *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if basic {
			req.SetBasicAuth("ops", "correct horse")
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if c != nil {
			req.AddCookie(c)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if c := do("/api/status", false, map[string]string{"Authorization": "Bearer " + token}, nil).StatusCode; c != 401 {
		t.Errorf("Bearer without basic auth: %d, want 401", c)
	}
	if c := do("/api/status", true, nil, nil).StatusCode; c != 401 {
		t.Errorf("basic auth without the token: %d, want 401", c)
	}
	res := do("/?token="+token, true, nil, nil)
	if res.StatusCode != 200 || len(res.Cookies()) != 1 {
		t.Fatalf("basic auth and ?token: %d, cookies %v", res.StatusCode, res.Cookies())
	}
	if c := do("/api/status", true, nil, res.Cookies()[0]).StatusCode; c != 200 {
		t.Errorf("basic auth and the cookie: %d, want 200", c)
	}
	if c := do("/api/status", false, nil, res.Cookies()[0]).StatusCode; c != 401 {
		t.Errorf("the cookie without basic auth: %d, want 401", c)
	}
}

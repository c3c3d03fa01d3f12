package webconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/tlstest"
	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlstest.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	tlsPart := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", pki.ServerCert, pki.ServerKey)
	for _, c := range []struct {
		name, file string
		want       Info
		err        string // "" wants none
	}{
		{"tls only", tlsPart, Info{TLS: true}, ""},
		{"relative paths", "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n", Info{TLS: true}, ""},
		{"users without tls", "basic_auth_users:\n  ops: " + hash(t, "pw") + "\n", Info{Users: true}, ""},
		{"client certs", tlsPart + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: " + pki.CA + "\n", Info{TLS: true, ClientCerts: true}, ""},
		{"unverified client certs are no auth", tlsPart + "  client_auth_type: RequireAnyClientCert\n", Info{TLS: true}, ""},
		{"empty", "", Info{}, ""},
		{"unknown key", "tls_server_config:\n  cert: x\n  bogus: 1\nother: 2\n", Info{}, "field bogus not found"},
		{"not yaml", "\t{{", Info{}, "yaml"},
		{"cleartext password", "basic_auth_users:\n  ops: secret\n", Info{}, "hashedSecret too short"},
		{"missing key file", "tls_server_config:\n  cert_file: " + pki.ServerCert + "\n  key_file: " + filepath.Join(dir, "nope.pem") + "\n", Info{}, "nope.pem"},
		{"key does not match", "tls_server_config:\n  cert_file: " + pki.ServerCert + "\n  key_file: " + pki.ClientKey + "\n", Info{}, "X509KeyPair"},
		{"client ca without a policy", tlsPart + "  client_ca_file: " + pki.CA + "\n", Info{}, "Client Auth Policy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "web.yml")
			write(t, path, c.file)
			got, err := Check(path)
			if c.err == "" {
				if err != nil || got != c.want {
					t.Fatalf("got %+v %v, want %+v", got, err, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line with %q", err, c.err)
			}
		})
	}
	_, err = Check(filepath.Join(dir, "missing.yml"))
	if err == nil || err.Error() != filepath.Join(dir, "missing.yml")+": no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v is not ErrNotExist", err)
	}
}

// serve serves a handler that says ok on loopback as the file at path says.
func serve(t *testing.T, path string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	done := make(chan error, 1)
	go func() { done <- Serve(ln, srv, path, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// get asks url with basic auth user:pw (none if user is "") and says the
// status, or the error.
func get(c *http.Client, url, user, pw string) string {
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	res, err := c.Do(req)
	if err != nil {
		return "error"
	}
	res.Body.Close()
	return res.Status
}

// TLS and basic auth as the file says; the users are read again for each
// request, so a changed password counts from the next one, on the same
// connection too.
func TestServeTLSBasicAuthReload(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlstest.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web.yml")
	conf := func(pw string) string {
		return fmt.Sprintf("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\nbasic_auth_users:\n  prometheus: %s\n", hash(t, pw))
	}
	write(t, path, conf("first secret"))
	addr := serve(t, path)
	ct, _ := pki.Client(false)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ct}}
	url := "https://" + addr + "/"
	for _, tc := range []struct{ user, pw, want string }{
		{"prometheus", "first secret", "200 OK"},
		{"prometheus", "wrong", "401 Unauthorized"},
		{"", "", "401 Unauthorized"},
		{"nobody", "first secret", "401 Unauthorized"},
	} {
		if got := get(c, url, tc.user, tc.pw); got != tc.want {
			t.Errorf("%s:%s: %s, want %s", tc.user, tc.pw, got, tc.want)
		}
	}
	if got := get(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/", "prometheus", "first secret"); got != "400 Bad Request" {
		t.Errorf("plain HTTP: %s, want 400 Bad Request", got)
	}
	write(t, path, conf("second secret"))
	if got := get(c, url, "prometheus", "first secret"); got != "401 Unauthorized" {
		t.Errorf("old password after the change: %s", got)
	}
	if got := get(c, url, "prometheus", "second secret"); got != "200 OK" {
		t.Errorf("new password after the change: %s", got)
	}
	// A client that does not trust the CA does not get through either.
	if got := get(&http.Client{Timeout: 5 * time.Second}, url, "prometheus", "second secret"); got != "error" {
		t.Errorf("client without the CA: %s", got)
	}
}

// With client_auth_type RequireAndVerifyClientCert only a certificate the
// client CA signed gets a connection; the policy is read per connection.
func TestServeClientCerts(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlstest.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web.yml")
	tlsPart := "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n"
	write(t, path, tlsPart+"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n")
	addr := serve(t, path)
	url := "https://" + addr + "/"
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	}
	with, _ := pki.Client(true)
	without, _ := pki.Client(false)
	other, _ := pki.Client(false)
	cert, err := tls.LoadX509KeyPair(pki.OtherCert, pki.OtherKey)
	if err != nil {
		t.Fatal(err)
	}
	other.Certificates = []tls.Certificate{cert}
	if got := get(client(with), url, "", ""); got != "200 OK" {
		t.Errorf("with the client certificate: %s", got)
	}
	if got := get(client(without), url, "", ""); got != "error" {
		t.Errorf("without a client certificate: %s", got)
	}
	if got := get(client(other), url, "", ""); got != "error" {
		t.Errorf("with a certificate from another CA: %s", got)
	}
	// The file changes: the next connection goes by the new policy.
	write(t, path, tlsPart)
	if got := get(client(without), url, "", ""); got != "200 OK" {
		t.Errorf("without a client certificate once the file no longer asks for one: %s", got)
	}
}

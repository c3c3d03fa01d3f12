package report

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// backend is a real go-smtp server's backend that keeps what it receives.
type backend struct {
	mu   sync.Mutex
	msgs []string
	tls  []bool
	auth []string
}

type session struct {
	be   *backend
	conn *smtp.Conn
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{be: b, conn: c}, nil
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "u" || pass != "pw" {
			return errors.New("bad credentials")
		}
		s.be.mu.Lock()
		defer s.be.mu.Unlock()
		s.be.auth = append(s.be.auth, user)
		return nil
	}), nil
}
func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	s.be.msgs, s.be.tls = append(s.be.msgs, string(b)), append(s.be.tls, isTLS)
	return nil
}
func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// testCert is a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "report test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// serve starts a go-smtp server on loopback: implicit TLS (as on port
// 465), STARTTLS offered, or plain.
func serve(t *testing.T, mode string, cert tls.Certificate) (*backend, string) {
	t.Helper()
	be := &backend{}
	srv := smtp.NewServer(be)
	srv.Domain = "127.0.0.1"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	var ln net.Listener
	var err error
	switch mode {
	case "implicit":
		ln, err = tls.Listen("tcp", "127.0.0.1:0", cfg)
	case "starttls":
		srv.TLSConfig = cfg
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	default:
		srv.AllowInsecureAuth = true // so that only the client can refuse
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return be, ln.Addr().String()
}

func TestMailSend(t *testing.T) {
	t.Parallel()
	cert, pool := testCert(t)
	msg := Message("dstwatch@example.org", []string{"ops@example.org"}, "a report", "text/plain", []byte("hello\n"), time.Now())
	for _, tc := range []struct {
		name     string
		mode     string
		mail     Mail
		wantTLS  bool
		wantAuth bool
		wantErr  string
		noTrust  bool
	}{
		{name: "implicit TLS", mode: "implicit", mail: Mail{ImplicitTLS: true, User: "u", Password: "pw"}, wantTLS: true, wantAuth: true},
		{name: "implicit TLS untrusted", mode: "implicit", mail: Mail{ImplicitTLS: true}, noTrust: true, wantErr: "TLS"},
		{name: "implicit TLS to a plain server", mode: "plain", mail: Mail{ImplicitTLS: true, Timeout: 2 * time.Second}, wantErr: "TLS"},
		{name: "STARTTLS", mode: "starttls", mail: Mail{User: "u", Password: "pw"}, wantTLS: true, wantAuth: true},
		{name: "STARTTLS untrusted", mode: "starttls", mail: Mail{}, noTrust: true, wantErr: "STARTTLS"},
		{name: "no STARTTLS refused", mode: "plain", mail: Mail{}, wantErr: "does not offer STARTTLS"},
		{name: "no STARTTLS allowed", mode: "plain", mail: Mail{Insecure: true}},
		{name: "no password in clear", mode: "plain", mail: Mail{Insecure: true, User: "u", Password: "pw"}, wantErr: "without TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be, addr := serve(t, tc.mode, cert)
			m := tc.mail
			m.Server, m.From, m.To = addr, "dstwatch@example.org", []string{"ops@example.org"}
			if !tc.noTrust {
				m.TLS = &tls.Config{RootCAs: pool}
			}
			err := m.Send(msg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				be.mu.Lock()
				defer be.mu.Unlock()
				if len(be.msgs) != 0 || len(be.auth) != 0 {
					t.Errorf("the server received %d messages and %d logins after a refusal", len(be.msgs), len(be.auth))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			if len(be.msgs) != 1 || be.tls[0] != tc.wantTLS || (len(be.auth) == 1) != tc.wantAuth {
				t.Fatalf("received %d messages, tls %v, auth %v", len(be.msgs), be.tls, be.auth)
			}
			if be.msgs[0] != string(msg) {
				t.Errorf("received\n%q\nsent\n%q", be.msgs[0], msg)
			}
		})
	}
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ids := map[string]bool{}
	for range 2 {
		m, err := mail.ReadMessage(strings.NewReader(string(Message("dstwatch@example.org", []string{"a@example.org"}, "s", "text/plain", []byte("x"), now))))
		if err != nil {
			t.Fatal(err)
		}
		id := m.Header.Get("Message-ID")
		if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.org>") {
			t.Errorf("Message-ID %q, want <...@example.org>", id)
		}
		ids[id] = true
	}
	if len(ids) != 2 {
		t.Errorf("two messages at the same time share a Message-ID: %v", ids)
	}
}

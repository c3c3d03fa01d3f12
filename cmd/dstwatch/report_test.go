package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/dstwatch/dstwatch/query"
)

// htmlRows reads a report table's rows: name and exact tx and rx bytes.
func htmlRows(t *testing.T, page, id string) [][3]string {
	t.Helper()
	i := strings.Index(page, `<table id="`+id+`">`)
	if i < 0 {
		t.Fatalf("no table %s in the report", id)
	}
	tbl := page[i:]
	tbl = tbl[:strings.Index(tbl, "</table>")]
	re := regexp.MustCompile(`<tr><td class="l">([^<]*)</td>.*?<td data-exact="(\d+)">[^<]*</td><td data-exact="(\d+)">`)
	var out [][3]string
	for _, m := range re.FindAllStringSubmatch(tbl, -1) {
		out = append(out, [3]string{m[1], m[2], m[3]})
	}
	return out
}

func queryRows(t *testing.T, db, by string, top int, from, to time.Time) []query.Row {
	t.Helper()
	code, out, stderr := runCmd(t, "query", "--db", db, "--by", by, "--format", "json", "--top", strconv.Itoa(top), "--from", rfc(from), "--to", rfc(to))
	if code != 0 {
		t.Fatalf("query: %s", stderr)
	}
	rows, err := query.RowsFromJSON([]byte(out), query.By(by))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// The report's totals and top rows are query's over the same range, in
// text and HTML, read from the file and from a daemon's API.
func TestReportEqualsQuery(t *testing.T) {
	db := historyDB(t)
	from := historyStart.Add(-2 * time.Hour) // two hours before the first window: a gap
	to := historyStart.Add(2*24*time.Hour + 13*time.Hour + 30*time.Minute)
	check := func(t *testing.T) {
		all := queryRows(t, db, "remote", 0, from, to)
		var tx, rx, txp, rxp uint64
		for _, r := range all {
			tx, rx, txp, rxp = tx+r.TxBytes, rx+r.RxBytes, txp+r.TxPackets, rxp+r.RxPackets
		}
		code, text, stderr := runCmd(t, "report", "--db", db, "--utc", "--from", rfc(from), "--to", rfc(to))
		if code != 0 {
			t.Fatal(stderr)
		}
		exact := "Exact:    tx_bytes=" + strconv.FormatUint(tx, 10) + " tx_packets=" + strconv.FormatUint(txp, 10) +
			" rx_bytes=" + strconv.FormatUint(rx, 10) + " rx_packets=" + strconv.FormatUint(rxp, 10) + "\n"
		if !strings.Contains(text, exact) {
			t.Errorf("text report lacks %q:\n%s", exact, text)
		}
		for _, want := range []string{
			"dstwatch report 2026-02-28 22:00 UTC to 2026-03-03 13:30 UTC\n",
			"- the kernel dropped 55 frames in 3 windows or rollups; the counts miss them\n",
			"- 1 gaps without windows (the daemon was not running), 2h0m in all\n",
			"  gap 2026-02-28 22:00:00 to 2026-03-01 00:00:00 UTC (2h0m)\n",
			"Top countries", "Top ASes", "Busiest windows",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("text report lacks %q:\n%s", want, text)
			}
		}
		code, page, stderr := runCmd(t, "report", "--db", db, "--utc", "--format", "html", "--from", rfc(from), "--to", rfc(to))
		if code != 0 {
			t.Fatal(stderr)
		}
		if !strings.Contains(page, `id="tx-bytes" data-exact="`+strconv.FormatUint(tx, 10)+`"`) ||
			!strings.Contains(page, `id="rx-bytes" data-exact="`+strconv.FormatUint(rx, 10)+`"`) {
			t.Errorf("html totals differ from query's %d/%d", tx, rx)
		}
		for _, by := range []string{"remote", "country", "asn"} {
			want := queryRows(t, db, by, 10, from, to)
			got := htmlRows(t, page, map[string]string{"remote": "remotes", "country": "countries", "asn": "asns"}[by])
			if len(got) != len(want) {
				t.Fatalf("by %s: %d rows in the report, query has %d", by, len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				name := w.Key
				switch {
				case w.IsOther():
					name = "other"
				case by == "country" && w.Key == "":
					name = "--"
				case by == "asn" && w.ASN == 0:
					name = "unknown"
				case by == "asn":
					name = "AS" + w.Key
				}
				if g != [3]string{name, strconv.FormatUint(w.TxBytes, 10), strconv.FormatUint(w.RxBytes, 10)} {
					t.Errorf("by %s row %d: report %v, query %s %d %d", by, i, g, name, w.TxBytes, w.RxBytes)
				}
			}
		}
		for _, want := range []string{"<svg", `class="chart worldmap"`, `data-cc="NL"`, "Traffic over time"} {
			if !strings.Contains(page, want) {
				t.Errorf("html lacks %q", want)
			}
		}
		if strings.Contains(page, "<script") || strings.Contains(page, "http://") && !strings.Contains(page, `xmlns="http://www.w3.org/2000/svg"`) {
			t.Error("the html report must be self-contained")
		}
	}
	t.Run("file", check)
	t.Run("daemon", func(t *testing.T) {
		serveDB(t, db)
		check(t)
	})
}

func TestReportUsage(t *testing.T) {
	for _, args := range [][]string{
		{"report", "--period", "year"},
		{"report", "--format", "pdf"},
		{"report", "--period", "day", "--from", "-1h"},
		{"report", "--smtp", "x:25"},
		{"report", "--mail-to", "a@b", "--smtp-user", "u"},
	} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	loc := time.FixedZone("X", 3600)
	now := time.Date(2026, 3, 15, 10, 0, 0, 0, loc)
	for p, want := range map[string][2]string{
		"day":   {"2026-03-14T00:00:00+01:00", "2026-03-15T00:00:00+01:00"},
		"week":  {"2026-03-08T00:00:00+01:00", "2026-03-15T00:00:00+01:00"},
		"month": {"2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00"},
	} {
		f, to, err := periodRange(p, now, loc)
		if err != nil || f.Format(time.RFC3339) != want[0] || to.Format(time.RFC3339) != want[1] {
			t.Errorf("%s: %v %v %v", p, f, to, err)
		}
	}
}

// smtpBackend is a real SMTP server's backend that keeps what it receives.
type smtpBackend struct {
	mu    sync.Mutex
	auth  []string
	msgs  []string
	rcpts []string
	tls   []bool
}

type smtpSession struct {
	be   *smtpBackend
	conn *smtp.Conn
	user string
}

func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{be: b, conn: c}, nil
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "reporter" || pass != "s3cret pw" {
			return errors.New("bad credentials")
		}
		s.user = user
		s.be.mu.Lock()
		s.be.auth = append(s.be.auth, user)
		s.be.mu.Unlock()
		return nil
	}), nil
}
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, Message: "authenticate first"}
	}
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	s.be.rcpts = append(s.be.rcpts, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	s.be.msgs = append(s.be.msgs, string(b))
	s.be.tls = append(s.be.tls, isTLS)
	return nil
}
func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and writes it as PEM.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dstwatch test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// report --mail-to sends over STARTTLS with AUTH PLAIN to a real SMTP
// server on loopback; the message received is the report.
func TestReportMail(t *testing.T) {
	db := historyDB(t)
	dir := t.TempDir()
	cert, caFile := selfSigned(t, dir)
	be := &smtpBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret pw\n"), 0o600)
	from, to := historyStart, historyStart.Add(24*time.Hour)
	base := []string{"report", "--db", db, "--utc", "--from", rfc(from), "--to", rfc(to), "--smtp", ln.Addr().String(), "--mail-to", "ops@example.org"}

	// Without the CA the self-signed certificate is refused.
	if code, _, stderr := runCmd(t, append(base, "--smtp-user", "reporter", "--smtp-password-file", pw)...); code != 1 || !strings.Contains(stderr, "STARTTLS") {
		t.Errorf("untrusted certificate: exit %d, %s", code, stderr)
	}
	code, _, stderr := runCmd(t, append(base, "--smtp-user", "reporter", "--smtp-password-file", pw, "--smtp-ca-file", caFile, "--mail-from", "dstwatch@example.org")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, text, _ := runCmd(t, "report", "--db", db, "--utc", "--from", rfc(from), "--to", rfc(to))
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.msgs) != 1 || !be.tls[0] || len(be.auth) != 1 || be.rcpts[0] != "ops@example.org" {
		t.Fatalf("received %d messages, tls %v, auth %v, rcpts %v", len(be.msgs), be.tls, be.auth, be.rcpts)
	}
	msg := be.msgs[0]
	hdr, body, _ := strings.Cut(msg, "\r\n\r\n")
	for _, want := range []string{"From: dstwatch@example.org", "To: ops@example.org", "Subject: dstwatch report 2026-03-01 00:00 UTC to 2026-03-02 00:00 UTC", "Content-Type: text/plain; charset=utf-8", "\r\nMessage-ID: <"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("header lacks %q:\n%s", want, hdr)
		}
	}
	dec, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(dec), "\r\n", "\n")
	// The generated time differs by the run; everything else is the same.
	cut := func(s string) string { return s[:strings.LastIndex(s, "Generated")] }
	if cut(strings.TrimRight(got, "\n")+"\n") != cut(text) {
		t.Errorf("mailed report differs from the printed one:\n--- mailed\n%s\n--- printed\n%s", got, text)
	}
	// A server without STARTTLS is refused unless --smtp-insecure.
	plain := smtp.NewServer(be)
	plain.Domain = "127.0.0.1"
	pln, _ := net.Listen("tcp", "127.0.0.1:0")
	go plain.Serve(pln)
	defer plain.Close()
	be.mu.Unlock()
	code, _, stderr = runCmd(t, "report", "--db", db, "--from", rfc(from), "--to", rfc(to), "--smtp", pln.Addr().String(), "--mail-to", "x@example.org")
	be.mu.Lock()
	if code != 1 || !strings.Contains(stderr, "does not offer STARTTLS") {
		t.Errorf("no STARTTLS: exit %d %s", code, stderr)
	}
}

// On port 465 (submissions) report --mail-to speaks TLS from the first
// byte, as RFC 8314 has it, rather than waiting for a STARTTLS offer that a
// TLS listener never makes.
func TestReportMailImplicitTLS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("listening on port 465 needs root")
	}
	db := historyDB(t)
	dir := t.TempDir()
	cert, caFile := selfSigned(t, dir)
	be := &smtpBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "127.0.0.1"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := tls.Listen("tcp", "127.0.0.1:465", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatalf("listen on 127.0.0.1:465 (in use by another program?): %v", err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret pw\n"), 0o600)
	from, to := historyStart, historyStart.Add(24*time.Hour)
	code, _, stderr := runCmd(t, "report", "--db", db, "--utc", "--from", rfc(from), "--to", rfc(to), "--smtp", "127.0.0.1:465",
		"--mail-to", "ops@example.org", "--smtp-user", "reporter", "--smtp-password-file", pw, "--smtp-ca-file", caFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.msgs) != 1 || !be.tls[0] || len(be.auth) != 1 {
		t.Fatalf("received %d messages, tls %v, auth %v", len(be.msgs), be.tls, be.auth)
	}
	if !strings.Contains(be.msgs[0], "Subject: dstwatch report 2026-03-01 00:00 UTC to 2026-03-02 00:00 UTC\r\n") {
		t.Errorf("not the report:\n%s", be.msgs[0])
	}
}

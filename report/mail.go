package report

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is how a report is sent.
type Mail struct {
	Server   string // host:port
	From     string
	To       []string
	User     string // "" sends without AUTH
	Password string
	// ImplicitTLS speaks TLS from the first byte (submissions, port 465)
	// instead of upgrading with STARTTLS.
	ImplicitTLS bool
	// Insecure allows a server that does not offer STARTTLS (the message
	// and any password then cross the network in clear); without it such a
	// server is refused.
	Insecure bool
	TLS      *tls.Config // nil: verify against the system roots, ServerName from Server
	Timeout  time.Duration
}

// ErrNoSTARTTLS is returned when the server offers no STARTTLS and
// Insecure is not set.
var ErrNoSTARTTLS = errors.New("does not offer STARTTLS; refusing to send in clear")

// Message builds an RFC 5322 message with one body part of contentType
// ("text/plain" or "text/html"), quoted-printable, UTF-8.
func Message(from string, to []string, subject, contentType string, body []byte, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: %s\r\n", messageID(from, now))
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: %s; charset=utf-8\r\n", contentType)
	fmt.Fprintf(&b, "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	qw := quotedprintable.NewWriter(&b)
	qw.Write(bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
	qw.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// messageID is unique per message (time and 64 random bits) and names the
// sender's domain, as RFC 5322 asks; servers and spam filters look for it.
func messageID(from string, now time.Time) string {
	domain := "dstwatch.invalid"
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		domain = strings.Trim(d, "<> ")
	}
	var r [8]byte
	rand.Read(r[:])
	return fmt.Sprintf("<%d.%s@%s>", now.UnixNano(), hex.EncodeToString(r[:]), domain)
}

// Send delivers msg: over implicit TLS, or with STARTTLS when the server
// offers it (required unless Insecure), then AUTH PLAIN when a user is set
// (only over TLS).
func (m *Mail) Send(msg []byte) error {
	host, _, err := net.SplitHostPort(m.Server)
	if err != nil {
		return fmt.Errorf("smtp server %q: want host:port", m.Server)
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	cfg := m.TLS
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	c, secure, err := m.connect(cfg, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if m.User != "" {
		if !secure {
			return errors.New("smtp: refusing to send the password without TLS")
		}
		if err := c.Auth(sasl.NewPlainClient("", m.User, m.Password)); err != nil {
			return fmt.Errorf("smtp %s: AUTH: %w", m.Server, err)
		}
	}
	if err := c.Mail(m.From, nil); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", m.Server, err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to, nil); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", m.Server, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", m.Server, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Server, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Server, err)
	}
	return c.Quit()
}

// connect opens the session, greeted and, unless it is a permitted clear
// one, encrypted; secure says which. A TLS failure surfaces here (the
// EHLO after the handshake), not at AUTH or MAIL.
func (m *Mail) connect(cfg *tls.Config, timeout time.Duration) (*smtp.Client, bool, error) {
	d := &net.Dialer{Timeout: timeout}
	if m.ImplicitTLS {
		conn, err := tls.DialWithDialer(d, "tcp", m.Server, cfg)
		if err != nil {
			return nil, false, fmt.Errorf("smtp %s: TLS: %w", m.Server, err)
		}
		c := m.client(conn, timeout)
		if err := c.Hello("localhost"); err != nil {
			c.Close()
			return nil, false, fmt.Errorf("smtp %s: %w", m.Server, err)
		}
		return c, true, nil
	}
	conn, err := d.Dial("tcp", m.Server)
	if err != nil {
		return nil, false, fmt.Errorf("smtp: %w", err)
	}
	// go-smtp upgrades a session only as it starts (NewClientStartTLS),
	// so the EHLO that lists the extensions is its own: greet and look
	// before choosing.
	c := m.client(conn, timeout)
	if err := c.Hello("localhost"); err != nil {
		c.Close()
		return nil, false, fmt.Errorf("smtp %s: %w", m.Server, err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		if !m.Insecure {
			c.Close()
			return nil, false, fmt.Errorf("smtp %s %w", m.Server, ErrNoSTARTTLS)
		}
		return c, false, nil
	}
	c.Quit()
	if conn, err = d.Dial("tcp", m.Server); err != nil {
		return nil, false, fmt.Errorf("smtp: %w", err)
	}
	conn.SetDeadline(time.Now().Add(2 * timeout))
	c, err = smtp.NewClientStartTLS(conn, cfg)
	if err == nil {
		c.CommandTimeout, c.SubmissionTimeout = timeout, 2*timeout
		err = c.Hello("localhost") // the handshake happens here
	}
	if err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("smtp %s: STARTTLS: %w", m.Server, err)
	}
	return c, true, nil
}

func (m *Mail) client(conn net.Conn, timeout time.Duration) *smtp.Client {
	conn.SetDeadline(time.Now().Add(2 * timeout))
	c := smtp.NewClient(conn)
	c.CommandTimeout, c.SubmissionTimeout = timeout, 2*timeout
	return c
}

package report

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// Mail is how a report is sent.
type Mail struct {
	Server   string // host:port
	From     string
	To       []string
	User     string // "" sends without AUTH
	Password string
	// Insecure allows a server that does not offer STARTTLS (the message
	// and any password then cross the network in clear); without it such a
	// server is refused.
	Insecure bool
	TLS      *tls.Config // nil: verify against the system roots, ServerName from Server
	Timeout  time.Duration
}

// Message builds an RFC 5322 message with one body part of contentType
// ("text/plain" or "text/html"), quoted-printable, UTF-8.
func Message(from string, to []string, subject, contentType string, body []byte, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: %s; charset=utf-8\r\n", contentType)
	fmt.Fprintf(&b, "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	qw := quotedprintable.NewWriter(&b)
	qw.Write(bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
	qw.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// Send delivers msg: STARTTLS when the server offers it (required unless
// Insecure), then AUTH PLAIN when a user is set (only over TLS).
func (m *Mail) Send(msg []byte) error {
	host, _, err := net.SplitHostPort(m.Server)
	if err != nil {
		return fmt.Errorf("smtp server %q: want host:port", m.Server)
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	conn, err := net.DialTimeout("tcp", m.Server, timeout)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	conn.SetDeadline(time.Now().Add(2 * timeout))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", m.Server, err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Server, err)
	}
	secure := false
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := m.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp %s: STARTTLS: %w", m.Server, err)
		}
		secure = true
	} else if !m.Insecure {
		return fmt.Errorf("smtp %s does not offer STARTTLS; refusing to send in clear (--smtp-insecure allows it)", m.Server)
	}
	if m.User != "" {
		if !secure {
			return errors.New("smtp: refusing to send the password without TLS")
		}
		if err := c.Auth(smtp.PlainAuth("", m.User, m.Password, host)); err != nil {
			return fmt.Errorf("smtp %s: AUTH: %w", m.Server, err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", m.Server, err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
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
